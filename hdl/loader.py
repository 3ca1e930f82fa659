"""Operand loader: one AXI4-Stream frame per job into the A and B scratchpads.

The frame holds three segments, each packed by the rule in :mod:`.gearbox`: the
first ``n_a1`` A words, all ``n_b`` B words, then the remaining A words (the last
segment may be empty). The OS sequencer needs A's first tile and B's first tile
to start, so this order lets compute begin early and the rest of B stream in as
the first row of folds consumes it. TLAST marks the frame's final beat. The loader writes one word
per cycle at most and publishes how many words of each segment have landed, so
the array sequencer can start on a fold as soon as its operands are present
(the scoreboard that lets loading overlap compute).

The scratchpad write port is registered (block RAMs sit in their own columns, far
from the unpacking logic), so a word is written one cycle after the loader takes
it; the published counts follow the writes, one cycle behind the loader's own
(``a_count_next``/``b_count_next``: what the counts will be in the next cycle, for
logic that registers a decision on them).

Framing errors: TLAST before the last B word is ``short``; no TLAST on the beat
holding the last B word is ``long`` (the loader then discards beats up to and
including the next TLAST, even past a new job's start: that job's frame comes
after it). After an abort the loader also discards the rest of
the frame, up to TLAST, unless a new job starts first.
"""

from amaranth import Module, Signal, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Loader"]


