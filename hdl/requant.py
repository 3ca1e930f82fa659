"""Requantization of accumulator rows to int8.

Per lane: ``y = sat8((x * mult + round) >> shift)``, with ``round = 2**(shift-1)``
when ``shift > 0`` (round half up, i.e. towards +inf on ties), arithmetic shift,
saturation to [-128, 127], then ``max(y, 0)`` when ``relu``. This is the
per-tensor fixed-point scale of integer-only inference (scale = mult / 2**shift).

Three pipeline stages (product, rounding shift, saturate); with ``enable`` low
the row passes through unchanged with the same latency.
"""

from amaranth import Module, Signal, Mux, Const, signed, unsigned
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

__all__ = ["Requantizer", "requantize_reference"]


def requantize_reference(x, mult: int, shift: int, relu: bool):
    """Numpy model of the hardware (``x`` an integer array); returns int8."""
    import numpy as np
    x = np.asarray(x, dtype=object)
    rnd = (1 << (shift - 1)) if shift > 0 else 0
    y = (x * mult + rnd) >> shift
    y = np.clip(y, 0 if relu else -128, 127)
    return y.astype(np.int8)


class Requantizer(wiring.Component):
    """Parameters
    ----------
    lanes : int
    acc_bits : int

    Members
    -------
    i_valid, i_data, i_last : In
        Accumulator row (``lanes`` x signed ``acc_bits``) and a side flag.
    enable, relu : In(1)
    mult : In(16)
        Unsigned multiplier.
    shift : In(6)
    o_valid, o_last : Out
    o_data : Out(lanes * acc_bits)
        With ``enable``: ``lanes`` int8 values in the low bits, zeros above.
        Without: the input row.
    """

    LATENCY = 3

    def __init__(self, lanes, acc_bits):
        self._lanes, self._acc = lanes, acc_bits
        row = data.ArrayLayout(signed(acc_bits), lanes)
        super().__init__({
            "i_valid": In(1), "i_last": In(1), "i_data": In(row),
            "enable": In(1), "relu": In(1), "mult": In(16), "shift": In(6),
            "o_valid": Out(1), "o_last": Out(1), "o_data": Out(lanes * acc_bits),
        })

    @property
    def latency(self) -> int:
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        L, A = self._lanes, self._acc
        v = [Signal(name=f"v{i}") for i in range(3)]
        last = [Signal(name=f"last{i}") for i in range(3)]
        raw = [Signal(L * A, name=f"raw{i}") for i in range(3)]
        en = [Signal(name=f"en{i}") for i in range(3)]
        m.d.sync += [v[0].eq(self.i_valid), last[0].eq(self.i_last), raw[0].eq(self.i_data),
                     en[0].eq(self.enable)]
        for i in (1, 2):
            m.d.sync += [v[i].eq(v[i - 1]), last[i].eq(last[i - 1])]
            m.d.sync += [raw[i].eq(raw[i - 1]), en[i].eq(en[i - 1])]
        shift1 = Signal(6)
        relu1, relu2 = Signal(), Signal()
        m.d.sync += [shift1.eq(self.shift), relu1.eq(self.relu), relu2.eq(relu1)]

        out8 = Signal(L * 8)
        for lane in range(L):
            prod = Signal(signed(A + 17), name=f"prod{lane}")
            shifted = Signal(signed(max(A + 18, 66)), name=f"shifted{lane}")
            m.d.sync += prod.eq(self.i_data[lane] * self.mult)
            rnd = Signal(signed(max(A + 18, 66)), name=f"rnd{lane}")
            half = Signal(64, name=f"half{lane}")       # 2**(shift-1), or 0 for shift 0
            m.d.comb += [half.eq((Const(1, 1) << shift1) >> 1), rnd.eq(prod + half)]
            m.d.sync += shifted.eq(rnd >> shift1)
            sat = Signal(signed(8), name=f"sat{lane}")
            lo = Mux(relu2, 0, -128)
            m.d.comb += sat.eq(Mux(shifted > 127, 127, Mux(shifted < lo, lo, shifted)))
            m.d.sync += out8[lane * 8:(lane + 1) * 8].eq(sat)
        m.d.comb += [
            self.o_valid.eq(v[2]), self.o_last.eq(last[2]),
            self.o_data.eq(Mux(en[2], out8, raw[2])),
        ]
        return m
