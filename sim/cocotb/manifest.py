"""The generated design's manifest as the testbench reads it.

Everything the testbench knows about a design (register offsets and fields, reset
values, error codes, stream formats, the config) comes from ``manifest.json``;
nothing is written down twice. The same class serves every accelerator kind (the
manifest's ``kind``: ``gemm``, ``sparse``); only :meth:`Manifest.result_frame_bytes`
reads a kind's own stream format.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from accelgen.hdl.config import config_from_dict

__all__ = ["Manifest"]


class Manifest:
    """The generated design's manifest: the only place the testbench learns
    register offsets, reset values, error codes and the config from.

    Parameters
    ----------
    data : dict
        Parsed ``manifest.json``.
    """

    def __init__(self, data: dict):
        self.data = data
        self.kind = data.get("kind", "gemm")
        self.config = config_from_dict(data["config"])
        self.csrs = {r["name"]: r for r in data["csrs"]}
        self.names = {r["offset"]: r["name"] for r in data["csrs"]}
        self.errors = {e["name"]: e["code"] for e in data["errors"]}
        self.addr_bits = data["csr_bus"]["addr_bits"]
        self.beat_bytes = data["streams"]["s_axis"]["tdata_bits"] // 8

    @classmethod
    def from_env(cls) -> "Manifest":
        path = os.environ.get("ACCELGEN_MANIFEST")
        if not path:
            raise RuntimeError("ACCELGEN_MANIFEST must name the design's manifest.json "
                               "(the pytest runner in tests/test_cocotb.py sets it)")
        return cls(json.loads(Path(path).read_text()))

    def offset(self, name: str) -> int:
        return self.csrs[name]["offset"]

    def field(self, reg: str, name: str) -> tuple[int, int]:
        for f in self.csrs[reg]["fields"]:
            if f["name"] == name:
                return f["lsb"], f["width"]
        raise KeyError(f"Register {reg} has no field {name}")

    def result_frame_bytes(self, regs: dict) -> int | None:
        """Bytes of a job's result frame by the manifest's stream format, from the job
        registers as written before START (``regs``: register name -> value; unwritten
        ones count as 0). ``None`` when the job sends no result frame.

        GEMM: M * ceil(N / lanes) rows, none with MODE.NO_OUTPUT. Sparse: ROWS rows of
        ``row_format``, ``rows_per_beat`` per beat.
        """
        if self.kind == "sparse":
            fmt = self.data["streams"]["m_axis"]["row_format"]
            return -(-regs.get("ROWS", 0) // fmt["rows_per_beat"]) * self.beat_bytes
        if self.kind != "gemm":
            raise ValueError(f"Manifest kind must be 'gemm' or 'sparse', not {self.kind!r}")
        m, n, mode = regs.get("M", 0), regs.get("N", 0), regs.get("MODE", 0)
        if mode >> self.field("MODE", "NO_OUTPUT")[0] & 1:
            return None
        requant = mode >> self.field("MODE", "REQUANT")[0] & 1
        fmt = self.data["streams"]["m_axis"]["row_formats"]["requant" if requant else "acc"]
        rows = m * -(-n // fmt["lanes"])
        beats = -(-rows // fmt["rows_per_beat"]) if fmt["rows_per_beat"] else \
            rows * fmt["beats_per_row"]
        return beats * self.beat_bytes

    def unmapped_offsets(self) -> list[int]:
        mapped = {r["offset"] for r in self.csrs.values()}
        return [a for a in range(0, 1 << self.addr_bits, 4) if a not in mapped]
