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

This lives in ``boards`` because it is vendor-specific; ``hdl`` only knows the
hook's name and contract.
"""

from __future__ import annotations

from amaranth import Instance, Module, ResetSignal, ClockSignal, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ECP5Multiplier", "ECP5Primitives", "ecp5_multiplier"]

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
    """

    def __init__(self, a_shape, b_shape, p_shape):
        self._a, self._b, self._p = _check_fit(a_shape, b_shape, p_shape)
        super().__init__({"a": In(self._a), "b": In(self._b), "a_en": In(1), "b_en": In(1),
                          "p": Out(self._p)})

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
            i_CE0=self.a_en, i_CE1=self.b_en, i_CE2=1, i_CE3=1,
            i_RST0=ResetSignal(), i_RST1=0, i_RST2=0, i_RST3=0,
            **ports)
        return m


def ecp5_multiplier(a_shape, b_shape, p_shape):
    """The registered multiplier, or ``None`` if the operands do not fit a MULT18X18D."""
    try:
        _check_fit(a_shape, b_shape, p_shape)
    except ValueError:
        return None
    return ECP5Multiplier(a_shape, b_shape, p_shape)


class ECP5Primitives:
    """A platform stand-in for out-of-context ECP5 runs: it offers the hooks only.

    Amaranth hands the object given to ``rtlil.convert(..., platform=...)`` to every
    ``elaborate``; parts of the accelerator that find ``accelgen_multiplier`` on it
    use it, everything else ignores it.
    """

    @staticmethod
    def accelgen_multiplier(a_shape, b_shape, p_shape):
        return ecp5_multiplier(a_shape, b_shape, p_shape)
