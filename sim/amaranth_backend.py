"""Amaranth-simulator backend: the accelerator top in Amaranth's Python simulator.

No external tools. Slow (a few thousand cycles per second for an 8x8 array), so it
is the fallback and the small-problem path. It implements the canonical cycle
protocol of :mod:`.device` (the Verilator harness implements the same one), so the
hardware counters agree between backends.
"""

from collections import deque

from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from accelgen.hdl.config import ConfigBase
from accelgen.hdl.generate import build_top

from .device import Device, BusError, DeviceTimeout, StreamError, OPS

__all__ = ["AmaranthDevice"]


class AmaranthDevice(Device):
    """Parameters
    ----------
    config : accelerator config
    vcd : str or None
        Write a VCD waveform of everything simulated to this path (closed by :meth:`close`).
    platform : object or None
        Handed to every ``elaborate`` (e.g. to test the designs' platform hooks, such
        as :func:`accelgen.hdl.pe.registered_multiplier`, with behavioural models).
    """

    def __init__(self, config: ConfigBase, *, vcd=None, platform=None):
        self.config = config
        self.top = build_top(config, own_domain=False)
        self._beat_bytes = config.stream_bits // 8
        self._tx = deque()           # (beat as int, last)
        self._rx_frames = deque()
        self._rx_cur = bytearray()
        self._cycles = 0
        self._program = None         # iterator over the operations being executed
        self._op = None              # generator of the current operation
        self._op_kind = None
        self._results = []
        self._error = None
        self._timeout = Device.DEFAULT_TIMEOUT
        self._last_wait = 0
        self._ctx = None
        self._sim = Simulator(self.top if platform is None
                              else Fragment.get(self.top, platform))
        self._sim.add_clock(1e-6)
        self._sim.add_testbench(self._server)
        self._vcd_ctx = None
        if vcd is not None:
            self._vcd_ctx = self._sim.write_vcd(str(vcd))
            self._vcd_ctx.__enter__()

    # -- the per-cycle server ----------------------------------------------------------

    async def _server(self, ctx):
        t = self.top
        self._ctx = ctx
        while True:
            # 1. operations, chained within the cycle: each drives the AXI4-Lite inputs for
            #    this cycle and observes the outputs, then yields until after the edge.
            while self._program is not None:
                if self._op is None:
                    op = next(self._program, None)
                    if op is None:
                        self._program = None
                        break
                    if op[0] == "send":
                        self.send(op[1])
                        continue
                    self._op = self._make_op(op)
                    self._op_kind = op[0]
                try:
                    self._op.send(None)
                    break
                except StopIteration as stop:
                    if self._op_kind in ("read", "recv"):
                        self._results.append(stop.value)
                    self._op = None
                except Exception as e:       # noqa: BLE001 - re-raised by execute()
                    self._error = e
                    self._op = None
                    self._program = None
            if self._op is None:
                self._idle_axil(ctx)
            # 2. stream engines: tx presents the queue head, rx always ready
            if self._tx:
                beat, last = self._tx[0]
                ctx.set(t.s_axis_tvalid, 1)
                ctx.set(t.s_axis_tdata, beat)
                ctx.set(t.s_axis_tlast, last)
            else:
                ctx.set(t.s_axis_tvalid, 0)
            ctx.set(t.m_axis_tready, 1)
            tx_hs = bool(self._tx) and ctx.get(t.s_axis_tready)
            rx_hs = ctx.get(t.m_axis_tvalid)
            rx_data = ctx.get(t.m_axis_tdata) if rx_hs else 0
            rx_last = ctx.get(t.m_axis_tlast) if rx_hs else 0
            await ctx.tick()
            self._cycles += 1
            if tx_hs:
                self._tx.popleft()
            if rx_hs:
                self._rx_cur += int(rx_data).to_bytes(self._beat_bytes, "little")
                if rx_last:
                    self._rx_frames.append(bytes(self._rx_cur))
                    self._rx_cur = bytearray()

    def _idle_axil(self, ctx):
        t = self.top
        for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
            ctx.set(getattr(t, f"s_axil_{name}"), 0)

    def _make_op(self, op):
        kind = op[0]
        timeout = self._timeout
        if kind == "write":
            return self._g_write(op[1], op[2], timeout)
        if kind == "read":
            return self._g_read(op[1], timeout)
        if kind == "recv":
            return self._g_recv(op[1], timeout)
        if kind == "wait":
            return self._g_wait(op[1], op[2], op[3], timeout)
        raise ValueError(f"Program operation must be one of {', '.join(OPS)}, not {kind!r}")

    def execute(self, ops, *, timeout_cycles=Device.DEFAULT_TIMEOUT):
        self._program = iter(list(ops))
        self._results = []
        self._error = None
        self._timeout = timeout_cycles
        while self._program is not None or self._op is not None:
            self._sim.advance()
        if self._error is not None:
            raise self._error
        return self._results

    # -- operations (generators: one yield per cycle, after driving and observing) -------

    @staticmethod
    def _budget(n, timeout, what):
        n += 1
        if n > timeout:
            raise DeviceTimeout(f"Timed out after {timeout} cycles waiting to {what}")
        return n

    def _g_write(self, offset, value, timeout):
        t = self.top
        aw = w = False
        n = 0
        while not (aw and w):
            ctx = self._ctx
            ctx.set(t.s_axil_awvalid, int(not aw))
            ctx.set(t.s_axil_wvalid, int(not w))
            ctx.set(t.s_axil_awaddr, offset)
            ctx.set(t.s_axil_wdata, value & 0xFFFFFFFF)
            ctx.set(t.s_axil_wstrb, 0xF)
            ctx.set(t.s_axil_awprot, 0)
            ctx.set(t.s_axil_bready, 0)
            ctx.set(t.s_axil_arvalid, 0)
            ctx.set(t.s_axil_rready, 0)
            aw_hs = not aw and ctx.get(t.s_axil_awready)
            w_hs = not w and ctx.get(t.s_axil_wready)
            yield
            aw, w = aw or bool(aw_hs), w or bool(w_hs)
            n = self._budget(n, timeout, f"have write {offset:#x} accepted")
        while True:
            ctx = self._ctx
            ctx.set(t.s_axil_awvalid, 0)
            ctx.set(t.s_axil_wvalid, 0)
            ctx.set(t.s_axil_bready, 1)
            hs = ctx.get(t.s_axil_bvalid)
            resp = ctx.get(t.s_axil_bresp)
            yield
            n = self._budget(n, timeout, f"get the response to write {offset:#x}")
            if hs:
                break
        if resp != 0:
            raise BusError(f"AXI4-Lite write to {offset:#x} answered "
                           f"{'SLVERR' if resp == 2 else resp}")

    def _g_read(self, offset, timeout):
        t = self.top
        n = 0
        while True:
            ctx = self._ctx
            ctx.set(t.s_axil_arvalid, 1)
            ctx.set(t.s_axil_araddr, offset)
            ctx.set(t.s_axil_arprot, 0)
            ctx.set(t.s_axil_rready, 0)
            ctx.set(t.s_axil_awvalid, 0)
            ctx.set(t.s_axil_wvalid, 0)
            ctx.set(t.s_axil_bready, 0)
            hs = ctx.get(t.s_axil_arready)
            yield
            n = self._budget(n, timeout, f"have read {offset:#x} accepted")
            if hs:
                break
        while True:
            ctx = self._ctx
            ctx.set(t.s_axil_arvalid, 0)
            ctx.set(t.s_axil_rready, 1)
            hs = ctx.get(t.s_axil_rvalid)
            data = ctx.get(t.s_axil_rdata)
            resp = ctx.get(t.s_axil_rresp)
            yield
            n = self._budget(n, timeout, f"get the data of read {offset:#x}")
            if hs:
                break
        if resp != 0:
            raise BusError(f"AXI4-Lite read of {offset:#x} answered "
                           f"{'SLVERR' if resp == 2 else resp}")
        return data

    def _g_recv(self, nbytes, timeout):
        n = 0
        while not self._rx_frames:
            self._idle_axil(self._ctx)
            yield
            n = self._budget(n, timeout, f"receive a {nbytes}-byte result frame")
        frame = self._rx_frames.popleft()
        if len(frame) != nbytes:
            raise StreamError(f"Result frame has {len(frame)} bytes, expected {nbytes}")
        return frame

    def _g_wait(self, offset, mask, expected, timeout):
        first = self._cycles
        while True:
            value = yield from self._g_read(offset, timeout)
            if value & mask == expected:
                self._last_wait = value
                return value
            if self._cycles - first > timeout:
                raise DeviceTimeout(f"CSR {offset:#x} & {mask:#x} did not become {expected:#x} "
                                    f"within {timeout} cycles (last value {value:#x})")

    # -- Device interface ------------------------------------------------------------------

    def write(self, offset, value, *, timeout_cycles=Device.DEFAULT_TIMEOUT):
        self.execute([("write", offset, value)], timeout_cycles=timeout_cycles)

    def read(self, offset, *, timeout_cycles=Device.DEFAULT_TIMEOUT):
        return self.execute([("read", offset)], timeout_cycles=timeout_cycles)[0]

    def send(self, data):
        data = bytes(data)
        bb = self._beat_bytes
        if not data or len(data) % bb:
            raise ValueError(f"A frame must be a positive whole number of {bb}-byte beats, "
                             f"not {len(data)} bytes")
        nbeats = len(data) // bb
        for i in range(nbeats):
            self._tx.append((int.from_bytes(data[i * bb:(i + 1) * bb], "little"),
                             int(i == nbeats - 1)))

    def recv(self, nbytes, *, timeout_cycles=Device.DEFAULT_TIMEOUT):
        return self.execute([("recv", nbytes)], timeout_cycles=timeout_cycles)[0]

    def wait(self, offset, mask, expected, *, timeout_cycles=Device.DEFAULT_TIMEOUT):
        self.execute([("wait", offset, mask, expected)], timeout_cycles=timeout_cycles)
        return self._last_wait

    @property
    def cycles(self) -> int:
        return self._cycles

    def close(self):
        if self._vcd_ctx is not None:
            self._vcd_ctx.__exit__(None, None, None)
            self._vcd_ctx = None
