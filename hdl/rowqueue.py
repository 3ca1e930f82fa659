"""Compaction queue: 0..L completed rows in per cycle, in order; up to R rows out.

The segmented reduction finishes rows in whichever lanes their last entries sat:
a beat may complete none, one or all L of them, scattered across the lanes. The
caller compacts them (the k rows of a beat at write positions 0..k-1, in lane
order: one AND-OR per position, with the selects the reduction registers); the
queue appends them behind the rows already queued and hands out the oldest R
rows at once so that an output beat of R rows can be formed in one cycle.

Storage is ``banks`` small memories (a power of two >= max(L, R)), ``depth`` rows
deep each; row ``i`` of the queue lives in bank ``i % banks``. A write of k <= L
rows then touches k distinct banks and a read of R <= banks consecutive rows
touches R distinct banks, so one write port and one read port per bank suffice:
write position ``r`` goes to bank ``(tail + r) % banks`` and the banks come back to
output positions by the same rotation from ``head``. A bank's write enable is then
``w_en`` and one bit of the rotated thermometer code of ``w_count``: no prefix
count between the caller's registers and the memories' write enables.
"""

from amaranth import Module, Signal, Mux, Cat, unsigned
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out
from amaranth.lib.memory import Memory

__all__ = ["CompactionQueue"]


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


