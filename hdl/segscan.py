"""Pipelined segmented reduction across the lanes, with a carry between beats.

Each beat holds one product vector per lane and a last-in-row flag per lane; the
lanes hold consecutive CSR entries, so a row is a run of lanes ended by a flagged
lane, and may have started in an earlier beat. The reduction emits, for every
flagged lane, the sum of its row: the products of its run in this beat plus the
carry (the partial sum of the row that the previous beats left open).

It is a Hillis-Steele segmented scan over ``ceil(log2 L)`` registered levels
(each level adds lanes ``2**d`` apart unless a row boundary lies between them),
then one stage that adds the carry to the lanes of the beat's first row and
computes the next carry. The carry is the only feedback: one adder and a mux per
beat, whatever ``L`` is, so long rows spread over many beats cost nothing extra.

Arithmetic wraps modulo ``2**acc_bits`` (two's complement), as the accumulators do.
"""

from amaranth import Module, Signal, Mux, Cat, signed, unsigned
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

__all__ = ["SegmentedReduce", "segmented_reduce_reference"]


class SegmentedReduce(wiring.Component):
    """Segmented sum of ``lanes`` product vectors per beat.

    Parameters
    ----------
    lanes : int
        Lanes L (1..64).
    cols : int
        Elements P of each product vector (one per dense column).
    acc_bits : int
        Width of every partial sum.

    Members
    -------
    en : In(1)
        Advance the pipeline; when low every register (and the carry) holds.
    clear : In(1)
        Zero the carry (a new job); takes effect whether or not ``en`` is high.
    i_valid : In(1)
        A beat is presented (sampled when ``en``).
    i_value : In(ArrayLayout(ArrayLayout(signed(acc_bits), cols), lanes))
    i_last : In(lanes)
        Lane ``l`` holds the last entry of its row.
    o_valid : Out(1)
        The beat presented ``latency`` enabled cycles earlier.
    o_sum : Out(ArrayLayout(ArrayLayout(signed(acc_bits), cols), lanes))
        Row sums, meaningful in the lanes flagged in ``o_last``.
    o_last : Out(lanes)
    o_count : Out(range(lanes + 1))
        Rows completed by the output beat: the number of lanes set in ``o_last`` (a
        register, so that a consumer's room check starts from flip-flops).
    o_pick : Out(ArrayLayout(unsigned(lanes), lanes))
        ``o_pick[r]`` is one-hot: the lane holding the output beat's ``r``-th completed
        row (zero for ``r >= o_count``), a register, so that a consumer can compact the
        rows with an AND-OR per position.
    n_valid, n_count : Out(1), Out(range(lanes + 1))
        What ``o_valid`` and ``o_count`` become at the next enabled cycle (registers
        of the last level, the count formed one level earlier), for a consumer that
        registers its stall decision.
    busy : Out(1)
        A beat is somewhere in the pipeline (including the output register).
    """

    def __init__(self, *, lanes: int, cols: int, acc_bits: int):
        for name, v, lo, hi in (("lanes", lanes, 1, 64), ("cols", cols, 1, 64),
                                ("acc_bits", acc_bits, 2, 128)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"SegmentedReduce {name} must be an integer, not {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"SegmentedReduce {name} must be in {lo}..{hi}, not {v!r}")
        self._lanes, self._cols, self._acc = lanes, cols, acc_bits
        vec = data.ArrayLayout(data.ArrayLayout(signed(acc_bits), cols), lanes)
        super().__init__({
            "en": In(1), "clear": In(1),
            "i_valid": In(1), "i_value": In(vec), "i_last": In(lanes),
            "o_valid": Out(1), "o_sum": Out(vec), "o_last": Out(lanes),
            "o_count": Out(range(lanes + 1)),
            "o_pick": Out(data.ArrayLayout(unsigned(lanes), lanes)), "n_valid": Out(1),
            "n_count": Out(range(lanes + 1)), "busy": Out(1),
        })

    @property
    def levels(self) -> int:
        """Scan levels: ``ceil(log2(lanes))``."""
        return (self._lanes - 1).bit_length()

    @property
    def latency(self) -> int:
        """Enabled cycles from a beat at the inputs to its sums at the outputs."""
        return self.levels + 1

    def elaborate(self, platform):
        m = Module()
        L, P, A = self._lanes, self._cols, self._acc

        def vec_signals(name):
            return [[Signal(signed(A), name=f"{name}_l{l}_p{p}") for p in range(P)]
                    for l in range(L)]

        # level 0 is the input; flags are segment *heads*: lane l starts a row when
        # lane l-1 ended one (lane 0 continues the carried row)
        cur_v = [[self.i_value[l][p] for p in range(P)] for l in range(L)]
        cur_f = [0] + [self.i_last[l - 1] for l in range(1, L)]
        cur_last = self.i_last
        cur_valid = self.i_valid
        cur_count = None
        cur_rank = None
        cur_pick = None
        valids = []

        def ranks(last):
            # lane l's row number in the beat: the flags below it (a popcount tree each)
            out = []
            for l in range(L):
                terms = [last[i] for i in range(l)] or [0]
                while len(terms) > 1:
                    terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                             for i in range(0, len(terms), 2)]
                out.append(terms[0])
            return out

        # the picks that can be set (r <= l), packed: bit tri(r, l)
        tri = {}
        for l in range(L):
            for r in range(l + 1):
                tri[r, l] = len(tri)

        def picks(last, rank):
            # lane l ends the beat's r-th row
            return Cat(*[last[l] & (rank[l] == r) for (r, l) in tri])
        for d in range(self.levels):
            dist = 1 << d
            nv = vec_signals(f"lv{d}")
            nf = [Signal(name=f"lv{d}_f{l}") for l in range(L)]
            nlast = Signal(L, name=f"lv{d}_last")
            nvalid = Signal(name=f"lv{d}_valid")
            if d == self.levels - 1:        # the beat's row count, a register
                ncount = Signal(range(L + 1), name=f"lv{d}_count")
                with m.If(self.en):
                    m.d.sync += ncount.eq(sum(cur_last[l] for l in range(L)))
                cur_count = ncount
            # the picks (see o_pick): ranks registered at level 0, one-hot at level 1,
            # then carried
            if d == 0 and self.levels >= 2:
                nrank = [Signal(range(L + 1), name=f"lv0_rank{l}") for l in range(L)]
                with m.If(self.en):
                    m.d.sync += [nrank[l].eq(v) for l, v in enumerate(ranks(cur_last))]
                cur_rank = nrank
            elif d >= 1 and self.levels >= 2:
                npick = Signal(len(tri), name=f"lv{d}_pick")
                with m.If(self.en):
                    m.d.sync += npick.eq(picks(cur_last, cur_rank) if d == 1 else cur_pick)
                cur_pick = npick
            with m.If(self.en):
                m.d.sync += [nlast.eq(cur_last), nvalid.eq(cur_valid)]
                for l in range(L):
                    if l >= dist:
                        m.d.sync += nf[l].eq(cur_f[l] | cur_f[l - dist])
                        for p in range(P):
                            m.d.sync += nv[l][p].eq(Mux(cur_f[l], cur_v[l][p],
                                                        cur_v[l][p] + cur_v[l - dist][p]))
                    else:
                        m.d.sync += nf[l].eq(cur_f[l])
                        for p in range(P):
                            m.d.sync += nv[l][p].eq(cur_v[l][p])
            cur_v, cur_f, cur_last, cur_valid = nv, nf, nlast, nvalid
            valids.append(nvalid)

        if cur_pick is None:        # fewer than two levels: picks formed in the final stage
            cur_pick = picks(cur_last, ranks(cur_last))

        # final stage: add the carry to the lanes of the beat's first row
        carry = [Signal(signed(A), name=f"carry_p{p}") for p in range(P)]
        m.d.comb += [self.n_valid.eq(cur_valid),
                     self.n_count.eq(sum(cur_last[l] for l in range(L)) if cur_count is None
                                     else cur_count)]
        with m.If(self.en):
            m.d.sync += [self.o_valid.eq(self.n_valid), self.o_last.eq(cur_last),
                         self.o_count.eq(self.n_count)]
            m.d.sync += [self.o_pick[r][l].eq(cur_pick[i]) for (r, l), i in tri.items()]
            for l in range(L):
                for p in range(P):
                    m.d.sync += self.o_sum[l][p].eq(
                        Mux(cur_f[l], cur_v[l][p], cur_v[l][p] + carry[p]))
            with m.If(cur_valid):
                for p in range(P):
                    tail = Mux(cur_f[L - 1], cur_v[L - 1][p], cur_v[L - 1][p] + carry[p])
                    m.d.sync += carry[p].eq(Mux(cur_last[L - 1], 0, tail))
        with m.If(self.clear):
            m.d.sync += [c.eq(0) for c in carry]
        busy = self.o_valid
        for v in valids:
            busy = busy | v
        m.d.comb += self.busy.eq(busy)
        return m


def segmented_reduce_reference(values, lasts, acc_bits: int):
    """Numpy model: beats of (L, P) values and (L,) last flags -> the rows in order.

    Returns a list of (P,) integer arrays, one per flagged lane, wrapped to
    ``acc_bits`` bits two's complement.
    """
    import numpy as np
    mod, half = 1 << acc_bits, 1 << (acc_bits - 1)
    rows = []
    run = None
    for beat_v, beat_l in zip(values, lasts):
        for v, last in zip(np.asarray(beat_v, dtype=object), beat_l):
            run = v.copy() if run is None else run + v
            if last:
                rows.append(np.array([(int(x) + half) % mod - half for x in run], dtype=object))
                run = None
    return rows
