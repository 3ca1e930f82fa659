"""Requantization of accumulator rows to int8.

Per lane: ``y = sat8((x * mult + round) >> shift)``, with ``round = 2**(shift-1)``
when ``shift > 0`` (round half up, i.e. towards +inf on ties), arithmetic shift,
saturation to [-128, 127], then ``max(y, 0)`` when ``relu``. This is the
per-tensor fixed-point scale of integer-only inference (scale = mult / 2**shift).

Eight pipeline stages (operand registers, partial products, their sum, rounding
add, coarse shift, fine shift, saturation check, saturate); with ``enable`` low the row passes through unchanged with
the same latency. The first two are a DSP block's input and output registers where
the platform offers a registered multiplier (``accelgen_multiplier``, see
:func:`.pe.registered_multiplier`).
"""

from amaranth import Module, Signal, Mux, Const, Cat, signed, unsigned
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

from .pe import registered_multiplier

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
    16-bit slices of the accumulator and the multiplier registered (a DSP block's
    input registers), their products (one DSP multiply each, output register), the
    sum of the products, the rounding add, the arithmetic shift in two steps (by the
    multiple of 8, then by the rest: one 8-way multiplexer level each), the
    saturation check (a reduction of the bits above the int8), saturation.

    The product of an ``acc_bits`` value and the 16-bit multiplier has
    ``P = acc_bits + 17`` bits. Shifts past ``P`` give 0 for every input (the
    rounding term ``2**(shift-1)`` then exceeds twice any product, so the sum lies
    in ``(0, 2**shift)``), so the datapath is ``P + 1`` bits wide and larger shifts
    are flagged instead of carried through wider adders.
    """

    LATENCY = 8

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
        P = A + 17                 # product bits (signed A x unsigned 16, with headroom)
        width = P + 1              # product + 2**(shift-1) for shift <= P
        # only the valid, last and enable flags take a reset: the data registers are
        # read only under their valid flag, and a soft reset (ResetInserter skips
        # reset-less signals) would otherwise fan out to every one of them
        v = [Signal(name=f"v{i}") for i in range(D)]
        last = [Signal(name=f"last{i}") for i in range(D)]
        raw = [Signal(L * A, name=f"raw{i}", reset_less=True) for i in range(D)]
        en = [Signal(name=f"en{i}") for i in range(D)]
        shift = [Signal(6, name=f"shift{i}", reset_less=True) for i in range(D)]
        relu = [Signal(name=f"relu{i}", reset_less=True) for i in range(D)]
        big = [Signal(name=f"big{i}", reset_less=True)   # shift > P: the result is 0
               for i in range(D)]
        m.d.sync += [v[0].eq(self.i_valid), last[0].eq(self.i_last),
                     raw[0].eq(self.i_data.as_value()), en[0].eq(self.enable),
                     shift[0].eq(self.shift), relu[0].eq(self.relu), big[0].eq(self.shift > P)]
        for i in range(1, D):
            m.d.sync += [v[i].eq(v[i - 1]), last[i].eq(last[i - 1]), raw[i].eq(raw[i - 1]),
                         en[i].eq(en[i - 1]), shift[i].eq(shift[i - 1]), relu[i].eq(relu[i - 1]),
                         big[i].eq(big[i - 1])]
        # 2**(shift-1) (0 for shift 0), registered beside the sum of the products
        half = Signal(width, reset_less=True)
        m.d.sync += half.eq((Const(1, width + 1) << shift[1])[1:])
        out8 = Signal(L * 8, reset_less=True)
        n_slices = -(-A // 16)
        mult_shape = unsigned(16)
        for lane in range(L):
            x = self.i_data[lane]
            # stages 1-2: 16-bit slices times the multiplier (the top slice signed),
            # operands registered, then the product
            parts = []
            for k in range(n_slices):
                lo, hi = 16 * k, min(A, 16 * (k + 1))
                sl = x[lo:hi]
                sl = sl.as_signed() if k == n_slices - 1 else sl
                p = Signal(signed(hi - lo + 17 + 1), name=f"part{lane}_{k}", reset_less=True)
                mul = registered_multiplier(platform, sl.shape(), mult_shape, p.shape())
                if mul is not None:
                    m.submodules[f"mul{lane}_{k}"] = mul
                    m.d.comb += [mul.a.eq(sl), mul.b.eq(self.mult), mul.a_en.eq(1),
                                 mul.b_en.eq(1), p.eq(mul.p)]
                else:
                    sl_r = Signal(sl.shape(), name=f"slice{lane}_{k}", reset_less=True)
                    mult_r = Signal(mult_shape, name=f"mult{lane}_{k}", reset_less=True)
                    m.d.sync += [sl_r.eq(sl), mult_r.eq(self.mult), p.eq(sl_r * mult_r)]
                parts.append((p, lo))
            # stage 3: sum of the partial products
            prod = Signal(signed(width), name=f"prod{lane}", reset_less=True)
            total = parts[0][0]
            for p, lo in parts[1:]:
                total = total + (p << lo)
            m.d.sync += prod.eq(total)
            # stage 4: add 2**(shift-1) (round half up)
            rnd = Signal(signed(width), name=f"rnd{lane}", reset_less=True)
            m.d.sync += rnd.eq(prod + half)
            # stages 5-6: arithmetic shift (0 past the product's width), by the multiple
            # of 8 first, then by the rest
            coarse = Signal(signed(width), name=f"coarse{lane}", reset_less=True)
            m.d.sync += coarse.eq(rnd >> Cat(Const(0, 3), shift[3][3:]))
            shifted = Signal(signed(width), name=f"shifted{lane}", reset_less=True)
            m.d.sync += shifted.eq(Mux(big[4], 0, coarse >> shift[4][:3]))
            # stage 7: in range when the bits above bit 7 all equal the sign (a
            # reduction, not a wide compare)
            upper = shifted[7:]
            fits = Signal(name=f"fits{lane}", reset_less=True)
            sign = Signal(name=f"sign{lane}", reset_less=True)
            low8 = Signal(8, name=f"low{lane}", reset_less=True)
            m.d.sync += [fits.eq(~upper.any() | upper.all()), sign.eq(shifted[-1]),
                         low8.eq(shifted[:8])]
            # stage 8: saturate (and ReLU)
            sat = Signal(8, name=f"sat{lane}")
            m.d.comb += sat.eq(Mux(relu[6] & sign, 0, Mux(fits, low8, Mux(sign, 0x80, 0x7F))))
            m.d.sync += out8[lane * 8:(lane + 1) * 8].eq(sat)
        m.d.comb += [
            self.o_valid.eq(v[D - 1]), self.o_last.eq(last[D - 1]),
            self.o_data.eq(Mux(en[D - 1], out8, raw[D - 1])),
        ]
        return m
