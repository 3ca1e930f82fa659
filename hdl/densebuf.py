"""The dense-operand buffer: rows of X, read by every lane every cycle.

X arrives in the job's input frame, ``words`` rows of X per beat, and is written a
whole beat per cycle (so loading runs at the stream's rate). Each cycle a beat of
L entries asks for up to L rows of X, at arbitrary column indices. Two
organisations, chosen by the config:

``replicated``
    One copy of the buffer per lane (all written together). Every lane reads its
    own copy: no conflicts, one beat per cycle, L times the memory.
``banked``
    One copy split into ``banks`` banks, row ``c`` in bank ``c % banks``. Per cycle
    each bank serves one row to every lane asking for that row (a lane asking for
    another row of a busy bank waits); the lowest lane wins. A beat leaves the
    gather stage once every lane has its row; the extra cycles are conflict stalls.

Word ``w`` of the buffer holds rows ``w*words .. w*words + words - 1``; in the banked
organisation bank ``b``'s word ``w`` holds rows ``w*words + e*banks + b``,
``e = 0 .. words/banks - 1``.

Reads are pipelined over :data:`LATENCY` enabled cycles. Replicated: the block RAM's
address register, its output register (a DP16KD's ``OUTREG`` through the platform's
``accelgen_memory`` hook, see :class:`~.ram.PipelinedRAM`; without it a block RAM's
clock-to-out alone takes most of a 150 MHz cycle), a fabric register that the placer
can put next to the block RAM (a lane's word comes from 15 blocks spread over the
column), and a register that keeps the quarter of the word holding the row; the last
row select is combinational. Banked: the arbitration cycle, then plain registers, so
both organisations have the same latency.
"""

from amaranth import Module, Signal, Mux, Cat, unsigned
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out
from amaranth.lib.memory import Memory

from .ram import PipelinedRAM

__all__ = ["DenseBuffer", "LATENCY"]

#: Enabled cycles from a beat finishing its gather to its rows of X at ``o_x``.
LATENCY = 4


