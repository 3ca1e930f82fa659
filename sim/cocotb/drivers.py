"""Drivers: stall patterns, the program replayer and the canonical-protocol driver.

:class:`ProgramReplayer` executes a driver program (``plan.ops``) through
cocotbext-axi's models, so the testbench and the driver cannot disagree about the
protocol. :class:`CanonicalDriver` executes one with the exact cycle protocol of the
simulation backends (:mod:`accelgen.sim.device`), for the cross-simulator
equivalence test.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from dataclasses import dataclass

from cocotb.triggers import FallingEdge, RisingEdge, with_timeout
from cocotbext.axi import AxiStreamFrame

from accelgen.host.model import predict
from accelgen.sim.device import BusError, DeviceTimeout, StreamError

from .monitors import RESP_OKAY

__all__ = ["STALL_PATTERNS", "pause_pattern", "JobObservation", "CYCLE_MODELS",
           "predicted_cycles", "ProgramReplayer", "CanonicalDriver"]

#: Names of the idle-insertion / backpressure patterns every data test is crossed with.
STALL_PATTERNS = ("none", "alternate", "long", "random")


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


def _gemm_cycles(config, plan) -> int:
    return sum(predict(config, j.m, j.k, j.n, requant=j.requant, no_output=not j.emits)
               .job_cycles for j in plan.jobs)


def _sparse_cycles(config, plan) -> int:
    # each job carries the sparse cycle model's prediction (what predict_sparse sums)
    return sum(j.prediction.job_cycles for j in plan.jobs)


#: Per design kind (``config.KIND``): the stall-free JOB_CYCLES of a program's jobs by
#: the design's own cycle model. A new accelerator kind adds its model here.
CYCLE_MODELS = {"gemm": _gemm_cycles, "sparse": _sparse_cycles}


def predicted_cycles(config, plan) -> int:
    """Stall-free job cycles of ``plan`` by the cycle model of ``config``'s kind."""
    try:
        model = CYCLE_MODELS[config.KIND]
    except KeyError:
        raise ValueError(f"Design kind must be one of {', '.join(CYCLE_MODELS)}, not "
                         f"{config.KIND!r}") from None
    return model(config, plan)


def _program_budget(config, plan) -> int:
    """Cycles a program may take under the heaviest stall pattern before it counts as hung."""
    return 12 * predicted_cycles(config, plan) + 200 * len(plan.ops) + 5_000


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
        return await with_timeout(self._execute(plan.ops), budget * self.tb.period_ns, "ns")

    async def _execute(self, ops) -> list:
        tb, mon = self.tb, self.tb.monitor
        ctrl = tb.manifest.offset("CTRL")
        start = _start_mask(tb.manifest)        # the driver's START write (other values:
        results = []                            # extra writes a test slipped in)
        obs = None
        written = {}                            # register name -> last value written
        for index, op in enumerate(ops):
            kind = op[0]
            tb.log.debug("cycle %d: %s", mon.cycle, op if kind != "send" else ("send", len(op[1])))
            if kind == "write":
                if op[1] in tb.manifest.names:
                    written[tb.manifest.names[op[1]]] = op[2]
                if op[1] == ctrl and op[2] == start:
                    # announce the job's result frame before it can begin
                    mon.retire_optional()
                    nbytes = _job_recv(ops, index)
                    by_manifest = tb.manifest.result_frame_bytes(written)
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
