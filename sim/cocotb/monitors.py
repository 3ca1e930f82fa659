"""Protocol monitors: AXI4-Stream and AXI4-Lite rules checked on every cycle.

:class:`ProtocolMonitor` samples both streams and the CSR port at the falling clock
edge, where the values the next rising edge samples have settled on every simulator
(cocotb's rising-edge callbacks see pre- or post-edge values depending on the
simulator). It checks the handshake rules, frame lengths against what the program
expects, and counts the output-backpressure cycles the hardware must report.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cocotb
from cocotb.triggers import FallingEdge

__all__ = ["ProtocolError", "ProtocolMonitor", "AXIL_PATIENCE", "RESP_OKAY", "RESP_SLVERR"]

#: Cycles an AXI4-Lite request may wait for its handshake or its response.
AXIL_PATIENCE = 64

RESP_OKAY, RESP_SLVERR = 0, 2


class ProtocolError(AssertionError):
    """A bus rule was broken (by the design, or by the testbench's own models)."""


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
