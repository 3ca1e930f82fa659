"""Vendor primitives the accelerator asks its platform for (``accelgen_*`` hooks).

Yosys maps a ``$mul`` onto an ECP5 MULT18X18D but leaves the registers around it
in the fabric, so every multiply is a combinational DSP path from a fabric
flip-flop to a fabric flip-flop: about 7 ns on a -6 part, more than a 150 MHz
clock allows. The processing elements already register their operands and their
product (the shape of a DSP block with input and output registers), so they ask
the platform for a multiplier that does exactly that (see
:func:`accelgen.hdl.pe.registered_multiplier`); :class:`ECP5Primitives` answers with a
MULT18X18D whose input and output registers are switched on. The fabric operand
registers stay as the systolic pass-through, so cycle behaviour is unchanged.

Likewise the scratchpads (:class:`accelgen.hdl.ram.PipelinedRAM`) register each read
word twice; :class:`ECP5RAM` makes the second register the DP16KD's own output
register (``REGMODE="OUTREG"``), which Yosys' block RAM mapping never uses: without
it a DP16KD read takes 5.8 ns from the clock to the data pins on a -6 part.

This lives in ``boards`` because it is vendor-specific; ``hdl`` only knows the
hooks' names and contracts.
"""

from __future__ import annotations

from amaranth import Cat, Instance, Module, ClockSignal, Shape, Signal, signed, \
    unsigned
from amaranth.lib import data, wiring
from amaranth.utils import bits_for
from amaranth.lib.wiring import In, Out

__all__ = ["ECP5Multiplier", "ECP5Primitives", "ecp5_multiplier", "ECP5RAM", "ecp5_ram"]

#: Operand width of the MULT18X18D ports.
DSP_PORT_BITS = 18


def _check_fit(a_shape, b_shape, p_shape):
    a, b, p = Shape.cast(a_shape), Shape.cast(b_shape), Shape.cast(p_shape)
    for name, shape in (("a", a), ("b", b)):
        if shape.width + (not shape.signed) > DSP_PORT_BITS:
            raise ValueError(f"MULT18X18D operand {name} of shape {shape} does not fit "
                             f"{DSP_PORT_BITS}-bit two's complement")
    if p.width > 2 * DSP_PORT_BITS:
        raise ValueError(f"MULT18X18D product is {2 * DSP_PORT_BITS} bits, not {p.width}")
    return a, b, p


class ECP5Multiplier(wiring.Component):
    """``p`` = the product of ``a`` and ``b`` registered at the DSP inputs (loaded
    when ``a_en``/``b_en``) and registered again at its output: two cycles from
    ``a``/``b`` to ``p``, one MULT18X18D with REG_INPUTA/B and REG_OUTPUT on.

    Operands are sign- or zero-extended to 18 bits and multiplied as signed, so
    both must fit 18-bit two's complement (signed up to 18 bits, unsigned up to 17).

    With ``output_enable`` the product register loads only while the input ``p_en``
    is high (a stalling pipeline); otherwise it loads every cycle.
    """

    def __init__(self, a_shape, b_shape, p_shape, *, output_enable: bool = False):
        self._a, self._b, self._p = _check_fit(a_shape, b_shape, p_shape)
        self._output_enable = bool(output_enable)
        members = {"a": In(self._a), "b": In(self._b), "a_en": In(1), "b_en": In(1),
                   "p": Out(self._p)}
        if self._output_enable:
            members["p_en"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        a18, b18 = Signal(signed(DSP_PORT_BITS)), Signal(signed(DSP_PORT_BITS))
        p36 = Signal(2 * DSP_PORT_BITS)
        m.d.comb += [a18.eq(self.a), b18.eq(self.b), self.p.eq(p36[:self._p.width])]
        ports = {}
        for i in range(DSP_PORT_BITS):
            ports[f"i_A{i}"] = a18[i]
            ports[f"i_B{i}"] = b18[i]
            ports[f"i_C{i}"] = 0
        for i in range(2 * DSP_PORT_BITS):
            ports[f"o_P{i}"] = p36[i]
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE1", p_REG_INPUTB_RST="RST0",
            p_REG_INPUTC_CLK="NONE",
            p_REG_PIPELINE_CLK="NONE",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE2", p_REG_OUTPUT_RST="RST0",
            p_CLK0_DIV="ENABLED", p_HIGHSPEED_CLK="NONE", p_GSR="DISABLED",
            p_CAS_MATCH_REG="FALSE", p_SOURCEB_MODE="B_INPUT", p_MULT_BYPASS="DISABLED",
            p_RESETMODE="SYNC",
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
            i_CLK0=ClockSignal(), i_CLK1=0, i_CLK2=0, i_CLK3=0,
            i_CE0=self.a_en, i_CE1=self.b_en,
            i_CE2=self.p_en if self._output_enable else 1, i_CE3=1,
            # no reset: the registers hold operands and products that the PE reads under
            # its valid flags, so a soft reset need not reach every DSP block
            i_RST0=0, i_RST1=0, i_RST2=0, i_RST3=0,
            **ports)
        return m


