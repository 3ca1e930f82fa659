"""The sparse MAC accelerator: ``Y = A . X`` with A streamed in CSR order, X dense.

Work is spread by nonzeros, not rows. A arrives as CSR *entries* (value, column
index, last-in-row flag, empty-row flag), L per input beat, one per lane, whatever
the row lengths: a long row spans lanes and beats, a short row shares a beat with
others, an empty row is one placeholder entry. Blocks, in data order:

loader (the job FSM)
    The job's input frame: segment X (``x_rows_per_beat`` rows per beat, written
    a whole beat per cycle into the dense buffer), then segment A (entries).
    Entry beats are checked as they are accepted (column range, row count,
    framing) and enter the gather stage.
``DenseBuffer``
    Each lane reads the row of X its entry names (replicated: one copy per lane;
    banked: arbitration, conflict stalls).
multiply
    P products per lane (one per column of X), extended to the accumulator width,
    on a multiplier with registered operands and product (a DSP block's own
    registers when the platform offers ``accelgen_multiplier``).
``SegmentedReduce``
    Row sums across the lanes by the last-in-row flags, with a carry for the row
    left open at the end of a beat; 0..L rows complete per beat, in order.
compaction, ``CompactionQueue`` and output packer
    The completed rows, compacted in order (a registered stage), are queued and
    leave ``rows_per_beat`` per result beat.

The pipeline after the gather stage never reorders: rows leave in row order, and
it never stops: an entry beat is taken only while the result queue has room for
every row under way (a credit count; a beat refused for room is an output stall).
Nothing of A is stored, so the row and nonzero limits only size counters; the
column limit is the dense buffer's depth.

Stream formats (documented in every manifest, see :func:`sparse_stream_formats`):

* input frame: ``ceil(COLS / x_rows_per_beat)`` beats of X (row ``c`` of X at word
  ``c % x_rows_per_beat`` of beat ``c // x_rows_per_beat``, P elements
  little-endian in the word), then ``ceil(ENTRIES / L)`` beats of entries (entry
  ``e`` in slot ``e % L`` of its beat, slots ``stream_bits // L`` bits apart),
  TLAST on the final beat;
* result frame: ROWS rows of P accumulators, ``rows_per_beat`` rows per beat, the
  final beat zero-padded, TLAST on it.

Errors (see :data:`~.sparse_regs.SPARSE_ERRORS`): a job rejected at the start
(bad or over-limit dimensions) sends no result frame and flushes input beats up to
the next TLAST, in case its host sends the frame anyway; a new START cancels that
flush (as in the GEMM core). A job that fails while running stops taking entries,
lets the rows already under way finish, and completes its result frame with zero
rows, so the host always receives the frame it expects; the rest of its input
frame, which the host is sending, is discarded up to TLAST even across a new START
(the next job's X load begins after that TLAST).
"""

from amaranth import Module, Signal, Mux, Cat, Const, signed, unsigned
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out
from amaranth import ResetInserter

from .sparse_config import SparseConfig
from .sparse_regs import SPARSE_ERRORS, sparse_register_map
from .densebuf import DenseBuffer, LATENCY as BUFFER_LATENCY
from .segscan import SegmentedReduce
from .rowqueue import CompactionQueue
from .pe import registered_multiplier
from .axil import AXI4LiteCSR, axi_top_members, axi_top_domain, connect_axil

__all__ = ["SparseCore", "SparseTop", "entry_layout", "sparse_stream_formats", "ERR", "PIPELINE",
           "POST_REDUCE"]

ERR = {e.name: e.code for e in SPARSE_ERRORS}

#: Registered stages between an entry beat's acceptance and the segmented reduction:
#: gather (S1), the dense buffer's read pipeline (S2-S5: block RAM address register,
#: its output register, a fabric register next to the block RAM, the row's group of the
#: word; see :class:`.densebuf.DenseBuffer`), the multiplier's operand registers (S6,
#: after the last row select) and its product register (S7).
PIPELINE = ("gather", "read", "outreg", "hold", "select", "operand", "multiply")

#: Registered stages between the segmented reduction and the compaction queue's banks:
#: the completed rows compacted to positions 0..k-1, then rotated to their banks (the
#: queue's registered write: its write enables, data and addresses are registers).
POST_REDUCE = ("compact", "rotate")

assert PIPELINE.index("select") == BUFFER_LATENCY, "the rows of X arrive at the select stage"

#: Rows per bank of the compaction queue (LUT RAM: 16 is the depth of its cells). The
#: credit check at the input holds room for every row under way, about L rows per
#: cycle of the ~17-cycle round trip, so one-entry rows can still stall on output.
QUEUE_DEPTH = 16

COUNTERS = ("job_cycles", "load_cycles", "nnz", "lane_busy_cycles", "in_stall_cycles",
            "conflict_stall_cycles", "out_stall_cycles")


def _shape(dt):
    return signed(dt.bits) if dt.signed else unsigned(dt.bits)


def entry_layout(cfg: SparseConfig) -> data.StructLayout:
    """One CSR entry in its slot: value, column index, last-in-row, empty-row (LSB first)."""
    return data.StructLayout({"value": _shape(cfg.a), "col": unsigned(cfg.col_bits),
                              "last": 1, "empty": 1})


def _le(v, c):
    """``v <= c``, or the constant 1 when it always holds (Verilator lints the compare)."""
    return v <= c if c < (1 << len(v)) - 1 else Const(1)


def _popcount(m, bits, n, name):
    terms = [bits[i] for i in range(n)]
    while len(terms) > 1:
        nxt = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    out = Signal(range(n + 1), name=name)
    m.d.comb += out.eq(terms[0])
    return out


