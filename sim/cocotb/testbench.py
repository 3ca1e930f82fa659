"""The cocotb test environment of the generated accelerators (GEMM and sparse).

Small classes, each with one job, in one module each (the tests themselves are in
:mod:`.tb_gemm` and :mod:`.tb_sparse`); this module holds :class:`TB` and re-exports
the others:

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
:class:`Checker`, :class:`SparseChecker`
    Results against numpy / scipy, counters against the cycle model's exact facts
    (and, for GEMM, the Verilator backend's reference run).
:class:`Manifest`
    What the testbench knows about the design: registers, errors and stream
    formats, whatever the accelerator kind.

Sampling: every monitor and the canonical driver observe the bus at the falling
clock edge, where the values the next rising edge will sample have settled on
every simulator (cocotb's rising-edge callbacks see pre- or post-edge values
depending on the simulator); drivers change inputs right after the rising edge.
"""

from __future__ import annotations

import logging

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamSink,
                           AxiStreamSource)

from accelgen.host.plan import STATUS_BUSY
from accelgen.sim.device import BusError

from .checker import Checker, SparseChecker, job_lower_bound
from .drivers import (STALL_PATTERNS, CanonicalDriver, JobObservation, ProgramReplayer,
                      pause_pattern)
from .manifest import Manifest
from .monitors import RESP_OKAY, RESP_SLVERR, ProtocolError, ProtocolMonitor

__all__ = ["PERIOD_NS", "RESET_CYCLES", "STALL_PATTERNS", "RESP_OKAY", "RESP_SLVERR", "TB",
           "pause_pattern", "Manifest", "ProtocolMonitor", "ProtocolError", "ProgramReplayer",
           "CanonicalDriver", "JobObservation", "Checker", "SparseChecker", "job_lower_bound"]

PERIOD_NS = 10
#: Cycles ``aresetn`` is held low (as the Verilator backend does).
RESET_CYCLES = 4


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
        self.period_ns = PERIOD_NS
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

    async def check_read_only(self, csrs) -> None:
        """Every read-only register of the manifest's ``csrs`` answers a write with
        SLVERR and keeps its value."""
        for reg in csrs:
            if reg["access"] != "RO":
                continue
            before = (await self.csr_read(reg["offset"]))[0]
            resp = await self.csr_write(reg["offset"], ~before & 0xFFFF_FFFF)
            assert resp == RESP_SLVERR, f"write to read-only {reg['name']} answered {resp}"
            assert (await self.csr_read(reg["offset"]))[0] == before, f"{reg['name']} changed"

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