def ecp5_multiplier(a_shape, b_shape, p_shape, *, output_enable: bool = False):
    """The registered multiplier, or ``None`` if the operands do not fit a MULT18X18D."""
    try:
        _check_fit(a_shape, b_shape, p_shape)
    except ValueError:
        return None
    return ECP5Multiplier(a_shape, b_shape, p_shape, output_enable=output_enable)


#: DP16KD aspect ratios: data width -> (address bits below the word address, depth).
#: The 14-bit address is in units of one bit of the x1 mode, so a word address sits
#: above log2 of the mode's width (x9 and x18 count as 8 and 16).
DP16KD_MODES = {18: 4, 9: 3, 4: 2, 2: 1, 1: 0}
DP16KD_ADDR_BITS = 14


def dp16kd_mode(depth: int) -> int | None:
    """The widest DP16KD data width whose depth holds ``depth`` words, or ``None``."""
    for width, shift in DP16KD_MODES.items():
        if depth <= 1 << (DP16KD_ADDR_BITS - shift):
            return width
    return None


class ECP5RAM(wiring.Component):
    """The :class:`accelgen.hdl.ram.PipelinedRAM` contract on DP16KD blocks: port A
    writes, port B reads with ``REGMODE_B="OUTREG"`` (the output register is the
    second cycle of read latency). Each read port gets its own copy of the blocks;
    the word is split over ``ceil(width / w)`` blocks in the widest aspect ratio
    ``w`` whose depth holds the memory (no depth cascading, so no output mux).
    """

    def __init__(self, width: int, depth: int, read_ports: int, *, read_enable: bool = False):
        self.mode = dp16kd_mode(depth)
        if self.mode is None:
            raise ValueError(f"{depth} words need more than one DP16KD in depth")
        self.width, self.depth, self.read_ports = width, depth, read_ports
        self.read_enable = bool(read_enable)
        aw = max(1, bits_for(depth - 1))
        members = {
            "w_addr": In(aw), "w_data": In(width), "w_en": In(1),
            "r_addr": In(data.ArrayLayout(unsigned(aw), read_ports)),
            "r_data": Out(data.ArrayLayout(unsigned(width), read_ports)),
        }
        if self.read_enable:        # CEB and OCEB: the read side holds while low
            members["r_en"] = In(1)
        super().__init__(members)

    @property
    def blocks(self) -> int:
        return -(-self.width // self.mode) * self.read_ports

    def elaborate(self, platform):
        m = Module()
        w, shift = self.mode, DP16KD_MODES[self.mode]
        n = -(-self.width // w)

        def address(addr, low):
            """The 14 address pins: the word address above ``shift`` bits of ``low``."""
            full = Signal(DP16KD_ADDR_BITS)
            m.d.comb += full.eq(Cat(low, addr) if shift else addr)
            return full

        # x18 writes: ADA1..0 are the byte enables (both bytes); other modes: zero
        wa = address(self.w_addr, Signal(shift, init=(3 if w == 18 else 0)) if shift else None)
        wdata = Signal(n * w)
        m.d.comb += wdata.eq(self.w_data)
        r_en = self.r_en if self.read_enable else 1
        for port in range(self.read_ports):
            ra = address(self.r_addr[port], Signal(shift) if shift else None)
            rdata = Signal(n * w)
            m.d.comb += self.r_data[port].eq(rdata[:self.width])
            for b in range(n):
                pins = {}
                for i in range(DP16KD_ADDR_BITS):
                    pins[f"i_ADA{i}"] = wa[i]
                    pins[f"i_ADB{i}"] = ra[i]
                for i in range(18):
                    pins[f"i_DIA{i}"] = wdata[b * w + i] if i < w else 0
                    pins[f"i_DIB{i}"] = 0
                    if i < w:
                        pins[f"o_DOB{i}"] = rdata[b * w + i]
                for i in range(3):
                    pins[f"i_CSA{i}"] = 0
                    pins[f"i_CSB{i}"] = 0
                m.submodules[f"ebr_{port}_{b}"] = Instance(
                    "DP16KD",
                    p_DATA_WIDTH_A=w, p_DATA_WIDTH_B=w,
                    p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
                    p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                    p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                    p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                    i_CLKA=ClockSignal(), i_CEA=1, i_OCEA=1, i_WEA=self.w_en, i_RSTA=0,
                    i_CLKB=ClockSignal(), i_CEB=r_en, i_OCEB=r_en, i_WEB=0, i_RSTB=0,
                    **pins)
        return m


def ecp5_ram(width: int, depth: int, read_ports: int, *, read_enable: bool = False):
    """DP16KD blocks with output registers, or ``None`` when the memory is deeper than
    one block (Yosys' own mapping then cascades them, without output registers)."""
    if dp16kd_mode(depth) is None:
        return None
    return ECP5RAM(width, depth, read_ports, read_enable=read_enable)


class ECP5Primitives:
    """A platform stand-in for out-of-context ECP5 runs: it offers the hooks only.

    Amaranth hands the object given to ``rtlil.convert(..., platform=...)`` to every
    ``elaborate``; parts of the accelerator that find an ``accelgen_*`` hook on it use
    it, everything else ignores it. ``multipliers=False`` leaves the multipliers to
    Yosys (runs that keep some or all of them off the DSP blocks). ``budget``: hand
    out at most that many MULT18X18D blocks, in elaboration order; later requests get
    ``None`` and those multipliers stay Amaranth's ``*`` (logic, with ``-nodsp``).
    """

    def __init__(self, multipliers: bool = True, budget: int | None = None):
        if budget is not None and (not isinstance(budget, int) or budget < 0):
            raise ValueError(f"DSP budget must be a non-negative integer, not {budget!r}")
        self.budget, self.handed_out = budget, 0
        if multipliers:
            self.accelgen_multiplier = self._multiplier

    def _multiplier(self, a_shape, b_shape, p_shape, *, output_enable: bool = False):
        if self.budget is not None and self.handed_out >= self.budget:
            return None
        mul = ecp5_multiplier(a_shape, b_shape, p_shape, output_enable=output_enable)
        self.handed_out += mul is not None
        return mul

    @staticmethod
    def accelgen_memory(width, depth, read_ports, *, read_enable=False):
        return ecp5_ram(width, depth, read_ports, read_enable=read_enable)

    def install(self, platform) -> None:
        """Offer these hooks on an amaranth-boards ``platform`` too."""
        for name in ("accelgen_multiplier", "accelgen_memory"):
            if hasattr(self, name):
                setattr(platform, name, getattr(self, name))