class SparseCore(wiring.Component):
    """One-job sparse engine with plain (non-AXI-named) ports.

    Parameters
    ----------
    config : SparseConfig

    Members
    -------
    start : In(1)
        Pulse: start a job with the current ``rows``, ``cols``, ``entries``.
    rows, cols, entries : In(32)
    busy, done, error : Out(1)
    error_code : Out(8)
    job_cycles, load_cycles, nnz, lane_busy_cycles, in_stall_cycles,
    conflict_stall_cycles, out_stall_cycles : Out(64)
    jobs : Out(32)
    s_data, s_last, s_valid, s_ready : operand stream (slave)
    m_data, m_last, m_valid, m_ready : result stream (master)
    """

    def __init__(self, config: SparseConfig):
        if not isinstance(config, SparseConfig):
            raise TypeError(f"SparseCore config must be a SparseConfig, not {config!r}")
        self._cfg = config
        sb = config.stream_bits
        members = {"start": In(1), "rows": In(32), "cols": In(32), "entries": In(32),
                   "busy": Out(1), "done": Out(1), "error": Out(1), "error_code": Out(8)}
        members.update({c: Out(64) for c in COUNTERS})
        members.update({
            "jobs": Out(32),
            "s_data": In(sb), "s_last": In(1), "s_valid": In(1), "s_ready": Out(1),
            "m_data": Out(sb), "m_last": Out(1), "m_valid": Out(1), "m_ready": In(1),
        })
        super().__init__(members)

    @property
    def config(self) -> SparseConfig:
        return self._cfg

    def elaborate(self, platform):
        cfg = self._cfg
        L, P = cfg.lanes, cfg.dense_cols
        wx = cfg.x_rows_per_beat
        wxb = (wx - 1).bit_length()
        rb = cfg.rows_per_beat
        m = Module()

        # -- blocks ------------------------------------------------------------------------
        m.submodules.xbuf = db = DenseBuffer(
            lanes=L, row_bits=cfg.x_word_bits, words=wx, depth=cfg.x_depth,
            col_bits=cfg.col_bits, mode=cfg.x_buffer, banks=cfg.x_banks)
        m.submodules.reduce = red = SegmentedReduce(lanes=L, cols=P, acc_bits=cfg.acc_bits)
        m.submodules.queue = q = CompactionQueue(lanes=L, row_bits=cfg.row_bits, read_rows=rb,
                                                     depth=QUEUE_DEPTH, registered_enough=True,
                                                     registered_write=True)

        # -- job registers -------------------------------------------------------------------
        M = Signal(32); N = Signal(32); E = Signal(32)
        x_beats = Signal(33 - wxb)
        x_idx = Signal(max(1, (cfg.x_depth - 1).bit_length()))     # the buffer word written
        # From the job registers in SETUP, so that CHECK, LOAD and the entry checks read
        # flags and short counts: the start checks, the X beats left and whether the
        # next one is the last, and COLS capped at 2**col_bits (a column index is out
        # of range when it is at least that).
        chk_dim = Signal(); chk_over = Signal()
        x_rem = Signal(range(cfg.x_depth + 1)); x_last = Signal()
        n_lim = Signal(cfg.col_bits + 1)
        # Counts past CHECK are sized to the limits (a larger job is rejected there).
        # entries not yet accepted after the next beat (the count the flags below are
        # updated from, so that their compares start at a register, not a subtract)
        rem_after = Signal(range(cfg.max_nnz + 1))
        # rem_after < 2**kb, kept in a register (set at CHECK, stepped with rem_after)
        rem_small = Signal()
        # rows the accepted entries have yet to end: rows_todo, kept as its low bits
        # (todo_lo, as wide as a beat's row count), its high part and that less one, and
        # whether the high part is zero, so that a beat's update is a short subtract
        # whose borrow picks the high part (see ``todo_step``)
        todo_bits = len(Signal(range(cfg.max_rows + 1)))
        # rows left after the next result beat if it is a full one (used only when it is)
        rows_after = Signal(range(cfg.max_rows + 1))
        # Held in registers so that the checks of an entry beat, which decide whether it
        # is taken, are shallow: lane l of the next beat holds an entry (remaining > l),
        # the next beat is the final one (remaining <= L), and its entry in lane l is the
        # job's last (remaining == l + 1), ``remaining`` being the entries not yet
        # accepted. Each is updated from rem_after, as the count steps by L.
        v_next = Signal(L); final_next = Signal(); fin_lane = Signal(L)
        acc_open = Signal()             # entry beats still to accept
        emitting = Signal(); padding = Signal()
        flush = Signal()                # drop beats up to TLAST: rejected job (START cancels)
        discard = Signal()              # drop beats up to TLAST: rest of an aborted frame
        err_code = Signal(8)
        m.d.comb += self.error_code.eq(err_code)

        # Queue room not yet promised to a beat (see "credits" below): an entry beat is
        # taken only while room_ok, so the pipeline after the gather stage never stops.
        room_ok = Signal(init=1)

        # -- input beat decode (combinational, at acceptance) --------------------------------
        layout = entry_layout(cfg)
        eb, slot = cfg.entry_bits, cfg.slot_bits
        ent = [data.View(layout, self.s_data[l * slot:l * slot + eb]) for l in range(L)]
        v_in = Signal(L); last_in = Signal(L); req_in = Signal(L)
        bad_col = Signal(L); last_of_final = Signal()
        for l in range(L):
            m.d.comb += [
                v_in[l].eq(v_next[l]),
                last_in[l].eq(ent[l].last & v_in[l]),
                req_in[l].eq(v_in[l] & ~ent[l].empty),
                bad_col[l].eq(req_in[l] & (ent[l].col >= n_lim)),
            ]
        m.d.comb += last_of_final.eq((fin_lane & Cat(*[ent[l].last for l in range(L)])).any())
        k_in = _popcount(m, last_in, L, "k_in")
        final_in = Signal()
        m.d.comb += final_in.eq(final_next)
        # Rows a beat ends against the rows still to end (checked in S1, from registers):
        # too many, or (final beat) not exactly all of them. A beat ends at most L rows,
        # so rows_todo only matters below 2**kb.
        kb = len(k_in)
        hb = max(1, todo_bits - kb)
        todo_small = Signal(); todo_lo = Signal(kb)
        todo_hi = Signal(hb); todo_hi_m1 = Signal(hb)

        def todo_load(count):
            return [todo_lo.eq(count[:kb]), todo_hi.eq(count[kb:kb + hb]),
                    todo_hi_m1.eq(count[kb:kb + hb] - 1), todo_small.eq(count[kb:] == 0)]

        def todo_step(k):
            # rows_todo - k: a kb-bit subtract; its borrow steps the high part
            diff = Signal(kb + 1, name="todo_diff")
            m.d.comb += diff.eq(Cat(todo_lo, 0) - k)
            return [todo_lo.eq(diff[:kb]),
                    todo_hi.eq(Mux(diff[kb], todo_hi_m1, todo_hi)),
                    todo_hi_m1.eq(Mux(diff[kb], todo_hi_m1 - 1, todo_hi_m1)),
                    todo_small.eq(Mux(diff[kb], todo_hi_m1 == 0, todo_small))]
        e_short = Signal(); e_long = Signal()
        m.d.comb += [e_short.eq(self.s_last & ~final_in), e_long.eq(final_in & ~self.s_last)]

        e_small = Signal()      # ENTRIES < 2**kb (from SETUP, for CHECK)

        def count_entries(small, lo):
            # the flags above for a next beat that starts with ``count`` entries left, from
            # ``small`` (count < 2**kb) and count's low kb bits
            return [v_next.eq(Cat(*[~small | (lo > l) for l in range(L)])),
                    final_next.eq(small & _le(lo, L)),
                    fin_lane.eq(Cat(*[small & (lo == l + 1) for l in range(L)]))]

        # -- S1: gather ------------------------------------------------------------------------
        s1_valid = Signal()     # an accepted beat is in S1 (it may have failed its checks)
        s1_ok = Signal()        # ... and it passed them
        s1_live = Signal()      # a beat is in S1 and no earlier one failed
        fresh = Signal()        # ... for its first cycle there (taken in the previous one)
        # The checks of the beat in S1, from registers loaded at its acceptance: stream
        # framing and the column range per lane; and its rows against rows_todo, which
        # the beat before it updated in its own first cycle in S1 (a beat that fails is
        # dropped in its first cycle, so one that stays passed).
        s1_e_short = Signal(); s1_e_long = Signal(); s1_bad_col = Signal(L)
        s1_final = Signal(); s1_lof = Signal()
        s1_tlast = Signal(); s1_bad = Signal()
        # rows the beat in S1 ends (also its share of the queue, see "credits")
        s1_k = Signal(range(L + 1))
        s1_e_col = Signal(); s1_e_rows = Signal()
        m.d.comb += [
            s1_e_col.eq(s1_bad_col.any()),
            s1_e_rows.eq(fresh & ((todo_small & (s1_k > todo_lo))
                                  | (s1_final & (~todo_small | (s1_k != todo_lo) | ~s1_lof)))),
            s1_bad.eq(s1_valid & (s1_e_short | s1_e_long | s1_e_col | s1_e_rows)),
            s1_ok.eq(s1_live & ~s1_bad),
        ]
        # (s1_value and s1_col keep the reset: reset-less, they made Yosys 0.70's abc9
        # reintegration fail an assertion in the out-of-context netlist)
        s1_value = [Signal(_shape(cfg.a), name=f"s1_value{l}") for l in range(L)]
        # (one Signal per lane: Yosys 0.70's abc9 reintegration can fail an assertion
        # when a register's bits also carry the ``name[i]`` names Amaranth gives the
        # elements of an array-shaped signal, ``name[i]`` then meaning two things)
        s1_col = [Signal(cfg.col_bits, name=f"s1_col{l}") for l in range(L)]
        s1_last = Signal(L); s1_req = Signal(L)
        # A failing beat is dropped in S1 (s1_valid clears) but it may move on to S2 in
        # that cycle: the move and the taking of the next beat do not wait for the checks.
        # The job FSM reacts one cycle later, from registers (bad_q, the beat's error
        # code and TLAST): then the failed beat, now in S2, goes no further, and a beat
        # taken behind it, now in S1, is dropped. So the checks end at flip-flops.
        bad_q = Signal(); bad_code_q = Signal(8); bad_last_q = Signal()
        m.d.sync += [bad_q.eq(s1_bad), bad_last_q.eq(s1_tlast),
                     bad_code_q.eq(Mux(s1_e_short, ERR["SHORT_STREAM"],
                                   Mux(s1_e_long, ERR["LONG_STREAM"],
                                   Mux(s1_e_col, ERR["COL_RANGE"], ERR["ROW_MISMATCH"]))))]
        m.d.comb += [s1_live.eq(s1_valid & ~bad_q),
                     db.en.eq(1), db.i_valid.eq(s1_ok), db.i_col.eq(Cat(*s1_col)),
                     db.i_req.eq(s1_req)]
        leave = Signal()
        m.d.comb += leave.eq(s1_live & db.i_ready)

        in_run = Signal()
        accept = Signal()
        m.d.comb += accept.eq(self.s_valid & self.s_ready & in_run)
        m.d.sync += fresh.eq(accept)
        with m.If(leave | s1_bad | bad_q):
            m.d.sync += s1_valid.eq(0)
        # The beat's registers load whenever the gather stage is free (empty or its beat
        # leaving), on an accepted beat, a bad one included, and on no beat at all (then
        # s1_valid is low and they are never read): only s1_valid and the job FSM wait
        # for the checks, and the registers' enable is the stage's, not the handshake.
        # The beat's lane and nonzero counts are registered here too.
        s1_free = Signal()
        m.d.comb += s1_free.eq(~s1_live | db.i_ready)
        s1_count = Signal(range(L + 1)); s1_nnz = Signal(range(L + 1))
        with m.If(s1_free):
            m.d.sync += [s1_last.eq(last_in), s1_req.eq(req_in), s1_k.eq(k_in),
                         s1_count.eq(_popcount(m, v_in, L, "n_in")),
                         s1_nnz.eq(_popcount(m, req_in, L, "nnz_in")),
                         s1_e_short.eq(e_short), s1_e_long.eq(e_long), s1_bad_col.eq(bad_col),
                         s1_final.eq(final_in), s1_lof.eq(last_of_final),
                         s1_tlast.eq(self.s_last)]
            for l in range(L):
                m.d.sync += [s1_value[l].eq(ent[l].value), s1_col[l].eq(ent[l].col)]
        with m.If(accept):
            m.d.sync += s1_valid.eq(1)

        # -- S2..S7: the dense buffer's read (S2-S5), operands (S6), product (S7) ----------
        # Per-beat flags and the A values travel alongside; data registers are
        # reset-less (only the valid flags need the soft reset).
        NS = len(PIPELINE)
        SEL = PIPELINE.index("select") + 1      # stage number (S1 = gather) of o_x
        sv = {1: s1_valid}; sl = {1: s1_last}
        sz, sa = {}, {}
        for k in range(2, NS + 1):
            sv[k] = Signal(name=f"s{k}_valid")
            sl[k] = Signal(L, name=f"s{k}_last")
        for k in range(2, SEL + 1):
            sz[k] = Signal(L, name=f"s{k}_zero", reset_less=True)
            sa[k] = [Signal(_shape(cfg.a), name=f"s{k}_value{l}", reset_less=True)
                     for l in range(L)]
        # The stages run free (no enable): S2's flags and values load every cycle (only
        # its valid flag waits for ``leave``): junk while s2_valid is low, never used then
        m.d.sync += sv[2].eq(leave)
        m.d.sync += [sl[2].eq(s1_last), sz[2].eq(~s1_req)]
        m.d.sync += [sa[2][l].eq(s1_value[l]) for l in range(L)]
        m.d.sync += [sv[3].eq(sv[2] & ~bad_q), sl[3].eq(sl[2])]     # a failed beat stops
        for k in range(4, NS + 1):
            m.d.sync += [sv[k].eq(sv[k - 1]), sl[k].eq(sl[k - 1])]
        for k in range(3, SEL + 1):
            m.d.sync += sz[k].eq(sz[k - 1])
            m.d.sync += [sa[k][l].eq(sa[k - 1][l]) for l in range(L)]

        prod = Signal(data.ArrayLayout(data.ArrayLayout(signed(cfg.acc_bits), P), L))
        x_row = data.ArrayLayout(_shape(cfg.x), P)
        for l in range(L):
            # an empty-row placeholder multiplies by zero
            op_a = Signal(_shape(cfg.a), name=f"op_a{l}")
            m.d.comb += op_a.eq(Mux(sz[SEL][l], 0, sa[SEL][l]))
            x_l = data.View(x_row, db.o_x[l])
            for p in range(P):
                mul = registered_multiplier(platform, _shape(cfg.a), _shape(cfg.x),
                                            signed(cfg.acc_bits))
                if mul is not None:
                    m.submodules[f"mul{l}_{p}"] = mul
                    m.d.comb += [mul.a.eq(op_a), mul.b.eq(x_l[p]), mul.a_en.eq(1),
                                 mul.b_en.eq(1), prod[l][p].eq(mul.p)]
                else:
                    reg_a = Signal(_shape(cfg.a), name=f"s5_a{l}_{p}", reset_less=True)
                    reg_b = Signal(_shape(cfg.x), name=f"s5_x{l}_{p}", reset_less=True)
                    reg_p = Signal(signed(cfg.acc_bits), name=f"s6_p{l}_{p}", reset_less=True)
                    m.d.sync += [reg_a.eq(op_a), reg_b.eq(x_l[p]), reg_p.eq(reg_a * reg_b)]
                    m.d.comb += prod[l][p].eq(reg_p)

        # -- segmented reduction, compaction, compaction queue --------------------------------
        # The reduction's enable is a register that is high except while padding (the
        # pipeline is empty then): a constant 1 there makes Yosys 0.70's abc9
        # reintegration fail an assertion on the out-of-context netlist.
        red_en = Signal(init=1, reset_less=True)
        m.d.sync += red_en.eq(~padding)
        m.d.comb += [
            red.en.eq(red_en), red.i_valid.eq(sv[NS]), red.i_value.eq(prod),
            red.i_last.eq(sl[NS]),
        ]
        # compaction: the k rows a beat completes, at positions 0..k-1 in lane order
        c_valid = Signal(); c_count = Signal(range(L + 1))
        c_rows = [Signal(cfg.row_bits, name=f"c_row{r}", reset_less=True) for r in range(L)]
        m.d.sync += [c_valid.eq(red.o_valid), c_count.eq(red.o_count)]
        for r in range(L):
            terms = [Mux(red.o_pick[r][l], red.o_sum[l].as_value(), 0)
                     for l in range(r, L)]
            while len(terms) > 1:
                terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i]
                         for i in range(0, len(terms), 2)]
            m.d.sync += c_rows[r].eq(terms[0])
        m.d.comb += [q.w_en.eq(c_valid), q.w_count.eq(c_count)]
        m.d.comb += [q.w_rows[r].eq(c_rows[r]) for r in range(L)]
        pipe_busy = Signal()
        c_valid_q = Signal()    # the queue's registered write (the rotate stage) is busy
        m.d.sync += c_valid_q.eq(c_valid)
        m.d.comb += pipe_busy.eq(Cat(*sv.values()).any() | red.busy | c_valid | c_valid_q)
        pipe_busy_q = Signal()  # (a cycle late: padding waits for it)
        m.d.sync += pipe_busy_q.eq(pipe_busy)

        # -- output: rows_per_beat rows per result beat ---------------------------------------
        # k_out (rows in the next beat: min(rows left, rb)), whether that beat is the last
        # and whether rows are left are registers, updated as beats are emitted: the emit
        # decision only compares k_out with the queue level. Their next values come from
        # registers too: rows_after (rows left after a full next beat) and last2 (the beat
        # after the next one is the last).
        k_out = Signal(range(rb + 1)); out_last = Signal(); out_more = Signal()
        last2 = Signal()
        emit = Signal(); emit_q_side = Signal()
        k_emit = Signal(range(rb + 1))      # k_out after an emitted beat
        m.d.comb += k_emit.eq(Mux(out_last, 0, Mux(last2, rows_after, rb)))

        # and, for k_pair below, whether the beat after that is the last (last3) and the
        # rows left after two full beats (rows_after2)
        last3 = Signal(); rows_after2 = Signal(range(cfg.max_rows + 1))

        # ROWS below 2**mb (mb: 2**mb > 3 * rb), registered at the START, so that the
        # counts above load from a flag and mb low bits in SETUP
        mb = (3 * rb).bit_length()
        m_small = Signal()

        def count_rows(count):
            lo = count[:mb]
            return [k_out.eq(Mux(~m_small | (lo >= rb), rb, lo)),
                    out_last.eq(m_small & _le(lo, rb)),
                    out_more.eq(~m_small | (lo != 0)), rows_after.eq(count - rb),
                    last2.eq(m_small & _le(lo, 2 * rb)), last3.eq(m_small & _le(lo, 3 * rb)),
                    rows_after2.eq(count - 2 * rb)]

        # k_pair = k_out + k_emit, a register for the queue's registered level compare:
        # after an emitted beat k_out is k_emit and k_emit is k_emit_next
        k_pair = Signal(range(2 * rb + 1)); k_emit_next = Signal(range(rb + 1))
        m.d.comb += k_emit_next.eq(Mux(last2, 0, Mux(last3, rows_after2, rb)))
        m.d.sync += k_pair.eq(Mux(emit, Mux(out_last, 0, k_emit + k_emit_next), k_out + k_emit))
        have = Signal()         # the queue holds the next beat's rows
        emit_q = Signal()       # a beat was emitted in the previous cycle
        m.d.sync += emit_q.eq(emit)
        m.d.comb += [
            have.eq(q.enough),          # (a register: level >= k_out)
            q.r_pop_next.eq(k_emit), q.r_pop_pair.eq(k_pair),
            # padded beats (their zero rows are masked by registered level flags) leave
            # at most every other cycle: the flags then see the level of the beat's cycle
            emit.eq(emitting & (~self.m_valid | self.m_ready) & out_more
                    & Mux(padding, ~emit_q, have)),
            # a padded beat (k_out > level) empties the queue
            q.r_en.eq(emit_q_side), q.r_pop.eq(k_out),
        ]
        # The queue's pop strobe is a second copy of emit, formed from a copy of m_valid
        # (m_valid_q: same next value; a register of its own, so synthesis keeps it), so
        # that each copy drives half of the registers emit updates.
        m_valid_q = Signal()
        m.d.comb += emit_q_side.eq(emitting & (~m_valid_q | self.m_ready) & out_more
                                   & Mux(padding, ~emit_q, have))
        with m.If(~m_valid_q | self.m_ready):
            m.d.sync += m_valid_q.eq(emit_q_side)

        # -- credits: the queue is never full when rows reach it ------------------------------
        # Nothing after the gather stage waits: instead an entry beat is taken only while
        # the queue has room for every row under way and for the rows the beat may end.
        # ``room`` is Q less L rows for every beat taken, plus the rows returned: each
        # beat's refund of the rows it does not end (L - s1_k, formed in its first cycle
        # in S1, ``fresh``) and the rows popped, both gathered in a register (``ret``,
        # and ``ret_take`` = ret - L) and added a cycle later. The queue level plus the
        # rows under way never exceed Q - room. The flag is a compare of the register
        # with a constant: room' is at least room less L for a beat taken now, so
        #   room_ok' = room >= L + (L if a beat is taken now)
        # After a failed beat the job takes no more, so room is not needed then; while
        # padding the pipeline is empty.
        Q = q.capacity
        wb_room = len(Signal(range(Q + 1)))
        room = Signal(wb_room, init=Q)
        ret = Signal(wb_room); ret_take = Signal(wb_room)   # (ret - L wraps: room >= L)
        refund = Signal(range(L + 1))
        m.d.comb += refund.eq(Mux(fresh, L - s1_k, 0))
        ret_pop = Signal(range(L + rb + 1))
        m.d.comb += ret_pop.eq(refund + k_out)
        m.d.sync += [ret.eq(Mux(emit, ret_pop, refund)),
                     ret_take.eq(Mux(emit, ret_pop, refund) - L),
                     room.eq(room + Mux(accept, ret_take, ret)),
                     room_ok.eq(Mux(accept, room >= 2 * L, room >= L))]
        # a beat offered and refused for room (the gather stage then idles: an output
        # stall, counted in the next cycle)
        refused = Signal()
        m.d.sync += refused.eq(in_run & self.s_valid & acc_open & s1_free & ~room_ok)
        # The result register loads whenever it is free (empty or being taken), a beat
        # or not: its enable does not wait for the queue-level compare in ``emit``.
        # The rows a beat takes from the queue, the others zero: j < k_out, and while
        # padding j < level too; a register for the next cycle: after an emitted beat
        # k_out is k_emit; a padded beat has no emitted beat before it, so k_out and the
        # level hold (and no rows are written while padding, see pipe_busy)
        rmask = Signal(rb)
        pad_next = Signal()
        for j in range(rb):
            m.d.sync += rmask[j].eq(Mux(pad_next, (k_out > j) & (q.level > j),
                                        Mux(emit, k_emit > j, k_out > j)))
        with m.If(~self.m_valid | self.m_ready):
            beat = []
            for j in range(rb):
                beat.append(Mux(rmask[j], q.r_rows[j], 0))
            m.d.sync += [self.m_valid.eq(emit), self.m_last.eq(out_last),
                         self.m_data.eq(Cat(*beat))]
        with m.If(emit):
            with m.If(out_last):
                m.d.sync += [k_out.eq(0), out_more.eq(0)]
            with m.Else():
                m.d.sync += [k_out.eq(k_emit), out_last.eq(last2),
                             rows_after.eq(rows_after2), last2.eq(last3),
                             rows_after2.eq(rows_after2 - rb), last3.eq(rows_after <= 3 * rb)]
        last_beat = Signal()
        m.d.comb += last_beat.eq(self.m_valid & self.m_ready & self.m_last)

        # -- counters -------------------------------------------------------------------------
        with m.If(self.busy):
            m.d.sync += self.job_cycles.eq(self.job_cycles + 1)
        # Stall cycles and the lane and nonzero counts of a beat are added two cycles
        # late, from a registered snapshot of the gather stage's state through registered
        # increments (no decision before the 64-bit adders); the last one lands long
        # before the job's last result beat.
        snap_run = Signal(); snap_ok = Signal(); snap_ready = Signal(); snap_ref = Signal()
        snap_count = Signal(range(L + 1)); snap_nnz = Signal(range(L + 1))
        m.d.sync += [snap_run.eq(in_run & (acc_open | s1_ok)), snap_ok.eq(s1_ok),
                     snap_ready.eq(db.i_ready), snap_ref.eq(refused),
                     snap_count.eq(s1_count), snap_nnz.eq(s1_nnz)]
        stall = {c: Signal(name=f"{c}_inc") for c in ("conflict", "out", "in")}
        m.d.sync += [f.eq(0) for f in stall.values()]
        with m.If(snap_run):
            with m.If(snap_ok & ~snap_ready):
                m.d.sync += stall["conflict"].eq(1)
            with m.Elif(~snap_ok & snap_ref):
                m.d.sync += stall["out"].eq(1)
            with m.Elif(~snap_ok):
                m.d.sync += stall["in"].eq(1)
        for c, f in stall.items():
            cnt = getattr(self, f"{c}_stall_cycles")
            m.d.sync += cnt.eq(cnt + f)
        busy_add = Signal(range(L + 1)); nnz_add = Signal(range(L + 1))
        m.d.sync += [busy_add.eq(Mux(snap_ok, snap_count, 0)),
                     nnz_add.eq(Mux(snap_ok & snap_ready, snap_nnz, 0)),
                     self.lane_busy_cycles.eq(self.lane_busy_cycles + busy_add),
                     self.nnz.eq(self.nnz + nnz_add)]

        # -- job control ----------------------------------------------------------------------
        def finish():
            m.d.sync += [self.busy.eq(0), self.done.eq(1), emitting.eq(0), padding.eq(0),
                         acc_open.eq(0), self.jobs.eq(self.jobs + 1)]
            m.next = "IDLE"

        def fail(code):
            m.d.sync += [err_code.eq(code), self.error.eq(1)]

        # The dense buffer's write is registered: its enable reaches every copy's block
        # RAMs from a flip-flop. The first entry beat reads the buffer two cycles after
        # the last X beat is taken, one after this write.
        x_we = Signal(reset_less=True)     # (after a soft reset at most one harmless write)
        x_waddr = Signal.like(x_idx, reset_less=True)
        x_wdata = Signal.like(self.s_data, reset_less=True)
        m.d.sync += [x_we.eq(0), x_waddr.eq(x_idx), x_wdata.eq(self.s_data)]
        m.d.comb += [db.we.eq(x_we), db.waddr.eq(x_waddr), db.wdata.eq(x_wdata)]
        # a START clears the reduction's carry and the queue in the next cycle (SETUP),
        # from a register
        clear = Signal()
        m.d.sync += clear.eq(0)
        m.d.comb += [red.clear.eq(clear), q.clear.eq(clear)]
        m.d.comb += pad_next.eq(padding)
        # rows_todo steps by the rows of each beat in its first cycle in S1 (the next
        # beat's check reads it in the next cycle)
        with m.If(fresh):
            m.d.sync += todo_step(s1_k)
        with m.FSM(name="job"):
            with m.State("IDLE"):
                m.d.comb += self.s_ready.eq(discard | flush)
                with m.If(self.s_valid & self.s_last):
                    with m.If(discard):         # an aborted frame ends first
                        m.d.sync += discard.eq(0)
                    with m.Else():
                        m.d.sync += flush.eq(0)
                with m.If(self.start):
                    m.next = "SETUP"       # (its registers: start_job below)
            with m.State("SETUP"):
                m.d.sync += [room.eq(Q), room_ok.eq(1), x_idx.eq(0)]
                m.d.sync += [x_beats.eq((N + (wx - 1)) >> wxb), rem_after.eq(E - L),
                             e_small.eq(E[kb:] == 0),
                             *todo_load(M), *count_rows(M),
                             chk_dim.eq((M == 0) | (N == 0) | (E == 0) | (E < M)),
                             chk_over.eq((M > cfg.max_rows) | (N > cfg.max_cols)
                                         | (E > cfg.max_nnz)),
                             n_lim.eq(Mux(N[cfg.col_bits:] != 0, 1 << cfg.col_bits,
                                          N[:cfg.col_bits]))]
                m.next = "CHECK"
            with m.State("CHECK"):
                # x_beats <= x_depth when the job passes (COLS <= MAX_COLS)
                m.d.sync += [x_rem.eq(x_beats), x_last.eq(x_beats == 1),
                             *count_entries(e_small, E[:kb]),
                             rem_small.eq(rem_after[kb:] == 0)]
                with m.If(chk_dim | chk_over):
                    fail(Mux(chk_dim, ERR["BAD_DIM"], ERR["OVER_LIMIT"]))
                    m.d.sync += flush.eq(1)
                    finish()
                with m.Else():
                    m.d.sync += emitting.eq(1)
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.s_ready.eq(1)
                m.d.sync += self.load_cycles.eq(self.load_cycles + 1)
                with m.If(discard):
                    with m.If(self.s_valid & self.s_last):
                        m.d.sync += discard.eq(0)
                with m.Elif(self.s_valid):
                    m.d.sync += x_we.eq(1)
                    m.d.sync += [x_idx.eq(x_idx + 1), x_rem.eq(x_rem - 1), x_last.eq(x_rem == 2)]
                    with m.If(self.s_last):
                        fail(ERR["SHORT_STREAM"])
                        m.next = "ABORT"
                    with m.Elif(x_last):
                        m.d.sync += acc_open.eq(1)
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [in_run.eq(1),
                             # (no beat after a TLAST: the frame is over, the job fails)
                             self.s_ready.eq(acc_open & s1_free & ~bad_q & room_ok
                                             & ~(s1_valid & s1_tlast))]
                # The entry counts step with every beat offered while the gather stage
                # takes one: a bad beat included, and a beat refused because an earlier
                # one failed (bad_q) or ended the frame: the job is over then and they go
                # unused. So their enable does not wait for the checks.
                with m.If(self.s_valid & acc_open & s1_free & room_ok):
                    # (rem_after - L < 2**kb while rem_after >= L; below L this beat's
                    # successor is the final one and the flag is not read again)
                    m.d.sync += [rem_after.eq(rem_after - L),
                                 rem_small.eq(rem_after < (1 << kb) + L),
                                 *count_entries(rem_small, rem_after[:kb])]
                    with m.If(final_in):
                        m.d.sync += acc_open.eq(0)
                with m.If(bad_q):
                    fail(bad_code_q)
                    # the rest of the frame is dropped unless its TLAST was taken: by the
                    # failed beat or by one taken behind it (now in S1)
                    m.d.sync += [acc_open.eq(0),
                                 discard.eq(~bad_last_q & ~(s1_valid & s1_tlast))]
                    m.next = "ABORT"
                with m.If(last_beat):
                    finish()
            with m.State("ABORT"):
                # Let the rows under way leave, then pad the result frame with zero rows.
                m.d.comb += self.s_ready.eq(discard)
                with m.If(discard & self.s_valid & self.s_last):
                    m.d.sync += discard.eq(0)
                with m.If(~pipe_busy_q):
                    m.d.sync += padding.eq(1)
                    m.d.comb += pad_next.eq(1)
                with m.If(last_beat):
                    finish()
        # IDLE's start writes its registers under start & ~busy (IDLE is ~busy: busy is set
        # leaving IDLE and cleared by finish, which returns there) rather than a decode of
        # the state: the counters' clear is then a LUT of three flip-flops
        start_job = Signal()
        m.d.comb += start_job.eq(self.start & ~self.busy)
        with m.If(start_job):
            m.d.sync += [M.eq(self.rows), N.eq(self.cols), E.eq(self.entries),
                         self.busy.eq(1), self.done.eq(0), self.error.eq(0),
                         err_code.eq(0), acc_open.eq(0), padding.eq(0), flush.eq(0),
                         m_small.eq(self.rows[mb:] == 0)]
            m.d.sync += [getattr(self, c).eq(0) for c in COUNTERS]
            m.d.sync += clear.eq(1)
        return m


