"""Width conversion between the AXI4-Stream beats and internal words.

Packing rule, used on both streams and documented in the manifest: a word of
``W`` bits and a beat of ``S`` bits.

* ``W <= S``: ``P = S // W`` words per beat, word ``p`` at bits ``[p*W, (p+1)*W)``;
  a segment's last beat may hold fewer words (the rest are zero). A new segment
  starts on a new beat.
* ``W > S``: ``Q = ceil(W / S)`` beats per word, beat ``q`` holds bits
  ``[q*S, (q+1)*S)`` of the word (zero-padded past ``W``).

Elements inside a word are little-endian: element ``e`` at bits ``[e*b, (e+1)*b)``.
"""

from amaranth import Module, Signal, Cat, Const
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["words_per_beat", "beats_per_word", "beats_for", "Packer"]


def words_per_beat(word_bits: int, stream_bits: int) -> int:
    return max(1, stream_bits // word_bits) if word_bits <= stream_bits else 1


def beats_per_word(word_bits: int, stream_bits: int) -> int:
    return -(-word_bits // stream_bits)


def beats_for(n_words: int, word_bits: int, stream_bits: int) -> int:
    """Beats that ``n_words`` words of ``word_bits`` take on a ``stream_bits`` stream."""
    if word_bits <= stream_bits:
        return -(-n_words // words_per_beat(word_bits, stream_bits))
    return n_words * beats_per_word(word_bits, stream_bits)


class Packer(wiring.Component):
    """Rows in, AXI4-Stream beats out, with a run-time choice among row formats.

    Parameters
    ----------
    stream_bits : int
    formats : list of int
        Row widths in bits; ``fmt`` selects one (it must not change mid-frame, and it
        is registered: set it a cycle before the frame's first row).

    Members
    -------
    i_data, i_last, i_valid : In
        A row (in the low bits of ``i_data``) and whether it is the frame's last.
    i_ready : Out
        A row wider than a beat is taken with its last beat: it must stay on the input
        (as valid/ready has it) while its beats leave.
    fmt : In
    o_data, o_last, o_valid : Out
        Registered AXI4-Stream master signals (stable until accepted).
    o_ready : In
    """

    def __init__(self, stream_bits, formats):
        self._sb = stream_bits
        self._formats = list(formats)
        self._max = max(self._formats)
        super().__init__({
            "i_data": In(self._max), "i_last": In(1), "i_valid": In(1), "i_ready": Out(1),
            "fmt": In(range(max(2, len(self._formats)))),
            "o_data": Out(stream_bits), "o_last": Out(1), "o_valid": Out(1), "o_ready": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        S = self._sb
        can_emit = Signal()
        m.d.comb += can_emit.eq(~self.o_valid | self.o_ready)
        with m.If(self.o_valid & self.o_ready):
            m.d.sync += self.o_valid.eq(0)

        # data registers are reset-less (read only under their valid flags), so that a
        # soft reset does not fan out to them
        o_data = Signal(S, reset_less=True)
        m.d.comb += self.o_data.eq(o_data)
        pbuf = Signal(S)                    # partially packed beat (W <= S formats)
        p = Signal(range(max(2, S + 1)))
        q = Signal(range(max(2, -(-self._max // S) + 1)))   # beat of the row (W > S formats)
        # ``q == Q - 1`` for each beats-per-row count Q > 1, kept in registers (the ready
        # path then starts at flip-flops)
        q_end = {Q: Signal(name=f"q_end_{Q}")
                 for Q in {-(-W // S) for W in self._formats if W > S}}

        # the format, registered here: it is fixed for a frame, and comes from a job register
        # far away that would otherwise fan out to this buffer's enables and multiplexers
        fmt = Signal.like(self.fmt, name="fmt_r")
        m.d.sync += fmt.eq(self.fmt)
        with m.Switch(fmt):
            for idx, W in enumerate(self._formats):
                with m.Case(idx):
                    if W == S:
                        # one row per beat: no partial beat to merge into
                        m.d.comb += self.i_ready.eq(can_emit)
                        with m.If(self.i_valid & can_emit):
                            m.d.sync += [o_data.eq(self.i_data[:W]),
                                         self.o_last.eq(self.i_last), self.o_valid.eq(1)]
                    elif W < S:
                        P = S // W
                        m.d.comb += self.i_ready.eq(can_emit)
                        shifted = Signal(S, name=f"shifted{idx}")
                        merged = Signal(S, name=f"merged{idx}")
                        row = self.i_data[:W]
                        # place the row at slot p
                        with m.Switch(p):
                            for slot in range(P):
                                with m.Case(slot):
                                    m.d.comb += shifted.eq(row << (slot * W) if slot else row)
                        m.d.comb += merged.eq(pbuf | shifted)
                        with m.If(self.i_valid & can_emit):
                            with m.If((p == P - 1) | self.i_last):
                                m.d.sync += [o_data.eq(merged), self.o_last.eq(self.i_last),
                                             self.o_valid.eq(1), pbuf.eq(0), p.eq(0)]
                            with m.Else():
                                m.d.sync += [pbuf.eq(merged), p.eq(p + 1)]
                    else:
                        # A row wider than a beat leaves in Q beats straight from the
                        # input, which holds it (valid/ready) until its last beat takes
                        # it: no row register, and the input's ready is that last beat.
                        Q = -(-W // S)
                        emit = Signal(name=f"emit{idx}")
                        row = Cat(self.i_data[:W], Const(0, Q * S - W))
                        m.d.comb += [emit.eq(self.i_valid & can_emit),
                                     self.i_ready.eq(emit & q_end[Q])]
                        with m.If(emit):
                            with m.Switch(q):
                                for beat in range(Q):
                                    with m.Case(beat):
                                        m.d.sync += o_data.eq(row[beat * S:(beat + 1) * S])
                            m.d.sync += [self.o_valid.eq(1),
                                         self.o_last.eq(self.i_last & q_end[Q]),
                                         q.eq(q + 1)]
                            m.d.sync += [f.eq(q == Q_ - 2) for Q_, f in q_end.items()]
                            with m.If(q_end[Q]):
                                m.d.sync += q.eq(0)
                                m.d.sync += [f.eq(0) for f in q_end.values()]
        return m
