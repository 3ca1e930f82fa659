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
    registered_enough : bool
        Keep ``enough`` in a register (default False: a compare of ``level`` and
        ``r_pop``); the caller then gives ``r_pop_next`` and ``r_pop_pair``. Needs
        ``registered_write``.
    registered_write : bool
        Register the rotated rows, the banks' write enables and addresses before the
        memories (default False): a write reaches the banks, ``level`` and
        ``r_rows`` one cycle after ``w_en``, and the caller's room check must count
        the rows of that cycle's write too.

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
    enough : Out(1)
        ``level >= r_pop``. With ``registered_enough`` a register, computed from the
        next level and from ``r_pop_next``; it is then right while ``r_pop`` changes
        only at pops (a change at another time shows one cycle late).
    r_pop_next : In(range(read_rows + 1)), only with ``registered_enough``
        The value ``r_pop`` takes after this cycle if ``r_en`` is high.
    r_pop_pair : In(range(2 * read_rows + 1)), only with ``registered_enough``
        ``r_pop + r_pop_next`` (a register of the caller's, so that the compare
        starts at flip-flops).
    """

    def __init__(self, *, lanes: int, row_bits: int, read_rows: int, depth: int = 2,
                 registered_enough: bool = False, registered_write: bool = False):
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
        self._registered_enough = bool(registered_enough)
        self._registered_write = bool(registered_write)
        if self._registered_enough and not self._registered_write:
            raise ValueError("CompactionQueue registered_enough needs registered_write")
        members = {
            "clear": In(1),
            "w_en": In(1), "w_count": In(range(lanes + 1)),
            "w_rows": In(data.ArrayLayout(unsigned(row_bits), lanes)),
            "r_rows": Out(data.ArrayLayout(unsigned(row_bits), read_rows)),
            "r_en": In(1), "r_pop": In(range(read_rows + 1)),
            "level": Out(range(self.capacity + 1)), "enough": Out(1),
        }
        if self._registered_enough:
            members["r_pop_next"] = In(range(read_rows + 1))
            members["r_pop_pair"] = In(range(2 * read_rows + 1))
        super().__init__(members)

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
        enough = self.enough
        head_pop = Signal.like(head)
        if not self._registered_enough:
            m.d.comb += enough.eq(self.level >= self.r_pop)
        # rows in the banks end at tail_w: tail, or with registered writes the tail
        # before the write under way
        tail_w = Signal.like(tail) if self._registered_write else tail
        if self._registered_enough:
            # head + r_pop, a register, kept like enough (r_pop changes at pops)
            head_add = Signal.like(head, name="head_add")
            m.d.comb += head_pop.eq(Mux(enough, head_add, tail_w))
            m.d.sync += head_add.eq(Mux(self.r_en, head_pop + self.r_pop_next, head + self.r_pop))
            with m.If(self.clear):
                m.d.sync += head_add.eq(self.r_pop)
        else:
            m.d.comb += head_pop.eq(Mux(enough, head + self.r_pop, tail_w))

        def read_word(h, b):
            # rows of a read that wrapped past the last bank sit one word further
            return h[nbb:] + (h[:nbb] > b) if nbb and b < NB - 1 else h[nbb:]

        # write position r (r < w_count) goes to bank (tail + r) % NB
        therm = Signal(NB)
        m.d.comb += therm.eq(Cat(*[self.w_count > r for r in range(L)]))
        count = self.w_count
        # rows reaching the banks this cycle (level, tail_w): w_count, or with
        # registered writes the count of the previous cycle's write
        wrote = Signal(range(L + 1))
        if self._registered_write:
            w_q = Signal(range(L + 1))
            m.d.sync += w_q.eq(Mux(self.w_en & ~self.clear, count, 0))
            m.d.sync += tail_w.eq(tail_w + w_q)
            m.d.comb += wrote.eq(w_q)
        else:
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
            # rows of a write or read that wrapped past the last bank sit one word further
            waddr = tail_hi + (tail_lo > b) if nbb and b < NB - 1 else tail_hi
            wen = self.w_en & therm.bit_select(rel, 1)
            if self._registered_write:
                wen_q = Signal(name=f"we{b}")
                wdata_q = Signal(self._row_bits, name=f"wdata{b}_q", reset_less=True)
                waddr_q = Signal(max(1, dbb), name=f"waddr{b}", reset_less=True)
                m.d.sync += [wen_q.eq(wen & ~self.clear), wdata_q.eq(wdata), waddr_q.eq(waddr)]
                wen, wdata, waddr = wen_q, wdata_q, waddr_q
            m.d.comb += [wp.en.eq(wen), wp.data.eq(wdata), wp.addr.eq(waddr)]
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
                # the bank of output row j: head + j, a register updated with head
                idx = Signal(nbb, name=f"rsel{j}", init=j % NB)
                m.d.sync += idx.eq(Mux(self.r_en, head_pop[:nbb] + j, head_lo + j))
                with m.If(self.clear):
                    m.d.sync += idx.eq(j % NB)
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
        with m.If(self.w_en):
            m.d.sync += tail.eq(tail + count)
        if self._registered_enough:
            # avail = level + wrote, a register: the level's next value without a pop
            avail = Signal(range(self.capacity + 1), name="avail")
            w_in = Signal(range(L + 1))
            m.d.comb += [w_in.eq(Mux(self.w_en, count, 0)), lwp.eq(avail - self.r_pop)]
            m.d.sync += [
                self.level.eq(Mux(self.r_en, Mux(enough, lwp, wrote), avail)),
                avail.eq(Mux(self.r_en, Mux(enough, lwp + w_in, wrote + w_in), avail + w_in)),
                # the next level >= the next r_pop, for each case, from registers: after a
                # pop of r_pop rows, avail - r_pop >= r_pop_next; after an emptying pop,
                # wrote >= r_pop_next; without a pop, r_pop stays
                enough.eq(Mux(self.r_en, Mux(enough, avail >= self.r_pop_pair,
                                             wrote >= self.r_pop_next),
                              avail >= self.r_pop)),
            ]
        elif self._registered_write:    # the rows written are a register's count
            m.d.comb += [lw.eq(self.level + wrote), lwp.eq(self.level + wrote - self.r_pop)]
            m.d.sync += self.level.eq(Mux(self.r_en, Mux(enough, lwp, wrote), lw))
        else:
            m.d.comb += [lw.eq(self.level + count), lwp.eq(self.level + count - self.r_pop),
                         lp.eq(self.level - self.r_pop)]
            m.d.sync += self.level.eq(Mux(self.r_en,
                                          Mux(enough, Mux(self.w_en, lwp, lp), wrote),
                                          Mux(self.w_en, lw, self.level)))
        with m.If(self.r_en):
            m.d.sync += head.eq(head_pop)
        with m.If(self.clear):
            m.d.sync += [tail.eq(0), head.eq(0), self.level.eq(0)]
            if self._registered_write:
                m.d.sync += tail_w.eq(0)
            if self._registered_enough:
                m.d.sync += [enough.eq(self.r_pop == 0), avail.eq(0)]
        return m
