"""Board top: the accelerator behind a PLL at the requested clock and a UART bridge.

Data path on the board::

    host --UART pins--> UARTRx --> UARTBridge --AXI4-Lite--> GemmTop (s_axil_*)
                                              --AXI4-Stream-> GemmTop (s_axis_*)
    host <--UART pins-- UARTTx <-- UARTBridge <-AXI4-Stream-- GemmTop (m_axis_*)

The board's default clock feeds a PLL (ECP5 ``EHXPLLL``, iCE40 ``SB_PLL40_PAD``)
programmed for the frequency closest to the requested one; the ``sync`` domain
(accelerator, bridge, UART) runs on it and stays in reset until the PLL locks.
LED 0, if the board has one, shows the lock. See :mod:`.bridge` for the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.build import ResourceError
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from .bridge import UARTBridge
from .uart import UARTRx, UARTTx, uart_divisor

__all__ = ["BoardTop", "PLLSetting", "PLL_TOLERANCE", "ecp5_pll", "ice40_pll", "connect_bridge"]

#: Largest relative distance between the requested and the generated clock. The
#: closest frequency the dividers reach is used; reports show the actual one.
PLL_TOLERANCE = 0.05

_AXIL_TO_SLAVE = ("awaddr", "awprot", "awvalid", "wdata", "wstrb", "wvalid", "bready",
                  "araddr", "arprot", "arvalid", "rready")
_AXIL_TO_MASTER = ("awready", "wready", "bresp", "bvalid", "arready", "rdata", "rresp", "rvalid")


def connect_bridge(m: Module, bridge: UARTBridge, acc) -> None:
    """Wire a bridge's AXI master ports to an accelerator top's AXI slave ports."""
    for name in _AXIL_TO_SLAVE:
        m.d.comb += getattr(acc, f"s_axil_{name}").eq(getattr(bridge, f"m_axil_{name}"))
    for name in _AXIL_TO_MASTER:
        m.d.comb += getattr(bridge, f"m_axil_{name}").eq(getattr(acc, f"s_axil_{name}"))
    for name in ("tdata", "tlast", "tvalid"):
        m.d.comb += [getattr(acc, f"s_axis_{name}").eq(getattr(bridge, f"m_axis_{name}")),
                     getattr(bridge, f"s_axis_{name}").eq(getattr(acc, f"m_axis_{name}"))]
    m.d.comb += [bridge.m_axis_tready.eq(acc.s_axis_tready),
                 acc.m_axis_tready.eq(bridge.s_axis_tready)]


@dataclass(frozen=True)
class PLLSetting:
    """A PLL configuration and the clock it makes.

    Members
    -------
    primitive : str
        ``"EHXPLLL"`` or ``"SB_PLL40_PAD"``.
    f_in, f_out, f_vco : float
        Input, output and VCO frequencies in Hz.
    params : dict
        Instance parameters (``p_`` names without the prefix).
    """

    primitive: str
    f_in: float
    f_out: float
    f_vco: float
    params: dict


def ecp5_pll(f_in: float, f_out: float) -> PLLSetting:
    """``EHXPLLL`` dividers for ``f_out`` from ``f_in`` (the ``ecppll`` search).

    Limits (ECP5 sysCLOCK, as ``ecppll`` uses them): input 8..400 MHz, PFD
    3.125..400 MHz, VCO 400..800 MHz, output 3.125..400 MHz.

    Raises
    ------
    ValueError
        If no setting lands within :data:`PLL_TOLERANCE` of ``f_out``.
    """
    mhz_in, want = f_in / 1e6, f_out / 1e6
    if not 8 <= mhz_in <= 400 or not 3.125 <= want <= 400:
        raise ValueError(f"ECP5 PLL output must be 3.125..400 MHz from an 8..400 MHz input, "
                         f"not {want:g} MHz from {mhz_in:g} MHz")
    best = None
    for refdiv in range(1, 129):
        pfd = mhz_in / refdiv
        if not 3.125 <= pfd <= 400:
            continue
        for fbdiv in range(1, 81):
            out = pfd * fbdiv
            for opdiv in range(1, 129):
                vco = out * opdiv
                if not 400 <= vco <= 800:
                    continue
                err = abs(out - want)
                if best is None or err < best[0] - 1e-9:
                    best = (err, refdiv, fbdiv, opdiv, out, vco)
                break       # the smallest valid opdiv for this out is as good as any
    if best is None or best[0] > PLL_TOLERANCE * want:
        raise ValueError(f"ECP5 PLL cannot make {want:g} MHz from {mhz_in:g} MHz within "
                         f"{100 * PLL_TOLERANCE:g}%")
    _, refdiv, fbdiv, opdiv, out, vco = best
    params = {"CLKI_DIV": refdiv, "CLKFB_DIV": fbdiv, "CLKOP_DIV": opdiv,
              "CLKOP_CPHASE": opdiv - 1, "CLKOP_FPHASE": 0, "CLKOP_ENABLE": "ENABLED",
              "FEEDBK_PATH": "CLKOP", "PLLRST_ENA": "DISABLED", "INTFB_WAKE": "DISABLED",
              "STDBY_ENABLE": "DISABLED", "DPHASE_SOURCE": "DISABLED",
              "OUTDIVIDER_MUXA": "DIVA"}
    return PLLSetting("EHXPLLL", f_in, out * 1e6, vco * 1e6, params)


def ice40_pll(f_in: float, f_out: float) -> PLLSetting:
    """``SB_PLL40_PAD`` dividers (simple feedback) for ``f_out`` from ``f_in`` (the ``icepll`` search).

    Limits (iCE40 sysCLOCK): input 10..133 MHz, PFD 10..133 MHz, VCO 533..1066 MHz,
    output 16..275 MHz.

    Raises
    ------
    ValueError
        If no setting lands within :data:`PLL_TOLERANCE` of ``f_out``.
    """
    mhz_in, want = f_in / 1e6, f_out / 1e6
    if not 10 <= mhz_in <= 133 or not 16 <= want <= 275:
        raise ValueError(f"iCE40 PLL output must be 16..275 MHz from a 10..133 MHz input, "
                         f"not {want:g} MHz from {mhz_in:g} MHz")
    best = None
    for divr in range(16):
        pfd = mhz_in / (divr + 1)
        if not 10 <= pfd <= 133:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533 <= vco <= 1066:
                continue
            for divq in range(1, 7):
                out = vco / (1 << divq)
                err = abs(out - want)
                if best is None or err < best[0] - 1e-9:
                    best = (err, divr, divf, divq, out, vco, pfd)
    if best is None or best[0] > PLL_TOLERANCE * want:
        raise ValueError(f"iCE40 PLL cannot make {want:g} MHz from {mhz_in:g} MHz within "
                         f"{100 * PLL_TOLERANCE:g}%")
    _, divr, divf, divq, out, vco, pfd = best
    filter_range = next(i for i, lim in enumerate((17, 26, 44, 66, 101, 1e9), 1) if pfd < lim)
    params = {"FEEDBACK_PATH": "SIMPLE", "DIVR": divr, "DIVF": divf, "DIVQ": divq,
              "FILTER_RANGE": filter_range}
    return PLLSetting("SB_PLL40_PAD", f_in, out * 1e6, vco * 1e6, params)


class BoardTop(Elaboratable):
    """The accelerator on a board, reachable over the board's UART.

    Parameters
    ----------
    config : GemmConfig or LoopbackConfig
        The accelerator, or the bring-up stand-in of :mod:`.loopback`.
    clock_hz : float or None
        Requested accelerator clock; ``None`` runs at the board's own clock
        without a PLL.
    baud : int
        UART rate (the board's USB-serial chip must support it).
    fifo_depth : int
        Bridge input FIFO depth in beats.

    Members
    -------
    pll : PLLSetting or None
        Set during elaboration: the PLL used (``None`` without one).
    clock_hz_actual : float or None
        Set during elaboration: the accelerator clock the PLL makes.
    """

    def __init__(self, config, *, clock_hz: float | None = None, baud: int = 115200,
                 fifo_depth: int = 64):
        if clock_hz is not None and not clock_hz > 0:
            raise ValueError(f"Board clock must be a positive frequency in Hz, not {clock_hz!r}")
        self.config = config
        self.clock_hz = clock_hz
        self.baud = baud
        self.fifo_depth = fifo_depth
        self.pll = None
        self.clock_hz_actual = None

    def elaborate(self, platform):
        from accelgen.hdl.generate import build_top

        m = Module()
        f_in = platform.default_clk_frequency
        m.domains.sync = ClockDomain("sync")
        clk = Signal()
        locked = Signal()
        family = "ecp5" if platform.device.upper().startswith("LFE5") else "ice40"
        use_pll = self.clock_hz is not None and abs(self.clock_hz - f_in) >= 1
        clk_pad = platform.request(platform.default_clk, 0, dir="-")
        if not (use_pll and family == "ice40"):
            # The iCE40 PLL takes its reference from the pad itself (SB_PLL40_PAD): a
            # clock that went through an input buffer cannot reach it.
            m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_pad)
            clk_in = clk_buf.i
        if not use_pll:
            self.clock_hz_actual = f_in
            m.d.comb += [clk.eq(clk_in), locked.eq(1)]
        else:
            self.pll = pll = (ecp5_pll if family == "ecp5" else ice40_pll)(f_in, self.clock_hz)
            self.clock_hz_actual = pll.f_out
            params = {f"p_{k}": v for k, v in pll.params.items()}
            if family == "ecp5":
                m.submodules.pll = Instance(
                    "EHXPLLL", **params,
                    a_FREQUENCY_PIN_CLKI=f"{f_in / 1e6:g}",
                    a_FREQUENCY_PIN_CLKOP=f"{pll.f_out / 1e6:g}",
                    a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                    a_MFG_GMCREF_SEL="2",
                    i_CLKI=clk_in, i_CLKFB=clk, o_CLKOP=clk, o_LOCK=locked,
                    i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1,
                    i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0)
            else:
                m.submodules.pll = Instance(
                    "SB_PLL40_PAD", **params, p_PLLOUT_SELECT="GENCLK",
                    io_PACKAGEPIN=clk_pad.io, o_PLLOUTGLOBAL=clk, o_LOCK=locked,
                    i_RESETB=1, i_BYPASS=0)
        m.d.comb += ClockSignal("sync").eq(clk)
        platform.add_clock_constraint(clk, self.clock_hz_actual)
        m.submodules.rst_sync = ResetSynchronizer(~locked, domain="sync")

        from .loopback import LoopbackConfig, LoopbackDevice
        if isinstance(self.config, LoopbackConfig):
            m.submodules.acc = acc = LoopbackDevice(self.config)
            addr_width = acc.addr_width
        else:
            m.submodules.acc = acc = build_top(self.config, own_domain=False)
            addr_width = acc.regmap.addr_width
        m.submodules.bridge = bridge = UARTBridge(addr_width, self.config.stream_bits,
                                                  fifo_depth=self.fifo_depth,
                                                  timeout=int(self.clock_hz_actual // 100))
        connect_bridge(m, bridge, acc)
        divisor = uart_divisor(self.clock_hz_actual, self.baud)
        m.submodules.uart_rx = rx = UARTRx(divisor)
        m.submodules.uart_tx = tx = UARTTx(divisor)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [
            rx.rx.eq(rx_buf.i), tx_buf.o.eq(tx.tx),
            bridge.rx.payload.eq(rx.o.payload), bridge.rx.valid.eq(rx.o.valid),
            tx.i.payload.eq(bridge.tx.payload), tx.i.valid.eq(bridge.tx.valid),
            bridge.tx.ready.eq(tx.i.ready),
        ]
        # A framing error shows in STATUS: count changes of the receiver's error counter.
        errors = Signal.like(rx.errors)
        m.d.sync += errors.eq(rx.errors)
        m.d.comb += bridge.rx_error.eq(errors != rx.errors)
        try:
            led = platform.request("led", 0, dir="-")
        except ResourceError:
            led = None
        if led is not None:
            m.submodules.led_buf = led_buf = io.Buffer("o", led)
            m.d.comb += led_buf.o.eq(locked)
        return m