class Loader(wiring.Component):
    """Parameters
    ----------
    stream_bits : int
    a_word_bits, b_word_bits : int
    a_addr_bits, b_addr_bits : int
    count_bits : int
        Width of the word counts.

    Members
    -------
    start : In(1)
        Begin a frame of ``n_a`` A words and ``n_b`` B words.
    abort : In(1)
        Give up the frame being loaded: discard its beats up to TLAST.
    flush : In(1)
        Discard beats up to the next TLAST (a job rejected before loading; its host may
        still send the frame). ``cancel`` or ``start`` ends it.
    cancel : In(1)
        Stop discarding: a new job was accepted and its frame is about to come.
    s_data, s_last, s_valid, s_ready : AXI4-Stream slave.
    a_we, a_addr, a_data; b_we, b_addr, b_data : Out
        Scratchpad write ports (registered).
    a_count, b_count : Out
        Words written so far in this job (a word counts once its write is done).
    a_count_next, b_count_next : Out
        The counts of the next cycle.
    busy : Out(1)
        A frame is being loaded (not counting discarding).
    err_short, err_long : Out(1)
        One-cycle pulses on a framing error.
    """

    #: Cycles from the loader taking a word to the published count including it: the
    #: registered scratchpad write port (the cycle model's scoreboard uses it).
    WRITE_DELAY = 1

    def __init__(self, *, stream_bits, a_word_bits, b_word_bits, a_addr_bits, b_addr_bits,
                 count_bits):
        self._sb = stream_bits
        self._wa, self._wb = a_word_bits, b_word_bits
        super().__init__({
            "start": In(1), "abort": In(1), "flush": In(1), "cancel": In(1),
            "n_a": In(count_bits), "n_a1": In(count_bits), "n_b": In(count_bits),
            "s_data": In(stream_bits), "s_last": In(1), "s_valid": In(1), "s_ready": Out(1),
            "a_we": Out(1), "a_addr": Out(a_addr_bits), "a_data": Out(a_word_bits),
            "b_we": Out(1), "b_addr": Out(b_addr_bits), "b_data": Out(b_word_bits),
            "a_count": Out(count_bits), "b_count": Out(count_bits),
            "a_count_next": Out(count_bits), "b_count_next": Out(count_bits),
            "busy": Out(1), "err_short": Out(1), "err_long": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        S = self._sb
        # beat buffer and write-port registers are data, read under buf_valid / the write
        # enables: reset-less, so a soft reset does not fan out to them
        buf = Signal(max(S, max(-(-W // S) * S for W in (self._wa, self._wb))), reset_less=True)
        buf_last = Signal(reset_less=True)
        buf_valid = Signal()
        sub = Signal(range(max(2, S + 1)))       # word index within the beat (W <= S)

        def sub_zero():
            m.d.sync += sub.eq(0)
        q = Signal(range(max(2, -(-max(self._wa, self._wb) // S) + 1)))  # beat index (W > S)
        # discard (and hard, below) take no reset of their own: the cycle after a reset,
        # after_reset (a flip-flop the reset sets) clears them and keeps TREADY low, so
        # that the reset reaches a flip-flop's reset pin rather than their logic
        discard = Signal(reset_less=True)
        after_reset = Signal(init=1)
        m.d.sync += after_reset.eq(0)

        # The error pulses and the write enables are reset-less too: an error pulse acts only
        # on a running job (which a reset stops), and a write the cycle after a reset lands
        # below the word count the next job's reads wait for, which rewrites it first.
        err_short = Signal(reset_less=True); err_long = Signal(reset_less=True)
        we_r = {k: Signal(reset_less=True, name=f"{k}_we_r") for k in ("a", "b")}
        m.d.comb += [self.err_short.eq(err_short), self.err_long.eq(err_long),
                     self.a_we.eq(we_r["a"]), self.b_we.eq(we_r["b"])]
        m.d.sync += [err_short.eq(0), err_long.eq(0)]
        # the loader's own counts and write ports; the outputs are these, registered
        a_cnt, b_cnt = self.a_count_next, self.b_count_next
        a_we, a_data = Signal(name="a_we_n"), Signal.like(self.a_data, name="a_data_n")
        b_we, b_data = Signal(name="b_we_n"), Signal.like(self.b_data, name="b_data_n")
        ports = {}
        for name in ("a_addr", "a_data", "b_addr", "b_data"):
            ports[name] = Signal(getattr(self, name).shape(), name=f"{name}_r", reset_less=True)
            m.d.comb += getattr(self, name).eq(ports[name])
        m.d.sync += [we_r["a"].eq(a_we), ports["a_addr"].eq(a_cnt), ports["a_data"].eq(a_data),
                     we_r["b"].eq(b_we), ports["b_addr"].eq(b_cnt), ports["b_data"].eq(b_data),
                     self.a_count.eq(a_cnt), self.b_count.eq(b_cnt)]

        # ``count == last`` of each segment, kept in registers (a wide compare on the
        # ready path would limit the clock): set at start, updated as a count steps.
        # (A's first segment needs no flag of its own: lw_cur is its flag while it runs)
        at_last = {k: Signal(name=f"at_last_{k}") for k in ("a", "b")}
        before_last = {k: Signal(self.n_a.shape() if k != "b" else self.n_b.shape(),
                                 name=f"before_last_{k}") for k in ("a1", "a", "b")}  # last - 1
        flags_of = {"a": ("a",), "a2": ("a",), "b": ("b",)}
        # ``count == before_last`` without a compare on the flags' path: registers of the
        # compares of this cycle's count with last - 2 and with last - 3 are the compares
        # of the next cycle's count with last - 2 when the count holds or steps by one
        # (which it does but at a start, and no count steps the cycle after a start: the
        # beat buffer or beat index is empty then)
        before_last2 = {k: Signal(v.shape(), name=f"before_last2_{k}")
                        for k, v in before_last.items()}                       # last - 3
        count_of = {"a1": a_cnt, "a": a_cnt, "b": b_cnt}
        step_now = {c: Signal(name=f"{c}_step") for c in ("a", "b")}
        step_r = {c: Signal(name=f"{c}_step_r") for c in ("a", "b")}
        eq_hold = {k: Signal(name=f"eq_hold_{k}") for k in before_last}
        eq_step = {k: Signal(name=f"eq_step_{k}") for k in before_last}
        m.d.sync += [step_r[c].eq(step_now[c]) for c in step_now]
        for k in before_last:
            m.d.sync += [eq_hold[k].eq(count_of[k] == before_last[k]),
                         eq_step[k].eq(count_of[k] == before_last2[k])]

        def at_before_last(k):
            """``count == before_last[k]`` this cycle."""
            return Mux(step_r["b" if k == "b" else "a"], eq_step[k], eq_hold[k])

        # The segment in progress's "last word" flag and (W <= S) its "last word of the
        # beat" flag, in registers of their own: in the A, B and A2 states they equal
        # ``count == last`` of the segment and ``sub == S // W - 1``. TREADY and the beat
        # buffer's enable then read two flip-flops, not a choice among flags by state.
        key_of = {"a": "a1", "b": "b", "a2": "a"}
        width_of = {"a": self._wa, "b": self._wb, "a2": self._wa}
        lw_cur = Signal()
        se_cur = Signal()

        def stepped(seg, count):
            """``count`` steps to ``count + 1`` this cycle."""
            m.d.comb += step_now["b" if seg == "b" else "a"].eq(1)
            for k in flags_of[seg]:
                m.d.sync += at_last[k].eq(at_before_last(k))
            m.d.sync += lw_cur.eq(at_before_last(key_of[seg]))

        def enter(seg):
            """The flags of segment ``seg``, entered with its sub-word index at zero."""
            m.d.sync += [lw_cur.eq(at_last[key_of[seg]]), se_cur.eq(S // width_of[seg] == 1)]

        # With every word no wider than a beat, the beat buffer loads whenever it is free or
        # being freed, in any state (it is read only under buf_valid, which start clears):
        # its enables read three flip-flops, not TREADY's state decode and TVALID.
        beat_free = max(self._wa, self._wb) <= S
        if beat_free:
            with m.If(~buf_valid | (se_cur & ~lw_cur)):
                m.d.sync += [buf.eq(self.s_data), buf_last.eq(self.s_last)]

        def segment(seg, W, count, we, data, nxt):
            """Emit words of one segment; ``nxt`` runs after its last word."""
            last_word = lw_cur                  # at_last[key_of[seg]]: count == its last
            if W <= S:
                P = S // W
                freeing = Signal(name=f"freeing_{seg}")
                with m.If(buf_valid):
                    with m.Switch(sub):
                        for slot in range(P):
                            with m.Case(slot):
                                m.d.comb += data.eq(buf[slot * W:(slot + 1) * W])
                    m.d.comb += [we.eq(1), freeing.eq(se_cur | last_word)]
                    m.d.sync += [count.eq(count + 1), sub.eq(sub + 1)]
                    m.d.sync += se_cur.eq(sub == S // W - 2)
                    stepped(seg, count)
                    with m.If(freeing):
                        m.d.sync += buf_valid.eq(0)
                        sub_zero()
                        m.d.sync += se_cur.eq(S // W == 1)
                        nxt(last_word)
                # A segment's last beat is not followed in the same cycle by the next
                # segment's first: the next segment may pack differently.
                m.d.comb += self.s_ready.eq(~buf_valid | (freeing & ~last_word))
                with m.If(self.s_valid & self.s_ready):
                    m.d.sync += buf_valid.eq(1)
                    if not beat_free:
                        m.d.sync += [buf.eq(self.s_data), buf_last.eq(self.s_last)]
            else:
                Q = -(-W // S)
                word = Signal(Q * S, name=f"word_{seg}")
                m.d.comb += [self.s_ready.eq(1), word.eq(buf)]
                with m.Switch(q):
                    for beat in range(Q):
                        with m.Case(beat):
                            m.d.comb += word[beat * S:(beat + 1) * S].eq(self.s_data)
                m.d.comb += data.eq(word[:W])
                with m.If(self.s_valid):
                    m.d.sync += [buf.eq(word), q.eq(q + 1)]
                    with m.If(q == Q - 1):
                        m.d.comb += we.eq(1)
                        m.d.sync += [count.eq(count + 1), q.eq(0)]
                        stepped(seg, count)
                        nxt(last_word, beat_last=self.s_last)
                    with m.Elif(self.s_last):
                        m.d.sync += [err_short.eq(1), q.eq(0)]
                        goto("IDLE")

        # A frame cut off mid-way (abort, or no TLAST where it was due) is certainly still
        # arriving: its remainder is discarded even if a new job starts first ("hard").
        # A rejected job's frame may never come: a new job cancels that discard.
        hard = Signal(reset_less=True)
        single_a = Signal()
        # state flags, one-hot (IDLE after a reset)
        st = {n: Signal(init=(n == "IDLE"), name=f"st_{n.lower()}")
              for n in ("IDLE", "DRAIN", "A", "B", "A2")}

        def goto(name):
            m.d.sync += [flag.eq(n == name) for n, flag in st.items()]

        def common():
                with m.If(self.abort):
                    m.d.sync += [buf_valid.eq(0), q.eq(0)]
                    sub_zero()
                    with m.If(self.busy):
                        m.d.sync += [discard.eq(1), hard.eq(1)]
                    goto("IDLE")
                with m.If(self.flush):
                    m.d.sync += [discard.eq(1), hard.eq(0)]
                with m.If(self.cancel & ~hard):
                    m.d.sync += discard.eq(0)
                with m.If(self.start):
                    m.d.sync += [a_cnt.eq(0), b_cnt.eq(0), self.a_count.eq(0), self.b_count.eq(0),
                                 buf_valid.eq(0),
                                 q.eq(0), single_a.eq(self.n_a1 == self.n_a),
                                 at_last["a"].eq(self.n_a == 1),
                                 at_last["b"].eq(self.n_b == 1),
                                 before_last["a1"].eq(self.n_a1 - 2),
                                 before_last["a"].eq(self.n_a - 2),
                                 before_last["b"].eq(self.n_b - 2),
                                 before_last2["a1"].eq(self.n_a1 - 3),
                                 before_last2["a"].eq(self.n_a - 3),
                                 before_last2["b"].eq(self.n_b - 3)]
                    sub_zero()
                    m.d.sync += [lw_cur.eq(self.n_a1 == 1), se_cur.eq(S // self._wa == 1)]
                    with m.If(discard & hard):
                        goto("DRAIN")
                    with m.Else():
                        m.d.sync += discard.eq(0)
                        goto("A")

        # The state in one-hot flags, one flip-flop per state to decode (Yosys re-encodes
        # no Amaranth FSM: its state register has an initial value, which fsm_detect skips)
        with m.If(st["IDLE"]):
            m.d.comb += self.s_ready.eq(discard & ~after_reset)
            with m.If(discard & self.s_valid & self.s_last):
                m.d.sync += [discard.eq(0), hard.eq(0)]
            common()
        with m.If(st["DRAIN"]):
            # a job started while the tail of a cut-off frame is still coming
            m.d.comb += [self.s_ready.eq(1), self.busy.eq(1)]
            with m.If(self.s_valid & self.s_last):
                m.d.sync += [discard.eq(0), hard.eq(0)]
                goto("A")
            with m.If(self.abort):
                goto("IDLE")

        def to(target):
            def go(last_word, beat_last=None):
                bl = buf_last if beat_last is None else beat_last
                with m.If(bl & ~last_word):
                    m.d.sync += err_short.eq(1)
                    goto("IDLE")
                with m.Elif(last_word):
                    with m.If(bl):
                        m.d.sync += err_short.eq(1)   # frame ended too early
                        goto("IDLE")
                    with m.Else():
                        enter(target.lower())
                        goto(target)
            return go

        def to_done(last_word, beat_last=None):
            bl = buf_last if beat_last is None else beat_last
            with m.If(last_word):
                with m.If(~bl):
                    m.d.sync += [err_long.eq(1), discard.eq(1), hard.eq(1)]
                goto("IDLE")
            with m.Elif(bl):
                m.d.sync += err_short.eq(1)
                goto("IDLE")

        def after_b(last_word, beat_last=None):
            with m.If(single_a):
                to_done(last_word, beat_last)
            with m.Else():
                to("A2")(last_word, beat_last)

        with m.If(st["A"]):
            m.d.comb += self.busy.eq(1)
            segment("a", self._wa, a_cnt, a_we, a_data, to("B"))
            common()
        with m.If(st["B"]):
            m.d.comb += self.busy.eq(1)
            segment("b", self._wb, b_cnt, b_we, b_data, after_b)
            common()
        with m.If(st["A2"]):
            m.d.comb += self.busy.eq(1)
            segment("a2", self._wa, a_cnt, a_we, a_data, to_done)
            common()
        with m.If(after_reset):
            m.d.sync += [discard.eq(0), hard.eq(0)]

        return m