class DenseBuffer(wiring.Component):
    """Parameters
    ----------
    lanes : int
    row_bits : int
        One row of X (``dense_cols`` elements).
    words : int
        Rows of X per buffer word = per input beat (a power of two).
    depth : int
        Buffer words.
    col_bits : int
        Width of a column index.
    mode : str
        ``"replicated"`` or ``"banked"``.
    banks : int
        Banks of the banked organisation (a power of two dividing ``words``).

    Members
    -------
    we, waddr, wdata : In
        Write one word (a whole input beat of X rows).
    en : In(1)
        Advance; when low all state and the read ports hold.
    i_valid : In(1)
        A beat of column indices is in the gather stage.
    i_col : In(ArrayLayout(unsigned(col_bits), lanes))
    i_req : In(lanes)
        Lanes that need a row of X (the others are ignored).
    i_ready : Out(1)
        The beat finishes gathering this cycle (if ``en``): every requesting lane
        has been or is being served. Always 1 when replicated.
    o_x : Out(ArrayLayout(unsigned(row_bits), lanes))
        The rows of X of the beat that finished gathering :data:`LATENCY` enabled
        cycles earlier (lanes without a request: junk).
    """

    def __init__(self, *, lanes, row_bits, words, depth, col_bits, mode="replicated", banks=1):
        if mode not in ("replicated", "banked"):
            raise ValueError(f"DenseBuffer mode must be 'replicated' or 'banked', not {mode!r}")
        if words < 1 or words & (words - 1):
            raise ValueError(f"DenseBuffer words must be a power of two, not {words!r}")
        if banks < 1 or banks & (banks - 1) or banks > words:
            raise ValueError(f"DenseBuffer banks must be a power of two at most words ({words}), "
                             f"not {banks!r}")
        if mode == "replicated" and banks != 1:
            raise ValueError(f"DenseBuffer banks must be 1 when replicated, not {banks!r}")
        self._lanes, self._row_bits, self._words, self._depth = lanes, row_bits, words, depth
        self._col_bits, self._mode, self._banks = col_bits, mode, banks
        self._addr_bits = max(1, (depth - 1).bit_length())
        super().__init__({
            "we": In(1), "waddr": In(self._addr_bits), "wdata": In(words * row_bits),
            "en": In(1), "i_valid": In(1),
            "i_col": In(data.ArrayLayout(unsigned(col_bits), lanes)), "i_req": In(lanes),
            "i_ready": Out(1),
            "o_x": Out(data.ArrayLayout(unsigned(row_bits), lanes)),
        })

    @property
    def latency(self) -> int:
        """Enabled cycles from a beat's gather to its rows at ``o_x``."""
        return LATENCY

    @property
    def memory_bits(self) -> int:
        """Bits of storage, all copies."""
        copies = self._lanes if self._mode == "replicated" else 1
        return copies * self._depth * self._words * self._row_bits

    def elaborate(self, platform):
        m = Module()
        L, W, RB = self._lanes, self._words, self._row_bits
        wb = (W - 1).bit_length()                  # column bits selecting a row in a word
        aw = self._addr_bits

        def word_addr(col):
            return (col >> wb)[:aw] if self._col_bits > wb else 0

        if self._mode == "replicated":
            m.d.comb += self.i_ready.eq(1)
            # one copy per lane (one read port each); the platform's block RAM with its
            # output register when it has one
            m.submodules.copies = ram = PipelinedRAM(W * RB, self._depth, read_ports=L,
                                                     latency=3, read_enable=True)
            m.d.comb += [ram.w_en.eq(self.we), ram.w_addr.eq(self.waddr),
                         ram.w_data.eq(self.wdata), ram.r_en.eq(self.en)]
            # the row select: the high bits pick a group of rows into a register, the
            # low bits the row in it (combinational, at o_x)
            hi = min(2, wb)
            lo = wb - hi
            G = 1 << lo                             # rows per group
            for l in range(L):
                m.d.comb += ram.r_addr[l].eq(word_addr(self.i_col[l]))
                # the row's high bits (picking the group) for the group register, its
                # low bits (the row in the group) for the last select
                sel_hi = [Signal(max(1, hi), name=f"sel{l}_hi{k}", reset_less=True)
                          for k in range(LATENCY - 1)]
                sel_lo = [Signal(max(1, lo), name=f"sel{l}_lo{k}", reset_less=True)
                          for k in range(LATENCY)]
                # a plain Signal viewed as rows (an array-shaped register's ``name[i]``
                # element names can make Yosys 0.70's abc9 reintegration fail)
                group_bits = Signal(G * RB, name=f"group{l}", reset_less=True)
                group = data.View(data.ArrayLayout(unsigned(RB), G), group_bits)
                rows = data.View(data.ArrayLayout(data.ArrayLayout(unsigned(RB), G), 1 << hi),
                                 ram.r_data[l])
                with m.If(self.en):
                    if hi:
                        m.d.sync += sel_hi[0].eq(self.i_col[l][lo:wb])
                        m.d.sync += [sel_hi[k].eq(sel_hi[k - 1]) for k in range(1, LATENCY - 1)]
                    if lo:
                        m.d.sync += sel_lo[0].eq(self.i_col[l][:lo])
                        m.d.sync += [sel_lo[k].eq(sel_lo[k - 1]) for k in range(1, LATENCY)]
                    m.d.sync += group_bits.eq(rows[sel_hi[-1]] if hi else rows[0])
                m.d.comb += self.o_x[l].eq(group[sel_lo[-1]] if lo else group[0])
            return m

        # -- banked ----------------------------------------------------------------------
        B = self._banks
        bb = (B - 1).bit_length()
        E = W // B                                 # rows per bank word
        eb = (E - 1).bit_length()
        beat_rows = data.View(data.ArrayLayout(unsigned(RB), W), self.wdata)
        bank_data, bank_addr = [], []
        for b in range(B):
            mem = Memory(shape=unsigned(E * RB), depth=self._depth, init=[])
            m.submodules[f"bank{b}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(domain="sync", transparent_for=())
            addr = Signal(aw, name=f"bank{b}_addr")
            m.d.comb += [wp.en.eq(self.we), wp.addr.eq(self.waddr),
                         wp.data.eq(Cat(*[beat_rows[e * B + b] for e in range(E)])),
                         rp.addr.eq(addr), rp.en.eq(self.en)]
            bank_data.append(data.View(data.ArrayLayout(unsigned(RB), E), rp.data))
            bank_addr.append(addr)

        served = Signal(L)      # lanes of the current beat served in earlier cycles
        want = Signal(L)
        grant = Signal(L)
        m.d.comb += want.eq(Mux(self.i_valid, self.i_req & ~served, 0))
        lane_bank = [self.i_col[l][:bb] if bb else 0 for l in range(L)]
        lane_addr = [Signal(aw, name=f"lane{l}_addr") for l in range(L)]
        for l in range(L):
            m.d.comb += lane_addr[l].eq(word_addr(self.i_col[l]))
        # per bank: the lowest wanting lane picks the row; all lanes wanting that row get it
        for b in range(B):
            taken = 0
            for l in range(L):
                cand = Signal(name=f"cand_b{b}_l{l}")
                m.d.comb += cand.eq(want[l] & (lane_bank[l] == b if bb else 1))
                first = Signal(name=f"first_b{b}_l{l}")
                m.d.comb += first.eq(cand & ~taken)
                with m.If(first):
                    m.d.comb += bank_addr[b].eq(lane_addr[l])
                taken = taken | cand
        for l in range(L):
            chosen = Signal(aw, name=f"lane{l}_chosen")
            if bb:
                with m.Switch(lane_bank[l]):
                    for b in range(B):
                        with m.Case(b):
                            m.d.comb += chosen.eq(bank_addr[b])
            else:
                m.d.comb += chosen.eq(bank_addr[0])
            m.d.comb += grant[l].eq(want[l] & (chosen == lane_addr[l]))
        m.d.comb += self.i_ready.eq((want & ~grant) == 0)

        # data return: a lane granted in cycle t finds its row on its bank's port at t+1
        got = Signal(L)                     # granted in the previous enabled cycle
        g_bank = [Signal(max(1, bb), name=f"g_bank{l}") for l in range(L)]
        g_elem = [Signal(max(1, eb), name=f"g_elem{l}") for l in range(L)]
        held = [Signal(RB, name=f"held{l}") for l in range(L)]
        with m.If(self.en):
            m.d.sync += got.eq(grant)
            with m.If(self.i_valid):
                m.d.sync += served.eq(Mux(self.i_ready, 0, served | grant))
            for l in range(L):
                with m.If(grant[l]):
                    if bb:
                        m.d.sync += g_bank[l].eq(lane_bank[l])
                    if eb:
                        m.d.sync += g_elem[l].eq(self.i_col[l][bb:bb + eb])
        for l in range(L):
            fresh = Signal(RB, name=f"fresh{l}")
            def pick(b):
                return bank_data[b][g_elem[l]] if eb else bank_data[b][0]
            if bb:
                with m.Switch(g_bank[l]):
                    for b in range(B):
                        with m.Case(b):
                            m.d.comb += fresh.eq(pick(b))
            else:
                m.d.comb += fresh.eq(pick(0))
            with m.If(self.en & got[l]):
                m.d.sync += held[l].eq(fresh)
            # two more registers: the replicated organisation's latency
            late = [Signal(RB, name=f"late{l}_{k}", reset_less=True) for k in range(LATENCY - 1)]
            with m.If(self.en):
                m.d.sync += late[0].eq(Mux(got[l], fresh, held[l]))
                m.d.sync += [late[k].eq(late[k - 1]) for k in range(1, LATENCY - 1)]
            m.d.comb += self.o_x[l].eq(late[-1])
        return m