class CompactionQueue(wiring.Component):
    """Parameters
    ----------
    lanes : int
        Most rows per write (L).
    row_bits : int
        Width of one row.
    read_rows : int
        Rows presented at the read side (R).
    depth : int
        Rows per bank (a power of two, >= 2).

    Members
    -------
    clear : In(1)
        Empty the queue.
    w_en : In(1)
        Append rows ``w_rows[0 .. w_count - 1]``, in that order. The caller
        guarantees ``level + w_count <= capacity`` (check it against ``level``: a
        write and a pop in the same cycle are both applied).
    w_count : In(range(lanes + 1))
    w_rows : In(ArrayLayout(unsigned(row_bits), lanes))
    r_rows : Out(ArrayLayout(unsigned(row_bits), read_rows))
        The oldest rows, oldest first (combinational); those past ``level`` are junk.
    r_en : In(1)
        Remove ``r_pop`` rows at the end of the cycle, or all queued rows if there are
        fewer (rows written in the same cycle stay). A separate strobe, so that a late
        pop decision only selects between prepared updates.
    r_pop : In(range(read_rows + 1))
        Rows to remove with ``r_en``.
    level : Out(range(capacity + 1))
        Rows queued.
    """

    def __init__(self, *, lanes: int, row_bits: int, read_rows: int, depth: int = 2):
        for name, v in (("lanes", lanes), ("row_bits", row_bits), ("read_rows", read_rows),
                        ("depth", depth)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"CompactionQueue {name} must be an integer, not {v!r}")
            if v < 1:
                raise ValueError(f"CompactionQueue {name} must be positive, not {v!r}")
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"CompactionQueue depth must be a power of two >= 2, not {depth!r}")
        self._lanes, self._row_bits, self._read = lanes, row_bits, read_rows
        self._banks = _pow2_at_least(max(lanes, read_rows))
        self._depth = depth
        super().__init__({
            "clear": In(1),
            "w_en": In(1), "w_count": In(range(lanes + 1)),
            "w_rows": In(data.ArrayLayout(unsigned(row_bits), lanes)),
            "r_rows": Out(data.ArrayLayout(unsigned(row_bits), read_rows)),
            "r_en": In(1), "r_pop": In(range(read_rows + 1)),
            "level": Out(range(self.capacity + 1)),
        })

    @property
    def banks(self) -> int:
        return self._banks

    @property
    def capacity(self) -> int:
        """Rows the queue holds: ``banks * depth``."""
        return self._banks * self._depth

    def elaborate(self, platform):
        m = Module()
        L, R, NB, D = self._lanes, self._read, self._banks, self._depth
        nbb = (NB - 1).bit_length()
        dbb = (D - 1).bit_length()
        tail = Signal(nbb + dbb)
        head = Signal(nbb + dbb)
        tail_lo, tail_hi = tail[:nbb], tail[nbb:]
        head_lo, head_hi = head[:nbb], head[nbb:]
        # a pop of r_pop rows, or of all of them when fewer are queued: head moves to tail
        enough = Signal()
        head_pop = Signal.like(head)
        m.d.comb += [enough.eq(self.level >= self.r_pop),
                     head_pop.eq(Mux(enough, head + self.r_pop, tail))]

        def read_word(h, b):
            # rows of a read that wrapped past the last bank sit one word further
            return h[nbb:] + (h[:nbb] > b) if nbb and b < NB - 1 else h[nbb:]

        # write position r (r < w_count) goes to bank (tail + r) % NB
        therm = Signal(NB)
        m.d.comb += therm.eq(Cat(*[self.w_count > r for r in range(L)]))
        count = self.w_count
        wrote = Signal(range(L + 1))
        m.d.comb += wrote.eq(Mux(self.w_en, count, 0))

        read_data = []
        for b in range(NB):
            mem = Memory(shape=unsigned(self._row_bits), depth=D, init=[])
            m.submodules[f"bank{b}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(domain="comb")
            # the write position this bank takes: (b - tail) % NB, a register per bank
            # updated with tail (each drives only its bank's data mux)
            rel = Signal(max(1, nbb), name=f"wpos{b}", init=b)
            if nbb:
                with m.If(self.clear):
                    m.d.sync += rel.eq(b)
                with m.Else():
                    with m.If(self.w_en):
                        m.d.sync += rel.eq(rel - count)
            rows = [self.w_rows[r] for r in range(L)] + [0] * (NB - L)
            wdata = Signal(self._row_bits, name=f"wdata{b}")
            with m.Switch(rel):
                for r in range(NB):
                    with m.Case(r):
                        m.d.comb += wdata.eq(rows[r])
            m.d.comb += [
                wp.en.eq(self.w_en & therm.bit_select(rel, 1)),
                wp.data.eq(wdata),
            ]
            # rows of a write or read that wrapped past the last bank sit one word further
            if nbb and b < NB - 1:
                m.d.comb += wp.addr.eq(tail_hi + (tail_lo > b))
            else:
                m.d.comb += wp.addr.eq(tail_hi)
            # the read address is a register, updated with head
            raddr = Signal(dbb, name=f"raddr{b}") if dbb else None
            if dbb:
                m.d.comb += rp.addr.eq(raddr)
                with m.If(self.clear):
                    m.d.sync += raddr.eq(0)
                with m.Elif(self.r_en):
                    m.d.sync += raddr.eq(read_word(head_pop, b))
            read_data.append(rp.data)

        for j in range(R):
            if nbb:
                idx = Signal(nbb, name=f"rsel{j}")
                m.d.comb += idx.eq(head_lo + j)
                with m.Switch(idx):
                    for b in range(NB):
                        with m.Case(b):
                            m.d.comb += self.r_rows[j].eq(read_data[b])
            else:
                m.d.comb += self.r_rows[j].eq(read_data[0])

        # the level's next value for each case of w_en, r_en and enough, each from
        # registers, picked last (w_en and r_en are the late signals)
        lw = Signal(range(self.capacity + L + 1))
        lwp = Signal(range(self.capacity + L + 1))
        lp = Signal(range(self.capacity + 1))
        m.d.comb += [lw.eq(self.level + count), lwp.eq(self.level + count - self.r_pop),
                     lp.eq(self.level - self.r_pop)]
        with m.If(self.w_en):
            m.d.sync += tail.eq(tail + count)
        m.d.sync += self.level.eq(Mux(self.r_en,
                                      Mux(enough, Mux(self.w_en, lwp, lp), wrote),
                                      Mux(self.w_en, lw, self.level)))
        with m.If(self.r_en):
            m.d.sync += head.eq(head_pop)
        with m.If(self.clear):
            m.d.sync += [tail.eq(0), head.eq(0), self.level.eq(0)]
        return m
