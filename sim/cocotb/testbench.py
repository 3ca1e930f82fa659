"""cocotb testbench components for the generated GEMM accelerator.

Small classes, each with one job (the tests themselves are in :mod:`.tb_gemm`):

:class:`TB`
    Clock, reset, and cocotbext-axi's ``AxiLiteMaster`` (CSRs), ``AxiStreamSource``
    (operands) and ``AxiStreamSink`` (results) with pause generators for idle
    insertion and backpressure, plus a :class:`ProtocolMonitor`.
:class:`ProgramReplayer`
    Executes a driver program (``plan.ops``) through the cocotbext-axi models, so the
    testbench and the driver cannot disagree about the protocol.
:class:`CanonicalDriver`
    Executes a program with the exact cycle protocol of the simulation backends
    (:mod:`accelgen.sim.device`), for the cross-simulator equivalence test.
:class:`ProtocolMonitor`
    AXI4-Stream and AXI4-Lite rules on every cycle, frame lengths against the
    program, and the output-backpressure cycle count the hardware must report.
:class:`Checker`
    C against numpy, counters against the model's exact facts and the Verilator
    backend's reference run.

Sampling: every monitor and the canonical driver observe the bus at the falling
clock edge, where the values the next rising edge will sample have settled on
every simulator (cocotb's rising-edge callbacks see pre- or post-edge values
depending on the simulator); drivers change inputs right after the rising edge.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame,
                           AxiStreamSink, AxiStreamSource)

from accelgen.hdl.config import config_from_dict
from accelgen.host.model import predict
from accelgen.host.plan import STATUS_BUSY, STATUS_DONE, STATUS_ERROR
from accelgen.sim.device import BusError, DeviceTimeout, StreamError

__all__ = ["PERIOD_NS", "RESET_CYCLES", "STALL_PATTERNS", "pause_pattern", "Manifest", "TB",
           "ProtocolMonitor", "ProgramReplayer", "CanonicalDriver", "JobObservation",
           "Checker", "ProtocolError"]

PERIOD_NS = 10
#: Cycles ``aresetn`` is held low (as the Verilator backend does).
RESET_CYCLES = 4
#: Names of the idle-insertion / backpressure patterns every data test is crossed with.
STALL_PATTERNS = ("none", "alternate", "long", "random")
#: Cycles an AXI4-Lite request may wait for its handshake or its response.
AXIL_PATIENCE = 64

RESP_OKAY, RESP_SLVERR = 0, 2


class ProtocolError(AssertionError):
    """A bus rule was broken (by the design, or by the testbench's own models)."""


def pause_pattern(name: str, *, seed: int, wait=None):
    """A cocotbext-axi pause generator (``True`` = pause this cycle), or ``None``.

    ``none``: never pause. ``alternate``: every other cycle. ``long``: 50 paused
    cycles every 200. ``random``: paused with probability 0.4 from a seeded RNG.
    With ``wait`` (a callable), the pattern starts once ``wait()`` is true: the
    output's patterns start with the job's first result beat, so that a long stall
    always meets the result stream however late it begins.
    """
    if name == "none":
        return None
    if name == "alternate":
        body = itertools.cycle((False, True))
    elif name == "long":
        body = itertools.cycle((True,) * 50 + (False,) * 150)
    elif name == "random":
        rng = random.Random(seed)
        body = iter(lambda: rng.random() < 0.4, None)
    else:
        raise ValueError(f"Stall pattern must be one of {', '.join(STALL_PATTERNS)}, not {name!r}")
    if wait is None:
        return body
    return itertools.chain(itertools.takewhile(lambda _: not wait(), itertools.repeat(False)),
                           body)


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
        self.config = config_from_dict(data["config"])
        self.csrs = {r["name"]: r for r in data["csrs"]}
        self.errors = {e["name"]: e["code"] for e in data["errors"]}
        self.addr_bits = data["csr_bus"]["addr_bits"]
        self.beat_bytes = data["streams"]["s_axis"]["tdata_bits"] // 8

    @classmethod
    def from_env(cls) -> "Manifest":
        path = os.environ.get("ACCELGEN_MANIFEST")
        if not path:
            raise RuntimeError("ACCELGEN_MANIFEST must name the design's manifest.json "
                               "(the pytest runner in tests/test_cocotb.py sets it)")
        import json
        return cls(json.loads(Path(path).read_text()))

    def offset(self, name: str) -> int:
        return self.csrs[name]["offset"]

    def field(self, reg: str, name: str) -> tuple[int, int]:
        for f in self.csrs[reg]["fields"]:
            if f["name"] == name:
                return f["lsb"], f["width"]
        raise KeyError(f"Register {reg} has no field {name}")

    def result_frame_bytes(self, m: int, n: int, mode: int) -> int | None:
        """Bytes of a job's result frame by the manifest's stream format (None with
        MODE.NO_OUTPUT): M * ceil(N / lanes) rows, packed into beats."""
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


# -- monitors --------------------------------------------------------------------------


def _int(value) -> int | None:
    """A sampled signal as an int, or ``None`` if it holds X or Z."""
    try:
        return int(value)
    except ValueError:
        return None


class _StreamRule:
    """AXI4-Stream handshake rule of one interface: once TVALID is high it stays
    high, with TDATA and TLAST unchanged, until the cycle TREADY is high."""

    def __init__(self, name: str, errors: list):
        self.name = name
        self.errors = errors
        self.held = None             # (tdata, tlast) of a beat offered and not taken

    def sample(self, cycle: int, valid, ready, data, last) -> bool:
        if valid is None:
            self.errors.append(f"cycle {cycle}: {self.name} TVALID is X/Z")
            return False
        if self.held is not None:
            if not valid:
                self.errors.append(f"cycle {cycle}: {self.name} dropped TVALID before TREADY "
                                   f"(beat {self.held[0]:#x} was offered and not accepted)")
            elif (data, last) != self.held:
                self.errors.append(f"cycle {cycle}: {self.name} changed TDATA/TLAST while "
                                   f"waiting for TREADY: {self.held} -> {(data, last)}")
        if valid and data is None:
            self.errors.append(f"cycle {cycle}: {self.name} TDATA has X/Z while TVALID")
        self.held = (data, last) if valid and not ready else None
        return bool(valid and ready)


class _AxiLiteRule:
    """AXI4-Lite rules, both sides: request and response channels hold their
    payload until accepted; no response without a request; every request is
    accepted and answered within :data:`AXIL_PATIENCE` cycles; xRESP is OKAY or
    SLVERR."""

    CHANNELS = ("aw", "w", "ar", "b", "r")

    def __init__(self, errors: list):
        self.errors = errors
        self.held = {}
        self.waiting = {c: 0 for c in self.CHANNELS}
        self.count = {c: 0 for c in self.CHANNELS}
        self.owed_since = {"b": None, "r": None}

    PAYLOAD = {"aw": ("awaddr",), "w": ("wdata", "wstrb"), "ar": ("araddr",), "b": ("bresp",),
               "r": ("rdata", "rresp")}

    def sample(self, cycle: int, h: dict) -> None:
        """Check one cycle; ``h`` maps ``awvalid``... to the signal handles (READY and
        the payload are read only for channels whose VALID is high)."""
        errors, n = self.errors, self.count
        valid = {ch: _int(h[f"{ch}valid"].value) for ch in self.CHANNELS}
        # a response answers a request accepted in an earlier cycle (counts are of
        # earlier cycles until updated below)
        if valid["b"] and n["b"] >= min(n["aw"], n["w"]):
            errors.append(f"cycle {cycle}: AXI4-Lite BVALID with no outstanding write")
        if valid["r"] and n["r"] >= n["ar"]:
            errors.append(f"cycle {cycle}: AXI4-Lite RVALID with no outstanding read")
        for ch in self.CHANNELS:
            v = valid[ch]
            if v is None:
                errors.append(f"cycle {cycle}: AXI4-Lite {ch.upper()}VALID is X/Z")
                continue
            if not v:
                if ch in self.held:
                    errors.append(f"cycle {cycle}: AXI4-Lite {ch.upper()}VALID dropped before "
                                  f"{ch.upper()}READY")
                    del self.held[ch]
                self.waiting[ch] = 0
                continue
            ready = _int(h[f"{ch}ready"].value)
            value = tuple(_int(h[p].value) for p in self.PAYLOAD[ch])
            if ready is None:
                errors.append(f"cycle {cycle}: AXI4-Lite {ch.upper()}READY is X/Z")
                continue
            if ch in self.held and value != self.held[ch]:
                errors.append(f"cycle {cycle}: AXI4-Lite {ch.upper()} payload changed while "
                              f"waiting: {self.held[ch]} -> {value}")
            if not ready:
                self.held[ch] = value
                self.waiting[ch] += 1
                if self.waiting[ch] == AXIL_PATIENCE:
                    errors.append(f"cycle {cycle}: AXI4-Lite {ch.upper()} not accepted within "
                                  f"{AXIL_PATIENCE} cycles")
                continue
            self.held.pop(ch, None)
            self.waiting[ch] = 0
            n[ch] += 1
            if ch in ("b", "r") and value[-1] not in (RESP_OKAY, RESP_SLVERR):
                errors.append(f"cycle {cycle}: AXI4-Lite {ch.upper()}RESP is {value[-1]}, "
                              f"expected OKAY or SLVERR")
        for ch, owed in (("b", min(n["aw"], n["w"]) > n["b"]), ("r", n["ar"] > n["r"])):
            if not owed:
                self.owed_since[ch] = None
            elif self.owed_since[ch] is None:
                self.owed_since[ch] = cycle
            elif cycle - self.owed_since[ch] == AXIL_PATIENCE:
                errors.append(f"cycle {cycle}: AXI4-Lite {ch.upper()} response missing "
                              f"{AXIL_PATIENCE} cycles after its request")


@dataclass
class _Expect:
    nbytes: int
    optional: bool = False


class ProtocolMonitor:
    """Samples both AXI4-Stream interfaces and the AXI4-Lite port every cycle.

    Parameters
    ----------
    dut : cocotb handle of the accelerator top
    beat_bytes : int

    Members
    -------
    errors : list of str
        Every rule violation seen, with its cycle.
    cycle : int
        Cycles sampled since the monitor started.
    out_stall_cycles : int
        Cycles with ``m_axis_tvalid & ~m_axis_tready`` (the hardware's OUT_STALL_CYCLES
        counts exactly these while a job runs).
    in_frames, out_frames : list of bytes
        Accepted frames of each stream, in order.
    """

    AXIL = ("awvalid", "awready", "awaddr", "wvalid", "wready", "wdata", "wstrb", "bvalid",
            "bready", "bresp", "arvalid", "arready", "araddr", "rvalid", "rready", "rdata",
            "rresp")

    def __init__(self, dut, beat_bytes: int):
        self.dut = dut
        self.beat_bytes = beat_bytes
        self.errors: list[str] = []
        self.cycle = 0
        self.out_stall_cycles = 0
        self.in_idle_cycles = 0
        self.in_frames: list[bytes] = []
        self.out_frames: list[bytes] = []
        self._in_cur = bytearray()
        self._out_cur = bytearray()
        self._expect: deque[_Expect] = deque()
        self._s_rule = _StreamRule("s_axis", self.errors)
        self._m_rule = _StreamRule("m_axis", self.errors)
        self._axil = _AxiLiteRule(self.errors)
        self._axil_handles = {n: getattr(dut, f"s_axil_{n}") for n in self.AXIL}
        self._task = None
        self._excused = 0
        self._was_reset = True
        #: set by :meth:`TB.reset` (the only driver of ``aresetn``): no bus rules apply
        self.in_reset = True
        self._in_owed = 0
        self.out_valid_seen = False

    def start(self) -> None:
        self._task = cocotb.start_soon(self._run())

    # -- expectations set by the replayer and the tests --------------------------------

    def expect_frame(self, nbytes: int, *, optional: bool = False) -> None:
        """The next output frame has ``nbytes`` bytes (``optional``: it may not come)."""
        self._expect.append(_Expect(nbytes, optional))

    def note_send(self) -> None:
        """A frame was queued on the input stream: TVALID low until its TLAST is idle."""
        self._in_owed += 1

    def retire_optional(self) -> None:
        """Drop optional expectations that were not met (their job has finished)."""
        while self._expect and self._expect[0].optional and not self._out_cur:
            self._expect.popleft()

    @property
    def receiving(self) -> bool:
        """A result frame has begun and not ended."""
        return bool(self._out_cur)

    def pending_frames(self) -> int:
        return sum(1 for e in self._expect if not e.optional)

    def excuse(self, cycles: int) -> None:
        """Stop checking both streams for a few cycles: a soft reset or a stream flush
        withdraws TVALID legitimately. Partial frames and expectations are dropped
        (the AXI4-Lite port stays checked)."""
        self._excused = cycles
        self._s_rule.held = self._m_rule.held = None
        self._in_cur = bytearray()
        self._out_cur = bytearray()
        self._expect.clear()
        self._in_owed = 0

    def check_idle(self) -> None:
        """No result frame is half received and none the program expects is missing."""
        if self._out_cur:
            self.errors.append(f"cycle {self.cycle}: output frame left without TLAST after "
                               f"{len(self._out_cur)} bytes")
        if self.pending_frames():
            self.errors.append(f"cycle {self.cycle}: {self.pending_frames()} expected result "
                               f"frame(s) never arrived")
        self.check()

    def check(self) -> None:
        """Raise :class:`ProtocolError` listing the violations seen so far."""
        if self.errors:
            more = f" (and {len(self.errors) - 8} more)" if len(self.errors) > 8 else ""
            raise ProtocolError("protocol violations:\n  " + "\n  ".join(self.errors[:8]) + more)

    # -- sampling ---------------------------------------------------------------------------

    async def _run(self):
        dut = self.dut
        clk = dut.aclk
        s_valid, s_ready, s_data, s_last = (dut.s_axis_tvalid, dut.s_axis_tready,
                                            dut.s_axis_tdata, dut.s_axis_tlast)
        m_valid, m_ready, m_data, m_last = (dut.m_axis_tvalid, dut.m_axis_tready,
                                            dut.m_axis_tdata, dut.m_axis_tlast)
        axil = self._axil_handles
        nb = self.beat_bytes
        falling = FallingEdge(clk)
        while True:
            await falling
            self.cycle += 1
            cyc = self.cycle
            if self.in_reset:
                self._was_reset = True
                self._s_rule.held = self._m_rule.held = None
                continue
            if self._was_reset:
                # the first cycle out of reset: the design's valids must be low
                self._was_reset = False
                for name, h in (("m_axis_tvalid", m_valid), ("s_axil_bvalid", axil["bvalid"]),
                                ("s_axil_rvalid", axil["rvalid"])):
                    if _int(h.value) != 0:
                        self.errors.append(f"cycle {cyc}: {name} not low after reset")
            # CSR port
            self._axil.sample(cyc, axil)
            if self._excused:
                self._excused -= 1
                self._s_rule.held = self._m_rule.held = None
                continue
            # input stream (the testbench's source against the rule, the design's TREADY);
            # READY and the payload matter only with VALID: reading less is faster
            sv = _int(s_valid.value)
            sr, sd, sl = ((_int(s_ready.value), _int(s_data.value), _int(s_last.value)) if sv
                          else (0, 0, 0))
            if sr is None:
                self.errors.append(f"cycle {cyc}: s_axis TREADY is X/Z")
            elif self._s_rule.sample(cyc, sv, sr, sd, sl):
                self._in_cur += sd.to_bytes(nb, "little")
                if sl:
                    self.in_frames.append(bytes(self._in_cur))
                    self._in_cur = bytearray()
                    self._in_owed = max(0, self._in_owed - 1)
            elif not sv and self._in_owed:
                self.in_idle_cycles += 1
            # output stream (the design against the rule and the program's frame sizes)
            mv = _int(m_valid.value)
            mr, md, ml = ((_int(m_ready.value), _int(m_data.value), _int(m_last.value)) if mv
                          else (0, 0, 0))
            if mv:
                self.out_valid_seen = True
                if not mr:
                    self.out_stall_cycles += 1
            if mv is not None and mr is not None and self._m_rule.sample(cyc, mv, mr, md, ml):
                self._out_beat(cyc, md, ml)

    def _out_beat(self, cyc: int, data: int, last: int) -> None:
        if not self._expect:
            self.errors.append(f"cycle {cyc}: output beat {data:#x} when the program expects "
                               f"no result frame")
            return
        self._out_cur += data.to_bytes(self.beat_bytes, "little")
        exp = self._expect[0]
        if len(self._out_cur) > exp.nbytes:
            self.errors.append(f"cycle {cyc}: output frame longer than {exp.nbytes} bytes "
                               f"(TLAST missing)")
            self._out_cur = bytearray()
            self._expect.popleft()
        elif last:
            if len(self._out_cur) != exp.nbytes:
                self.errors.append(f"cycle {cyc}: output frame of {len(self._out_cur)} bytes "
                                   f"ended by TLAST, expected {exp.nbytes}")
            self.out_frames.append(bytes(self._out_cur))
            self._out_cur = bytearray()
            self._expect.popleft()


# -- the testbench ---------------------------------------------------------------------


class TB:
    """One test's environment.

    Parameters
    ----------
    dut : cocotb handle of the accelerator top
    drivers : str
        ``"cocotbext"`` (AXI models from cocotbext-axi) or ``"canonical"`` (none: a
        :class:`CanonicalDriver` drives the ports itself).
    """

    def __init__(self, dut, *, drivers: str = "cocotbext"):
        self.dut = dut
        self.log = logging.getLogger("cocotb.tb")
        self.manifest = Manifest.from_env()
        self.config = self.manifest.config
        self.clock = Clock(dut.aclk, PERIOD_NS, unit="ns", impl="gpi")   # C, not a coroutine
        self.clock.start(start_high=False)
        self.idle = "none"
        self.backpressure = "none"
        self.axil = self.source = self.sink = None
        if drivers == "cocotbext":
            reset = dict(reset=dut.aresetn, reset_active_level=False)
            self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.aclk, **reset)
            self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk,
                                          **reset)
            self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk, **reset)
            for model in (self.axil.write_if, self.axil.read_if, self.source, self.sink):
                model.log.setLevel(logging.WARNING)
            # flushing a frame on purpose (soft reset test) is not worth a page of bytes
            self.source.log.setLevel(logging.ERROR)
            for model in (self.axil.write_if, self.axil.read_if):
                for ch in ("aw_channel", "w_channel", "b_channel", "ar_channel", "r_channel"):
                    if hasattr(model, ch):
                        getattr(model, ch).log.setLevel(logging.WARNING)
        elif drivers == "canonical":
            for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
                getattr(dut, f"s_axil_{name}").value = 0
            dut.s_axis_tvalid.value = 0
            dut.m_axis_tready.value = 0
        else:
            raise ValueError(f"TB drivers must be 'cocotbext' or 'canonical', not {drivers!r}")
        self.monitor = ProtocolMonitor(dut, self.manifest.beat_bytes)
        self.monitor.start()

    async def reset(self) -> None:
        """``aresetn`` low for :data:`RESET_CYCLES` cycles, synchronous to the clock."""
        self.monitor.in_reset = True
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, RESET_CYCLES)
        self.dut.aresetn.value = 1
        await RisingEdge(self.dut.aclk)
        self.monitor.in_reset = False

    def set_stress(self, idle: str, backpressure: str) -> None:
        """Choose the input idle-insertion and output backpressure patterns."""
        self.idle, self.backpressure = idle, backpressure

    def restart_patterns(self, job: int) -> None:
        """Restart the pause generators so each job sees its patterns from its start
        (the output's from its first result beat)."""
        self.monitor.out_valid_seen = False
        for model, name, seed, wait in ((self.source, self.idle, 1000, None),
                                        (self.sink, self.backpressure, 2000,
                                         lambda: self.monitor.out_valid_seen)):
            if model is None:
                continue
            gen = pause_pattern(name, seed=seed + job, wait=wait)
            model.set_pause_generator(gen)
            if gen is None:
                model.pause = False      # clearing a generator leaves its last value

    async def flush_source(self) -> None:
        """Abandon the input frame in flight and anything queued (before a soft reset);
        the caller excuses the monitor first."""
        self.source.clear()
        self.source.assert_reset()
        await RisingEdge(self.dut.aclk)

    def flush_sink(self) -> None:
        """Drop a partial result frame and received frames (after a soft reset)."""
        self.sink.assert_reset()
        self.sink.clear()

    # CSR helpers through the AXI4-Lite master, returning (value, resp)
    async def csr_read(self, offset: int) -> tuple[int, int]:
        r = await self.axil.read(offset, 4)
        return int.from_bytes(r.data, "little"), int(r.resp)

    async def csr_write(self, offset: int, value: int, *, nbytes: int = 4) -> int:
        w = await self.axil.write(offset, (value & (1 << 8 * nbytes) - 1).to_bytes(nbytes,
                                                                                  "little"))
        return int(w.resp)

    async def read(self, name: str) -> int:
        value, resp = await self.csr_read(self.manifest.offset(name))
        if resp != RESP_OKAY:
            raise BusError(f"read of {name} answered {resp}")
        return value

    async def write(self, name: str, value: int) -> None:
        resp = await self.csr_write(self.manifest.offset(name), value)
        if resp != RESP_OKAY:
            raise BusError(f"write of {name} answered {resp}")

    async def wait_idle(self, budget_cycles: int = 20_000) -> int:
        """Poll STATUS until BUSY is clear; returns STATUS. Raises on timeout."""
        async def poll():
            while True:
                status = await self.read("STATUS")
                if not status & STATUS_BUSY:
                    return status
        return await with_timeout(poll(), budget_cycles * PERIOD_NS, "ns")


