"""A bring-up stand-in for the accelerator: scratch registers and a stream loopback.

:class:`LoopbackDevice` has the accelerator top's AXI port names (``s_axil_*``,
``s_axis_*``, ``m_axis_*``), so :class:`~.top.BoardTop` can put it behind the UART
bridge in place of the accelerator. It tests a board, its clock, its UART and the
bridge protocol with a tiny design, e.g. on a part the accelerator does not fit.

Registers (32 bits): ``0x00`` ID (read-only, :data:`LOOPBACK_ID`, ASCII "LOOP"),
``0x04``, ``0x08``, ``0x0C`` scratch (read/write). Any other address answers
SLVERR. Every beat on ``s_axis`` comes back unchanged (TLAST included) on
``m_axis`` through a FIFO.

:class:`LoopbackConfig` plays the part of an accelerator config for the board
flow and its cache (``accelgen synth --board NAME --loopback``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered

from accelgen.hdl.axil import axi_top_members

__all__ = ["LoopbackConfig", "LoopbackDevice", "LOOPBACK_ID"]

LOOPBACK_ID = 0x4C4F4F50       # "LOOP"


@dataclass(frozen=True)
class LoopbackConfig:
    """The loopback stand-in's parameters (stream width, FIFO depth in beats)."""

    stream_bits: int = 32
    depth: int = 16

    def __post_init__(self):
        if not isinstance(self.stream_bits, int) or self.stream_bits % 8 or \
                not 8 <= self.stream_bits <= 512:
            raise ValueError(f"LoopbackConfig.stream_bits must be a multiple of 8 in 8..512, "
                             f"not {self.stream_bits!r}")
        if not isinstance(self.depth, int) or not 2 <= self.depth <= 4096:
            raise ValueError(f"LoopbackConfig.depth must be an integer in 2..4096, "
                             f"not {self.depth!r}")

    KIND = "loopback"
    rows = cols = 0          # no array: the board flow reports no DSPs per PE

    def to_dict(self) -> dict:
        return {"kind": self.KIND, **asdict(self)}

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    @property
    def top_name(self) -> str:
        return f"accelgen_loopback_{self.config_hash[:8]}"

    def describe(self) -> str:
        return f"loopback stand-in, {self.stream_bits}-bit stream"


class LoopbackDevice(wiring.Component):
    """Parameters
    ----------
    config : LoopbackConfig
    addr_width : int
        AXI4-Lite address width.
    """

    def __init__(self, config: LoopbackConfig, addr_width: int = 8):
        if not isinstance(config, LoopbackConfig):
            raise TypeError(f"LoopbackDevice config must be a LoopbackConfig, not {config!r}")
        self._cfg = config
        self._aw = addr_width
        sb = config.stream_bits
        # the accelerator's own AXI port table, so the stand-in plugs in where it goes
        super().__init__(axi_top_members(addr_width, config.stream_bits, own_domain=False))

    @property
    def config(self) -> LoopbackConfig:
        return self._cfg

    @property
    def addr_width(self) -> int:
        return self._aw

    def elaborate(self, platform):
        m = Module()
        sb = self._cfg.stream_bits
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=sb + 1, depth=self._cfg.depth)
        m.d.comb += [
            fifo.w_data.eq(Cat(self.s_axis_tdata, self.s_axis_tlast)),
            fifo.w_en.eq(self.s_axis_tvalid), self.s_axis_tready.eq(fifo.w_rdy),
            self.m_axis_tdata.eq(fifo.r_data[:sb]), self.m_axis_tlast.eq(fifo.r_data[sb]),
            self.m_axis_tvalid.eq(fifo.r_rdy), fifo.r_en.eq(self.m_axis_tready),
        ]
        scratch = [Signal(32, name=f"scratch{i}") for i in range(3)]

        def index(addr):
            return addr[2:4]

        def mapped(addr):
            return (addr >> 4 == 0) & (addr[:2] == 0)

        # Writes: address and data together, response the next cycle.
        take_w = Signal()
        m.d.comb += [take_w.eq(self.s_axil_awvalid & self.s_axil_wvalid & ~self.s_axil_bvalid),
                     self.s_axil_awready.eq(take_w), self.s_axil_wready.eq(take_w)]
        with m.If(take_w):
            ok = mapped(self.s_axil_awaddr) & (index(self.s_axil_awaddr) != 0)
            m.d.sync += [self.s_axil_bvalid.eq(1), self.s_axil_bresp.eq(Mux(ok, 0, 2))]
            for i, reg in enumerate(scratch, 1):
                with m.If(ok & (index(self.s_axil_awaddr) == i)):
                    m.d.sync += reg.eq(self.s_axil_wdata)
        with m.If(self.s_axil_bvalid & self.s_axil_bready):
            m.d.sync += self.s_axil_bvalid.eq(0)

        take_r = Signal()
        m.d.comb += [take_r.eq(self.s_axil_arvalid & ~self.s_axil_rvalid),
                     self.s_axil_arready.eq(take_r)]
        with m.If(take_r):
            ok = mapped(self.s_axil_araddr)
            values = [LOOPBACK_ID, *scratch]
            data = values[0]
            for i, v in enumerate(values[1:], 1):
                data = Mux(index(self.s_axil_araddr) == i, v, data)
            m.d.sync += [self.s_axil_rvalid.eq(1), self.s_axil_rresp.eq(Mux(ok, 0, 2)),
                         self.s_axil_rdata.eq(Mux(ok, data, 0))]
        with m.If(self.s_axil_rvalid & self.s_axil_rready):
            m.d.sync += self.s_axil_rvalid.eq(0)
        return m