class SparseTop(wiring.Component):
    """The sparse accelerator top: AXI4-Lite CSRs, AXI4-Stream in and out.

    Ports carry the AXI names (``aclk``, ``aresetn``, ``s_axil_*``, ``s_axis_*``,
    ``m_axis_*``), as :class:`~.top.GemmTop`'s do; ``aresetn`` is active low and
    synchronous.

    Parameters
    ----------
    config : SparseConfig
    own_domain : bool
        True (default): the top creates its clock domain from ``aclk``/``aresetn``.
        False: it uses the enclosing design's ``sync`` domain (simulation, board
        wrappers) and has no ``aclk``/``aresetn`` ports.
    """

    def __init__(self, config: SparseConfig, *, own_domain: bool = True):
        if not isinstance(config, SparseConfig):
            raise TypeError(f"SparseTop config must be a SparseConfig, not {config!r}")
        self._cfg = config
        self._own_domain = own_domain
        self._regmap = sparse_register_map(config)
        super().__init__(axi_top_members(self._regmap.addr_width, config.stream_bits,
                                         own_domain))

    @property
    def config(self) -> SparseConfig:
        return self._cfg

    @property
    def regmap(self):
        return self._regmap

    def elaborate(self, platform):
        m = Module()
        if self._own_domain:
            axi_top_domain(m, self)

        m.submodules.csr = csr = AXI4LiteCSR(self._regmap)
        soft_reset = Signal()
        m.submodules.core = core = ResetInserter(soft_reset)(SparseCore(self._cfg))

        connect_axil(m, self, csr.bus)

        ctrl = self._regmap["CTRL"]
        start_bit, reset_bit = ctrl.field("START").lsb, ctrl.field("SOFT_RESET").lsb
        status = self._regmap["STATUS"]
        m.d.comb += [
            soft_reset.eq(csr.wo_CTRL[reset_bit]),     # a register: see AXI4LiteCSR
            core.start.eq(csr.wo_CTRL[start_bit] & ~csr.wo_CTRL[reset_bit]),
            core.rows.eq(csr.rw_ROWS), core.cols.eq(csr.rw_COLS),
            core.entries.eq(csr.rw_ENTRIES),
            csr.ro_STATUS.eq(core.busy << status.field("BUSY").lsb
                             | core.done << status.field("DONE").lsb
                             | core.error << status.field("ERROR").lsb
                             | core.error_code << status.field("ERROR_CODE").lsb),
            csr.ro_JOBS.eq(core.jobs),
            core.s_data.eq(self.s_axis_tdata), core.s_last.eq(self.s_axis_tlast),
            core.s_valid.eq(self.s_axis_tvalid), self.s_axis_tready.eq(core.s_ready),
            self.m_axis_tdata.eq(core.m_data), self.m_axis_tlast.eq(core.m_last),
            self.m_axis_tvalid.eq(core.m_valid), core.m_ready.eq(self.m_axis_tready),
        ]
        for c in COUNTERS:
            m.d.comb += getattr(csr, f"cnt_{c.upper()}").eq(getattr(core, c))
        return m