# -- program execution -----------------------------------------------------------------


@dataclass
class JobObservation:
    """What the testbench saw of one job (the START write to its DONE).

    Members
    -------
    out_stall_cycles : int
        Cycles the monitor saw ``m_axis`` TVALID high with TREADY low.
    in_idle_cycles : int
        Cycles an input frame was queued and not yet complete with TVALID low.
    """

    out_stall_cycles: int = 0
    in_idle_cycles: int = 0


def _start_mask(manifest: Manifest) -> int:
    lsb, _ = manifest.field("CTRL", "START")
    return 1 << lsb


def _program_budget(config, plan) -> int:
    """Cycles a program may take under the heaviest stall pattern before it counts as hung."""
    cycles = sum(predict(config, j.m, j.k, j.n, requant=j.requant, no_output=not j.emits)
                 .job_cycles for j in plan.jobs)
    return 12 * cycles + 200 * len(plan.ops) + 5_000


class ProgramReplayer:
    """Executes driver programs through cocotbext-axi's models.

    Parameters
    ----------
    tb : TB
    """

    def __init__(self, tb: TB):
        self.tb = tb
        self.sent: list[bytes] = []
        self.observations: list[JobObservation] = []
        self._jobs = 0

    async def execute(self, plan) -> list:
        """Run ``plan.ops``; return the results of its reads and receives."""
        budget = _program_budget(self.tb.config, plan)
        return await with_timeout(self._execute(plan.ops), budget * PERIOD_NS, "ns")

    async def _execute(self, ops) -> list:
        tb, mon = self.tb, self.tb.monitor
        ctrl = tb.manifest.offset("CTRL")
        start = _start_mask(tb.manifest)        # the driver's START write (other values:
        results = []                            # extra writes a test slipped in)
        obs = None
        written = {}
        dims = {tb.manifest.offset(n): n for n in ("M", "N", "MODE")}
        for index, op in enumerate(ops):
            kind = op[0]
            tb.log.debug("cycle %d: %s", mon.cycle, op if kind != "send" else ("send", len(op[1])))
            if kind == "write":
                if op[1] in dims:
                    written[dims[op[1]]] = op[2]
                if op[1] == ctrl and op[2] == start:
                    # announce the job's result frame before it can begin
                    mon.retire_optional()
                    nbytes = _job_recv(ops, index)
                    by_manifest = tb.manifest.result_frame_bytes(
                        written.get("M", 0), written.get("N", 0), written.get("MODE", 0))
                    if nbytes != by_manifest:
                        raise AssertionError(f"the driver expects a {nbytes}-byte result "
                                             f"frame, the manifest's format {by_manifest}")
                    if nbytes is not None:
                        mon.expect_frame(nbytes)
                    tb.restart_patterns(self._jobs)
                    self._jobs += 1
                    obs = JobObservation(-mon.out_stall_cycles, -mon.in_idle_cycles)
                resp = await tb.csr_write(op[1], op[2])
                if resp != RESP_OKAY:
                    raise BusError(f"AXI4-Lite write to {op[1]:#x} answered {resp}")
            elif kind == "read":
                value, resp = await tb.csr_read(op[1])
                if resp != RESP_OKAY:
                    raise BusError(f"AXI4-Lite read of {op[1]:#x} answered {resp}")
                results.append(value)
            elif kind == "send":
                data = bytes(op[1])
                self.sent.append(data)
                mon.note_send()
                tb.source.send_nowait(AxiStreamFrame(data))
            elif kind == "recv":
                frame = await tb.sink.recv()
                data = bytes(frame.tdata)
                mon.check()                    # a protocol break explains a bad frame best
                if len(data) != op[1]:
                    raise StreamError(f"Result frame has {len(data)} bytes, expected {op[1]}")
                results.append(data)
            elif kind == "wait":
                while True:
                    value, resp = await tb.csr_read(op[1])
                    if resp != RESP_OKAY:
                        raise BusError(f"AXI4-Lite read of {op[1]:#x} answered {resp}")
                    if value & op[2] == op[3]:
                        break
                if obs is not None:
                    obs.out_stall_cycles += mon.out_stall_cycles
                    obs.in_idle_cycles += mon.in_idle_cycles
                    self.observations.append(obs)
                    obs = None
            else:
                raise ValueError(f"Unknown program operation {kind!r}")
            mon.check()
        return results


