"""Requantization of accumulator rows to int8.

Per lane: ``y = sat8((x * mult + round) >> shift)``, with ``round = 2**(shift-1)``
when ``shift > 0`` (round half up, i.e. towards +inf on ties), arithmetic shift,
saturation to [-128, 127], then ``max(y, 0)`` when ``relu``. This is the
per-tensor fixed-point scale of integer-only inference (scale = mult / 2**shift).

Five pipeline stages (partial products, their sum, rounding add, shift,
saturate); with ``enable`` low the row passes through unchanged with the same
latency.
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

    Pipeline (one register per stage, sized for FPGA DSP blocks and carry chains):
    16-bit slices of the accumulator times the multiplier (one DSP multiply each),
    their sum, the rounding add, the arithmetic shift, saturation.
    """

    LATENCY = 5

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
        L, A, D = self._lanes, self._acc, self.LATENCY
        v = [Signal(name=f"v{i}") for i in range(D)]
        last = [Signal(name=f"last{i}") for i in range(D)]
        raw = [Signal(L * A, name=f"raw{i}") for i in range(D)]
        en = [Signal(name=f"en{i}") for i in range(D)]
        shift = [Signal(6, name=f"shift{i}") for i in range(D)]
        relu = [Signal(name=f"relu{i}") for i in range(D)]
        m.d.sync += [v[0].eq(self.i_valid), last[0].eq(self.i_last),
                     raw[0].eq(self.i_data.as_value()), en[0].eq(self.enable),
                     shift[0].eq(self.shift), relu[0].eq(self.relu)]
        for i in range(1, D):
            m.d.sync += [v[i].eq(v[i - 1]), last[i].eq(last[i - 1]), raw[i].eq(raw[i - 1]),
                         en[i].eq(en[i - 1]), shift[i].eq(shift[i - 1]), relu[i].eq(relu[i - 1])]
        mult = Signal(16)
        m.d.comb += mult.eq(self.mult)
        width = max(A + 18, 66)
        out8 = Signal(L * 8)
        n_slices = -(-A // 16)
        for lane in range(L):
            x = self.i_data[lane]
            # stage 1: 16-bit slices times the multiplier (the top slice signed)
            parts = []
            for k in range(n_slices):
                lo, hi = 16 * k, min(A, 16 * (k + 1))
                sl = x[lo:hi]
                sl = sl.as_signed() if k == n_slices - 1 else sl
                p = Signal(signed(hi - lo + 17 + 1), name=f"part{lane}_{k}")
                m.d.sync += p.eq(sl * mult)
                parts.append((p, lo))
            # stage 2: sum of the partial products
            prod = Signal(signed(width), name=f"prod{lane}")
            total = parts[0][0]
            for p, lo in parts[1:]:
                total = total + (p << lo)
            m.d.sync += prod.eq(total)
            # stage 3: add 2**(shift-1) (round half up)
            rnd = Signal(signed(width), name=f"rnd{lane}")
            half = Signal(64, name=f"half{lane}")
            m.d.comb += half.eq((Const(1, 1) << shift[1]) >> 1)
            m.d.sync += rnd.eq(prod + half)
            # stage 4: arithmetic shift
            shifted = Signal(signed(width), name=f"shifted{lane}")
            m.d.sync += shifted.eq(rnd >> shift[2])
            # stage 5: saturate (and ReLU)
            lo8 = Mux(relu[3], 0, -128)
            sat = Signal(signed(8), name=f"sat{lane}")
            m.d.comb += sat.eq(Mux(shifted > 127, 127, Mux(shifted < lo8, lo8, shifted)))
            m.d.sync += out8[lane * 8:(lane + 1) * 8].eq(sat)
        m.d.comb += [
            self.o_valid.eq(v[D - 1]), self.o_last.eq(last[D - 1]),
            self.o_data.eq(Mux(en[D - 1], out8, raw[D - 1])),
        ]
        return m
