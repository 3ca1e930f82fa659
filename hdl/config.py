"""Accelerator configurations: one frozen, validated object drives everything.

A config is the single source of truth for the RTL, the manifest, the driver's
packing and tiling, the analytic model, the tests and synthesis. Its canonical
JSON (sorted keys, no whitespace, with a ``kind`` tag) hashes to the key of every
cached artifact.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from .dtypes import DType, dtype, DTYPES

__all__ = ["ConfigBase", "GemmConfig", "config_from_dict", "config_from_json"]


def _check_int(owner: str, field: str, value: Any, lo: int, hi: int, rule: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{field} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        rule = rule or f"in {lo}..{hi}"
        raise ValueError(f"{owner}.{field} must be {rule}, not {value!r}")


def _check_choice(owner: str, field: str, value: Any, choices) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{owner}.{field} must be a string, one of {', '.join(map(repr, choices))}; "
                        f"not {value!r}")
    if value not in choices:
        raise ValueError(f"{owner}.{field} must be one of {', '.join(map(repr, choices))}, "
                         f"not {value!r}")


def _check_bool(owner: str, field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}.{field} must be a bool, not {value!r}")


@dataclass(frozen=True)
class ConfigBase:
    """Common behaviour of accelerator configs: JSON round trip and stable hash."""

    KIND: ClassVar[str] = ""
    SCHEMA: ClassVar[int] = 1
    #: Fields added after configs were first published: left out of :meth:`to_dict` (and
    #: so of the hash) while at their default, so that every earlier config keeps its
    #: canonical JSON, hash and top module name.
    OMIT_AT_DEFAULT: ClassVar[tuple] = ()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.name in self.OMIT_AT_DEFAULT and d[f.name] == f.default:
                del d[f.name]
        return {"kind": self.KIND, **d}

    def to_json(self, indent: int | None = None) -> str:
        if indent is None:
            return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @classmethod
    def from_dict(cls, data: dict):
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__} data must be a mapping, not {type(data).__name__}")
        data = dict(data)
        kind = data.pop("kind", cls.KIND)
        if kind != cls.KIND:
            raise ValueError(f"{cls.__name__} data must have kind {cls.KIND!r}, not {kind!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {', '.join(map(repr, unknown))}; "
                             f"fields are {', '.join(sorted(names))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    @property
    def config_hash(self) -> str:
        """SHA-256 of the canonical JSON (with the schema version), as 64 hex digits."""
        canon = json.dumps({"schema": self.SCHEMA, **self.to_dict()}, sort_keys=True,
                           separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class GemmConfig(ConfigBase):
    """Dense systolic-array GEMM accelerator configuration.

    The defaults give an 8x8 int8 output-stationary array with a 64-bit stream.

    Parameters
    ----------
    rows, cols : int
        Systolic array size R x C, 1..64 each (rectangular arrays allowed).
    dataflow : str
        ``"os"`` (output-stationary: C tiles stay in the PEs while K streams) or
        ``"ws"`` (weight-stationary: B tiles stay in the PEs while A rows stream).
    a_dtype, b_dtype : str
        Operand types: int4, uint4, int8, uint8, int16, uint16.
    acc_bits : int
        Accumulator width, a multiple of 8 in 16..64 and at least the product width.
        Results wrap modulo 2**acc_bits (two's complement) like a C integer.
    stream_bits : int
        AXI4-Stream TDATA width, a power of two in 32..512.
    a_spad_kib, b_spad_kib : int
        Operand scratchpad capacities in KiB (1..1024). They bound the job size.
    acc_kib : int
        Accumulator memory capacity in KiB (1..4096). It bounds M*N of one job.
    double_buffer : bool
        Overlap operand loading, compute and result draining. When false, each job
        loads all operands, then computes, then drains: the ablation baseline.
    requant : bool
        Build the requantization unit (int32 -> int8, per-tensor multiplier and
        shift, round to nearest, saturate, optional ReLU).
    sparsity : str
        ``"dense"``, or ``"N:M"`` structured sparsity of B along K (``"2:4"``,
        ``"1:4"``, ``"1:2"``, ``"2:8"``, ...; M in 2, 4, 8 and 1 <= N < M): in every
        group of M consecutive k, each column of B holds at most N nonzeros. B is
        stored compressed (the N kept values with their positions in the group) and
        the array skips the pruned MACs. Output-stationary only.
    counter_bits : int
        Width of the performance counters (job, compute, stall cycles, MACs), 24..64.
        They wrap modulo ``2**counter_bits``; the CSR map keeps its 64-bit ``_LO``/``_HI``
        pairs and the bits above ``counter_bits`` read 0. JOBS is
        ``min(32, counter_bits)`` bits. Narrow counters are for small FPGAs: each 64-bit
        counter costs a 64-bit carry chain, and the CSR bank a 32-bit latch per counter.
    serial_setup : bool
        Compute the job's setup products (``M*N``, tile counts times tile counts, word
        counts, the MAC count, divisions by a non-power-of-two R or C) one after another
        on one shift-add multiplier, one operand bit per cycle, instead of with parallel
        multipliers (seven of them, each a DSP block or a large LUT multiplier). Costs
        :attr:`setup_cycles` per job; for small FPGAs.
    csr_fields_only : bool
        Read-write CSRs store only the bits of their fields (M, K, N: 16; MODE: 4; ...);
        the other bits ignore writes and read 0. Saves about 120 flip-flops and part of
        the read multiplexer; for small FPGAs. Off: every read-write CSR stores all 32
        bits written.

    Raises
    ------
    TypeError, ValueError
        On a field of the wrong type or value; the message names field, rule and value.
    """

    KIND: ClassVar[str] = "gemm"

    rows: int = 8
    cols: int = 8
    dataflow: str = "os"
    a_dtype: str = "int8"
    b_dtype: str = "int8"
    acc_bits: int = 32
    stream_bits: int = 64
    a_spad_kib: int = 16
    b_spad_kib: int = 16
    acc_kib: int = 64
    double_buffer: bool = True
    requant: bool = True
    sparsity: str = "dense"
    counter_bits: int = 64
    serial_setup: bool = False
    csr_fields_only: bool = False

    DATAFLOWS: ClassVar[tuple] = ("os", "ws")
    OMIT_AT_DEFAULT: ClassVar[tuple] = ("counter_bits", "serial_setup", "csr_fields_only")

    def __post_init__(self):
        o = type(self).__name__
        _check_int(o, "rows", self.rows, 1, 64)
        _check_int(o, "cols", self.cols, 1, 64)
        _check_choice(o, "dataflow", self.dataflow, self.DATAFLOWS)
        _check_choice(o, "a_dtype", self.a_dtype, tuple(DTYPES))
        _check_choice(o, "b_dtype", self.b_dtype, tuple(DTYPES))
        _check_int(o, "acc_bits", self.acc_bits, 16, 64)
        if self.acc_bits % 8:
            raise ValueError(f"{o}.acc_bits must be a multiple of 8, not {self.acc_bits!r}")
        # a signed x unsigned product needs one more bit (the unsigned operand is
        # zero-extended into a signed multiply)
        prod = self.a.bits + self.b.bits + (self.a.signed != self.b.signed)
        if self.acc_bits < prod:
            raise ValueError(f"{o}.acc_bits must be at least the product width "
                             f"{prod} ({self.a_dtype} x {self.b_dtype}), not {self.acc_bits!r}")
        _check_int(o, "stream_bits", self.stream_bits, 32, 512)
        if self.stream_bits & (self.stream_bits - 1):
            raise ValueError(f"{o}.stream_bits must be a power of two in 32..512, "
                             f"not {self.stream_bits!r}")
        _check_int(o, "a_spad_kib", self.a_spad_kib, 1, 1024)
        _check_int(o, "b_spad_kib", self.b_spad_kib, 1, 1024)
        _check_int(o, "acc_kib", self.acc_kib, 1, 4096)
        _check_bool(o, "double_buffer", self.double_buffer)
        _check_bool(o, "requant", self.requant)
        if not isinstance(self.sparsity, str):
            raise TypeError(f"{o}.sparsity must be a string, 'dense' or 'N:M', "
                            f"not {self.sparsity!r}")
        if self.sparsity != "dense":
            nm = self.sparsity.split(":")
            ok = (len(nm) == 2 and all(p.isdigit() for p in nm)
                  and int(nm[1]) in (2, 4, 8) and 1 <= int(nm[0]) < int(nm[1]))
            if not ok:
                raise ValueError(f"{o}.sparsity must be 'dense' or 'N:M' with M in 2, 4, 8 "
                                 f"and 1 <= N < M (e.g. '2:4'), not {self.sparsity!r}")
            if self.dataflow != "os":
                raise ValueError(f"{o}.sparsity {self.sparsity!r} needs dataflow 'os' (N:M "
                                 f"sparsity is built into the output-stationary array), "
                                 f"not {self.dataflow!r}")
        _check_int(o, "counter_bits", self.counter_bits, 24, 64)
        _check_bool(o, "serial_setup", self.serial_setup)
        _check_bool(o, "csr_fields_only", self.csr_fields_only)

    # -- derived quantities ------------------------------------------------------------

    @property
    def a(self) -> DType:
        return dtype(self.a_dtype)

    @property
    def b(self) -> DType:
        return dtype(self.b_dtype)

    @property
    def nm(self) -> tuple:
        """``(N, M)`` of the structured sparsity; ``(1, 1)`` when dense."""
        if self.sparsity == "dense":
            return (1, 1)
        n, m = self.sparsity.split(":")
        return int(n), int(m)

    @property
    def idx_bits(self) -> int:
        """Bits of a kept value's position in its group (0 when dense)."""
        return (self.nm[1] - 1).bit_length()

    @property
    def a_word_bits(self) -> int:
        """One A scratchpad word: ``rows`` A elements (a column slice of an A tile in OS,
        a row slice of one K block in WS); with N:M sparsity ``rows`` groups of M
        consecutive-k elements."""
        return self.rows * self.a.bits * self.nm[1]

    @property
    def b_element_bits(self) -> int:
        """One stored B element: the value, and with N:M sparsity its group position
        in the bits above it."""
        return self.b.bits + self.idx_bits

    @property
    def b_word_bits(self) -> int:
        """One B scratchpad word: ``cols`` B elements (one row of a B tile; with N:M
        sparsity one kept slot of each column)."""
        return self.cols * self.b_element_bits

    @property
    def acc_word_bits(self) -> int:
        """One accumulator row: ``cols`` accumulators."""
        return self.cols * self.acc_bits

    @property
    def a_depth(self) -> int:
        return self.a_spad_kib * 8192 // self.a_word_bits

    @property
    def b_depth(self) -> int:
        return self.b_spad_kib * 8192 // self.b_word_bits

    @property
    def acc_depth(self) -> int:
        return self.acc_kib * 8192 // self.acc_word_bits

    @property
    def top_name(self) -> str:
        """Verilog module name of the generated top; unique per config."""
        return f"accelgen_gemm_{self.config_hash[:8]}"

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.rows * self.cols

    @property
    def setup_cycles(self) -> int:
        """Cycles of a job's setup (states SETUP0 to CHECK): from the cycle after START
        is accepted to the cycle the operand loader starts.

        8 with parallel setup products (SETUP0 to SETUP6, then CHECK: two levels of
        products, each through a multiplier with operand and product registers and a
        fabric register, three cycles). With ``serial_setup``, 3 plus ``bits + 1`` per
        product: 16-bit multipliers for ``M*N``, the word and fold counts and the MAC
        count (6 products in OS, 5 in WS), 17-bit ones for each ceiling division by a
        tile side that is not a power of two (``ceil(M/R)`` in OS or ``ceil(K/R)`` in
        WS, and ``ceil(N/C)``).
        """
        if not self.serial_setup:
            return 8
        pow2 = [d & (d - 1) == 0 for d in (self.rows, self.cols)]
        divisions = pow2.count(False)
        products = 6 if self.dataflow == "os" else 5
        return 3 + products * (16 + 1) + divisions * (17 + 1)

    def describe(self) -> str:
        sp = "" if self.sparsity == "dense" else f" {self.sparsity} sparse"
        small = ""
        if self.counter_bits != 64:
            small += f", {self.counter_bits}-bit counters"
        if self.serial_setup:
            small += ", serial setup"
        if self.csr_fields_only:
            small += ", CSR fields only"
        return (f"{self.rows}x{self.cols} {self.dataflow.upper()}{sp} "
                f"{self.a_dtype}x{self.b_dtype}->int{self.acc_bits}, "
                f"{self.stream_bits}-bit streams{small}")


_KINDS = {"gemm": GemmConfig}

# Registered here so config_from_dict knows it; sparse_config imports ConfigBase from this
# module, hence the import after the definitions it needs.
from .sparse_config import SparseConfig  # noqa: E402
_KINDS["sparse"] = SparseConfig


def config_from_dict(data: dict) -> ConfigBase:
    """Build the config named by ``data["kind"]`` (``"gemm"`` when absent)."""
    if not isinstance(data, dict):
        raise TypeError(f"Config data must be a mapping, not {type(data).__name__}")
    kind = data.get("kind", "gemm")
    if kind not in _KINDS:
        raise ValueError(f"Config kind must be one of {', '.join(map(repr, _KINDS))}, not {kind!r}")
    return _KINDS[kind].from_dict(data)


def config_from_json(text: str) -> ConfigBase:
    return config_from_dict(json.loads(text))