def _job_recv(ops, index: int) -> int | None:
    """Size of the result frame the job started at ``ops[index]`` receives, if any."""
    for op in ops[index + 1:]:
        if op[0] == "recv":
            return op[1]
        if op[0] == "wait":
            return None
    return None


class CanonicalDriver:
    """Executes programs with the cycle protocol every backend implements.

    Every cycle: drive the inputs (right after the rising edge), observe the
    outputs when they have settled (falling edge), decide the handshakes, and
    apply their effects after the next rising edge. The send queue offers its
    head beat every cycle; TREADY of the result stream is always 1; operations
    follow each other with no idle cycle; a ``send`` is queued without using a
    cycle. See :mod:`accelgen.sim.amaranth_backend` (``_server``), which this
    mirrors cycle for cycle.

    Parameters
    ----------
    tb : TB
        Built with ``drivers="canonical"``.
    """

    def __init__(self, tb: TB):
        self.tb = tb
        self.dut = tb.dut
        self.beat_bytes = tb.manifest.beat_bytes
        self._tx: deque = deque()
        self._rx_frames: deque = deque()
        self._rx_cur = bytearray()
        self.cycles = 0

    async def execute(self, ops, *, timeout_cycles: int = 1_000_000) -> list:
        dut = self.dut
        results = []
        program = iter(list(ops))
        op_gen = None
        kind = None
        obs = None
        done = False
        await RisingEdge(dut.aclk)
        while True:
            # 1. operations, chained within the cycle
            while op_gen is None:
                op = next(program, None)
                if op is None:
                    done = True
                    break
                if op[0] == "send":
                    self._queue(op[1])
                    continue
                kind = op[0]
                op_gen = self._make(op, timeout_cycles)
                obs = op_gen.send(None)       # drives this cycle's inputs
                if obs is not None:           # completed without using a cycle
                    results.append(obs.value)
                    op_gen = None
            if done and op_gen is None:
                self._idle_axil()
                return results
            # 2. stream engines
            if self._tx:
                beat, last = self._tx[0]
                dut.s_axis_tvalid.value = 1
                dut.s_axis_tdata.value = beat
                dut.s_axis_tlast.value = last
            else:
                dut.s_axis_tvalid.value = 0
            dut.m_axis_tready.value = 1
            await FallingEdge(dut.aclk)
            tx_hs = bool(self._tx) and int(dut.s_axis_tready.value)
            rx_hs = int(dut.m_axis_tvalid.value)
            rx_data = int(dut.m_axis_tdata.value) if rx_hs else 0
            rx_last = int(dut.m_axis_tlast.value) if rx_hs else 0
            snapshot = self._axil_outputs()
            await RisingEdge(dut.aclk)
            self.cycles += 1
            if tx_hs:
                self._tx.popleft()
            if rx_hs:
                self._rx_cur += rx_data.to_bytes(self.beat_bytes, "little")
                if rx_last:
                    self._rx_frames.append(bytes(self._rx_cur))
                    self._rx_cur = bytearray()
            # 3. the operation sees what it drove happen, and drives the next cycle
            try:
                step = op_gen.send(snapshot)
            except StopIteration as stop:
                if kind in ("read", "recv"):
                    results.append(stop.value)
                op_gen = None
            else:
                if isinstance(step, _Done):
                    if kind in ("read", "recv"):
                        results.append(step.value)
                    op_gen = None
            self.tb.monitor.check()

    def _queue(self, data: bytes) -> None:
        bb = self.beat_bytes
        n = len(data) // bb
        for i in range(n):
            self._tx.append((int.from_bytes(data[i * bb:(i + 1) * bb], "little"), int(i == n - 1)))

    def _axil_outputs(self) -> dict:
        d = self.dut
        return {n: int(getattr(d, f"s_axil_{n}").value)
                for n in ("awready", "wready", "bvalid", "bresp", "arready", "rvalid", "rdata",
                          "rresp")}

    def _idle_axil(self) -> None:
        for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
            getattr(self.dut, f"s_axil_{name}").value = 0

    def _drive(self, **values) -> None:
        for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
            getattr(self.dut, f"s_axil_{name}").value = values.get(name, 0)
        for name in ("awaddr", "wdata", "wstrb", "araddr", "awprot", "arprot"):
            if name in values:
                getattr(self.dut, f"s_axil_{name}").value = values[name]

    def _make(self, op, timeout):
        kind = op[0]
        if kind == "write":
            return self._g_write(op[1], op[2], timeout)
        if kind == "read":
            return self._g_read(op[1], timeout)
        if kind == "recv":
            return self._g_recv(op[1], timeout)
        if kind == "wait":
            return self._g_wait(op[1], op[2], op[3], timeout)
        raise ValueError(f"Unknown program operation {kind!r}")

    # Operations are generators: each ``yield`` ends the cycle's driving and receives
    # the cycle's observed AXI4-Lite outputs. Yielding a _Done instead of a first
    # ``None`` completes the operation without using a cycle (recv of a ready frame).

    @staticmethod
    def _budget(n, timeout, what):
        n += 1
        if n > timeout:
            raise DeviceTimeout(f"Timed out after {timeout} cycles waiting to {what}")
        return n

    def _g_write(self, offset, value, timeout):
        aw = w = False
        n = 0
        while not (aw and w):
            self._drive(awvalid=int(not aw), wvalid=int(not w), awaddr=offset,
                        wdata=value & 0xFFFFFFFF, wstrb=0xF, awprot=0)
            s = yield
            aw, w = aw or bool(s["awready"]), w or bool(s["wready"])
            n = self._budget(n, timeout, f"have write {offset:#x} accepted")
        while True:
            self._drive(bready=1)
            s = yield
            n = self._budget(n, timeout, f"get the response to write {offset:#x}")
            if s["bvalid"]:
                break
        if s["bresp"] != RESP_OKAY:
            raise BusError(f"AXI4-Lite write to {offset:#x} answered {s['bresp']}")

    def _g_read(self, offset, timeout):
        n = 0
        while True:
            self._drive(arvalid=1, araddr=offset, arprot=0)
            s = yield
            n = self._budget(n, timeout, f"have read {offset:#x} accepted")
            if s["arready"]:
                break
        while True:
            self._drive(rready=1)
            s = yield
            n = self._budget(n, timeout, f"get the data of read {offset:#x}")
            if s["rvalid"]:
                break
        if s["rresp"] != RESP_OKAY:
            raise BusError(f"AXI4-Lite read of {offset:#x} answered {s['rresp']}")
        return s["rdata"]

    def _g_recv(self, nbytes, timeout):
        n = 0
        while not self._rx_frames:
            self._idle_axil()
            yield
            n = self._budget(n, timeout, f"receive a {nbytes}-byte result frame")
        frame = self._rx_frames.popleft()
        if len(frame) != nbytes:
            raise StreamError(f"Result frame has {len(frame)} bytes, expected {nbytes}")
        if n == 0:
            yield _Done(frame)
        return frame

    def _g_wait(self, offset, mask, expected, timeout):
        first = self.cycles
        while True:
            value = yield from self._g_read(offset, timeout)
            if value & mask == expected:
                return value
            if self.cycles - first > timeout:
                raise DeviceTimeout(f"CSR {offset:#x} & {mask:#x} did not become {expected:#x}")