def sparse_stream_formats(cfg: SparseConfig) -> dict:
    """Payload formats of the two streams (the manifest's ``streams``; the host packs by it)."""
    if not isinstance(cfg, SparseConfig):
        raise TypeError(f"sparse_stream_formats() needs a SparseConfig, not {cfg!r}")
    sb = cfg.stream_bits
    a = cfg.a.bits
    entry = {
        "fields": [
            {"name": "value", "lsb": 0, "bits": a, "element": cfg.a_dtype,
             "meaning": "A[i, j] (two's complement when signed)"},
            {"name": "col", "lsb": a, "bits": cfg.col_bits, "meaning": "column index j < COLS"},
            {"name": "last", "lsb": a + cfg.col_bits, "bits": 1,
             "meaning": "1 on the final entry of its row"},
            {"name": "empty", "lsb": a + cfg.col_bits + 1, "bits": 1,
             "meaning": "1: placeholder of an empty row (value and col ignored, last = 1)"},
        ],
        "entry_bits": cfg.entry_bits,
    }
    return {
        "s_axis": {
            "direction": "in", "tdata_bits": sb, "byte_order": "little-endian",
            "frame": "one frame per job: segment X then segment A, TLAST on the last beat",
            "segments": [
                {"name": "X", "word_bits": cfg.x_word_bits, "elements_per_word": cfg.dense_cols,
                 "element": cfg.x_dtype, "words": "COLS",
                 "words_per_beat": cfg.x_rows_per_beat, "beats": "ceil(COLS / words_per_beat)",
                 "word_contents": "word c holds X[c, p] at element p (columns past the job's "
                                  "are zero); word c at bits [(c % words_per_beat) * word_bits, "
                                  "...) of beat c // words_per_beat, unused words zero"},
                {"name": "A", "kind": "csr_entries", "entries": "ENTRIES",
                 "entries_per_beat": cfg.lanes, "slot_bits": cfg.slot_bits,
                 "beats": f"ceil(ENTRIES / {cfg.lanes})", "entry": entry,
                 "order": "CSR order: rows 0..ROWS-1, each row's nonzeros by any column order; "
                          "an empty row is one entry with empty = 1, last = 1",
                 "word_contents": "entry e at bits [(e % entries_per_beat) * slot_bits, ...) of "
                                  "beat e // entries_per_beat, unused slots and bits zero"},
            ],
        },
        "m_axis": {
            "direction": "out", "tdata_bits": sb, "byte_order": "little-endian",
            "frame": "one frame per job that passed its start checks (ROWS rows; rows a failed "
                     "job did not compute are zero), TLAST on the last beat",
            "row_order": "rows 0..ROWS-1 of Y = A . X",
            "row_format": {"lanes": cfg.dense_cols, "lane_bits": cfg.acc_bits,
                           "row_bits": cfg.row_bits, "element": f"int{cfg.acc_bits}",
                           "rows_per_beat": cfg.rows_per_beat,
                           "contents": "row i holds Y[i, p] at lane p, wrapped to acc_bits"},
            "packing": "rows_per_beat rows per beat, row r at bits [(r % rows_per_beat) * "
                       "row_bits, ...) of beat r // rows_per_beat; the final beat zero-padded",
        },
    }