@dataclass
class _Done:
    value: object


# -- the checker -----------------------------------------------------------------------


def job_lower_bound(config, job, in_bytes: int) -> int:
    """max(MACs / (R*C), input bytes / bus bytes, output bytes / bus bytes) of one job,
    from useful work only (DESIGN.md, cycle semantics)."""
    ceil = lambda a, b: -(-a // b)                        # noqa: E731
    sb = config.stream_bits // 8
    bound = max(ceil(job.m * job.k * job.n, config.rows * config.cols),
                ceil(ceil(job.m * job.k * config.a.bits + job.k * job.n * config.b.bits, 8), sb))
    if job.emits:
        lane = 8 if job.requant else config.acc_bits
        bound = max(bound, ceil(ceil(job.m * job.n * lane, 8), sb))
    return bound


@dataclass
class Checker:
    """Checks one program's results.

    Parameters
    ----------
    config : GemmConfig
    log : logging.Logger
    """

    config: object
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("cocotb.tb"))

    def result(self, plan, results, expected: np.ndarray) -> np.ndarray:
        """C assembled from the results equals numpy's, bit for bit."""
        C = plan.assemble(results)
        if C.shape != expected.shape or not np.array_equal(C, expected):
            bad = np.argwhere(C != expected) if C.shape == expected.shape else []
            where = ", ".join(f"C[{i},{j}]={C[i, j]} (numpy {expected[i, j]})"
                              for i, j in bad[:5])
            raise AssertionError(f"C of shape {plan.shape} differs from numpy at "
                                 f"{len(bad)} places: {where}")
        return C

    def counters(self, plan, results, *, golden=None, observed=None, stalled_in=False,
                 stalled_out=False) -> list[dict]:
        """Counters of every job: MACs and the lower bound always; without stalls, the
        analytic model's prediction (:meth:`_against_model`).

        ``golden``: the Verilator backend's counters of the same program with the
        canonical (stall-free) stimulus. Without stalls every counter must equal it;
        with stalls the stall-free schedule length (COMPUTE_CYCLES) must still equal it
        and no job may finish sooner. ``observed``: per job :class:`JobObservation`.
        """
        cfg = self.config
        out = plan.job_counters(results)
        sends = [op[1] for op in plan.ops if op[0] == "send"]
        for i, (job, c) in enumerate(zip(plan.jobs, out)):
            what = f"job {i} ({job.m}x{job.k}x{job.n}, mode {job.mode:#x})"
            assert c["macs"] == job.m * job.k * job.n, f"{what}: MACS {c['macs']}"
            bound = job_lower_bound(cfg, job, len(sends[i]))
            assert c["job_cycles"] >= bound, f"{what}: JOB_CYCLES {c['job_cycles']} < bound {bound}"
            assert c["compute_cycles"] >= -(-job.m * job.k * job.n // (cfg.rows * cfg.cols)), \
                f"{what}: COMPUTE_CYCLES {c['compute_cycles']} below MACs/(R*C)"
            assert c["compute_cycles"] <= c["job_cycles"], \
                f"{what}: COMPUTE_CYCLES {c['compute_cycles']} > JOB_CYCLES {c['job_cycles']}"
            if observed is not None:
                o = observed[i]
                assert c["out_stall_cycles"] == o.out_stall_cycles, (
                    f"{what}: OUT_STALL_CYCLES {c['out_stall_cycles']} but the monitor saw "
                    f"{o.out_stall_cycles} cycles of TVALID & !TREADY")
                if stalled_in:
                    assert o.in_idle_cycles > 0, f"{what}: idle insertion never happened"
                    assert c["in_stall_cycles"] > 0, \
                        f"{what}: input idle was inserted but IN_STALL_CYCLES is 0"
                if not stalled_out:
                    assert c["out_stall_cycles"] == 0, f"{what}: output stalls without backpressure"
            if not (stalled_in or stalled_out):
                self._against_model(what, job, c)
            if golden is not None:
                g = golden[i]
                if not (stalled_in or stalled_out):
                    assert c == g, f"{what}: counters {c} differ from the Verilator backend's {g}"
                else:
                    assert c["compute_cycles"] == g["compute_cycles"], (
                        f"{what}: COMPUTE_CYCLES {c['compute_cycles']} under stalls differs from "
                        f"the stall-free {g['compute_cycles']} (it is the stall-free schedule)")
                    assert c["job_cycles"] >= g["job_cycles"], (
                        f"{what}: JOB_CYCLES {c['job_cycles']} under stalls is less than "
                        f"stall-free {g['job_cycles']}")
        return out

    #: The model's JOB_CYCLES of a NO_OUTPUT job is one cycle short of the hardware's
    #: (reported; every other stall-free counter it predicts is exact).
    NO_OUTPUT_SLACK = 1

    def _against_model(self, what: str, job, c: dict) -> None:
        """Stall-free counters equal the analytic model's prediction."""
        p = predict(self.config, job.m, job.k, job.n, requant=job.requant,
                    no_output=not job.emits)
        slack = 0 if job.emits else self.NO_OUTPUT_SLACK
        assert abs(c["job_cycles"] - p.job_cycles) <= slack, \
            f"{what}: JOB_CYCLES {c['job_cycles']}, the model predicts {p.job_cycles}"
        assert c["compute_cycles"] == p.compute_cycles, \
            f"{what}: COMPUTE_CYCLES {c['compute_cycles']}, the model predicts {p.compute_cycles}"
        assert c["in_stall_cycles"] == p.input_stall_cycles, (
            f"{what}: IN_STALL_CYCLES {c['in_stall_cycles']}, the model predicts "
            f"{p.input_stall_cycles}")
        assert c["macs"] == p.macs

    @staticmethod
    def status(plan, results) -> None:
        """Every job ended DONE, not BUSY, without an error."""
        for status in plan.job_status(results):
            assert status & STATUS_DONE and not status & STATUS_BUSY, f"STATUS {status:#x}"
            assert not status & STATUS_ERROR, f"job failed: STATUS {status:#x}"
