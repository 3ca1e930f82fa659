"""The dense GEMM core: C (+)= A . B for one job, from operand stream to result stream.

Blocks, in data order:

``Loader``
    A then B words from the input frame into two scratchpads; word counts form
    the scoreboard.
sequencer
    Walks the folds (one R x C output tile per fold in OS; one R x C weight tile
    per fold in WS) and issues one array step per cycle. A fold starts as soon as
    its operands are in the scratchpads, so loading overlaps compute.
``SystolicArray``
    Skew, PEs, de-skew; emits whole result rows with the tag of their step.
writer
    Read-modify-write of result rows into the accumulator memory (overwrite, or
    add onto what is there: K blocks in WS, the previous job with ACCUMULATE).
    Counts finished rows.
output engine
    Reads finished rows from the accumulator memory in order (a second read
    port), requantizes them if asked, and packs them into the output frame while
    the array computes the next tiles: draining overlaps compute.

Layouts (element order inside words is little-endian; see :mod:`.gearbox`):

* OS: A word ``i*K + k`` = ``A[i*R:(i+1)*R, k]``; B word ``j*K + k`` =
  ``B[k, j*C:(j+1)*C]``; folds ``(i, j)`` with ``j`` inner; accumulator row
  ``(i*nj + j)*R + r``; output rows: for each fold, its rows ``i*R + r < M``.
  Stream order: A words of tile 0, all B words, A words of tiles 1.. (fold (0, 0)
  starts after 2K words; B streams in while the first row of folds runs).
* OS with N:M sparsity: A word ``i*G + g`` holds ``A[i*R + r, g*M' + e]`` at element
  ``r*M' + e`` (``G = ceil(K/M')`` groups of M' consecutive k); B word ``j*K' + s``
  holds, for each column c, the ``s % N'``-th kept value of group ``s // N'`` and
  its position in the group (``K' = G*N'`` steps per fold).
* WS: A word ``kt*M + m`` = ``A[m, kt*R:(kt+1)*R]``; B word ``f*R + r`` =
  ``B[kt*R + r, jt*C:(jt+1)*C]`` for fold ``f = jt*nk + kt`` (``kt`` inner);
  accumulator row ``jt*M + m``; output rows in that order.

Padding past M, K, N is zero in the operands; padded result rows are not sent and
padded lanes are zero or junk the host ignores.
"""

from amaranth import Module, Signal, Mux, Cat, Const, signed, unsigned
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.utils import bits_for, ceil_log2

from .config import GemmConfig
from .array import SystolicArray
from .loader import Loader
from .gearbox import Packer
from .ram import PipelinedRAM
from .requant import Requantizer
from .pe import registered_multiplier
from .regs import GEMM_ERRORS

__all__ = ["GemmCore", "ERR", "SETUP_PRODUCTS", "SETUP_PRODUCT_LATENCY"]

ERR = {e.name: e.code for e in GEMM_ERRORS}

DIM_BITS = 16
OUT_FIFO_DEPTH = 16
#: Accumulator memory read latency: a fabric register after the block RAM's output register,
#: because its words go into the writer's adder and the requantizer's multipliers.
ACC_READ_LATENCY = 3
#: Writer: row register, memory read (ACC_READ_LATENCY), sum register, then the write.
WRITEBACK = ACC_READ_LATENCY + 2
#: Writer read-modify-write distance for the same accumulator row: the next read of a
#: row comes after the write of its previous sum has landed.
WS_MIN_FOLD = ACC_READ_LATENCY + 2
#: OS: least spacing of consecutive fold ends, whatever the array's drain needs (a 1x1
#: array needs one cycle). The sequencer's fold position steps a cycle after a fold end
#: (its enable is the fold end in a register) and its next-fold values are registers
#: computed from the position, valid a cycle after that: three cycles between fold ends.
OS_MIN_FOLD = 3
# OS fold order: blocks of this many tile rows (dense, N:M sparse), j inner, then the rows of
# the block. With N:M sparsity a fold consumes a B tile in fewer cycles than the tile takes to
# stream in; two rows per block use each B tile twice while the first tiles arrive.
BLOCK_ROWS = (1, 2)


def _div_const(y, d: int, ybits: int):
    """``floor(y / d)`` for an unsigned ``y`` of ``ybits`` bits and a constant ``d``, by
    multiplication with a reciprocal (checked exhaustively here) or a shift."""
    if d == 1:
        return y
    if d & (d - 1) == 0:
        return y >> (d.bit_length() - 1)
    s = ybits + ceil_log2(d)
    c = -(-(1 << s) // d)
    for v in range(1 << ybits):
        assert (v * c) >> s == v // d, (d, v)
    return (y * c) >> s


def _reciprocal(d: int, ybits: int) -> tuple:
    """``(c, s)`` with ``floor(y / d) == (y * c) >> s`` for every ``ybits``-bit ``y``, for a
    constant ``d`` that is not a power of two (as :func:`_div_const`)."""
    s = ybits + ceil_log2(d)
    return -(-(1 << s) // d), s


def _mul_const(x, c: int):
    """``x * c`` for a small non-negative constant ``c`` as a sum of shifted copies of
    ``x``: no ``$mul`` cell that synthesis could place on a DSP block."""
    terms = [x << i for i in range(c.bit_length()) if c >> i & 1]
    total = Const(0, 1)
    for t in terms:
        total = total + t
    return total


#: Cycles from the operands of a setup product to the product: the multiplier's operand
#: and product registers (a DSP block's, where the platform has one), then a fabric register.
SETUP_PRODUCT_LATENCY = 3

#: The parallel setup's products of two job values, per dataflow (each one multiplier).
SETUP_PRODUCTS = {"os": ("mn", "n_a", "nij", "out_rows", "n_b", "macs_lo", "macs_hi"),
                  "ws": ("mn", "n_a", "nij", "out_rows", "macs_lo", "macs_hi")}


def _count(m, counter):
    """``counter + 1`` into ``counter`` (call under the enable); returns the flags the
    counter's clear must clear too. From 32 bits up it steps in two halves, the upper
    one on a registered "lower half is all ones" flag: two carry chains of half the
    length, and the count is exact every cycle."""
    w = len(counter)
    if w < 32:
        m.d.sync += counter.eq(counter + 1)
        return []
    h = w // 2
    lo, hi = counter[:h], counter[h:]
    ones = Job(name=f"{counter.name}_lo_ones")
    m.d.sync += [lo.eq(lo + 1), ones.eq(lo == (1 << h) - 2)]
    with m.If(ones):
        m.d.sync += hi.eq(hi + 1)
    return [ones]


def Job(*args, **kwargs):
    """A register that takes no reset (see ``GemmCore.elaborate``)."""
    return Signal(*args, reset_less=True, src_loc_at=1, **kwargs)


def _setup_product(m, platform, name, a, b):
    """``a * b`` (unsigned) through :data:`SETUP_PRODUCT_LATENCY` registers: the platform's
    registered multiplier (see :func:`.pe.registered_multiplier`) or, without one, operand
    and product registers in the fabric. A job's setup reads it that many cycles after
    writing ``a`` and ``b``; no path runs through the multiplier in one cycle."""
    a_shape, b_shape = unsigned(len(a)), unsigned(len(b))
    p_shape = unsigned(len(a) + len(b))
    prod = Signal(p_shape, name=f"{name}_prod", reset_less=True)
    p = Signal(p_shape, name=f"{name}_p", reset_less=True)
    mul = registered_multiplier(platform, a_shape, b_shape, p_shape)
    if mul is None:
        a_r = Signal(a_shape, name=f"{name}_a", reset_less=True)
        b_r = Signal(b_shape, name=f"{name}_b", reset_less=True)
        m.d.sync += [a_r.eq(a), b_r.eq(b), prod.eq(a_r * b_r)]
    else:
        m.submodules[f"mul_{name}"] = mul
        m.d.comb += [mul.a.eq(a), mul.b.eq(b), mul.a_en.eq(1), mul.b_en.eq(1), prod.eq(mul.p)]
    m.d.sync += p.eq(prod)
    return p


class GemmCore(wiring.Component):
    """One-job GEMM engine with plain (non-AXI-named) ports.

    Parameters
    ----------
    config : GemmConfig

    Members
    -------
    start : In(1)
        Pulse: start a job with the current ``m``, ``k``, ``n``, ``mode``, ``rq_*``.
    m, k, n : In(16)
    mode : In(4)
        Bits: ACCUMULATE, REQUANT, RELU, NO_OUTPUT.
    rq_mult : In(16), rq_shift : In(6)
    hard_reset : In(1)
        The enclosing domain's own reset, without the soft reset a ``ResetInserter``
        adds: it clears the counters, which a soft reset leaves (they restart at START).
    busy, done, error : Out(1)
    error_code : Out(8)
    job_cycles, compute_cycles, in_stall_cycles, out_stall_cycles, macs : Out(counter_bits)
        Counters of the last job (``config.counter_bits`` wide, 64 by default; they wrap).
    jobs : Out(min(32, counter_bits))
    s_data, s_last, s_valid, s_ready : operand stream (slave)
    m_data, m_last, m_valid, m_ready : result stream (master)
    """

    def __init__(self, config: GemmConfig):
        if not isinstance(config, GemmConfig):
            raise TypeError(f"GemmCore config must be a GemmConfig, not {config!r}")
        self._cfg = config
        sb = config.stream_bits
        cb = config.counter_bits
        super().__init__({
            "start": In(1), "m": In(DIM_BITS), "k": In(DIM_BITS), "n": In(DIM_BITS),
            "mode": In(4), "rq_mult": In(16), "rq_shift": In(6), "hard_reset": In(1),
            "busy": Out(1), "done": Out(1), "error": Out(1), "error_code": Out(8),
            "job_cycles": Out(cb), "compute_cycles": Out(cb), "in_stall_cycles": Out(cb),
            "out_stall_cycles": Out(cb), "macs": Out(cb), "jobs": Out(min(32, cb)),
            "s_data": In(sb), "s_last": In(1), "s_valid": In(1), "s_ready": Out(1),
            "m_data": Out(sb), "m_last": Out(1), "m_valid": Out(1), "m_ready": In(1),
        })

    @property
    def config(self) -> GemmConfig:
        return self._cfg

    def elaborate(self, platform):
        cfg = self._cfg
        R, C = cfg.rows, cfg.cols
        os_ = cfg.dataflow == "os"
        m = Module()

        a_shape = signed(cfg.a.bits) if cfg.a.signed else unsigned(cfg.a.bits)
        b_shape = signed(cfg.b.bits) if cfg.b.signed else unsigned(cfg.b.bits)
        a_aw = max(1, bits_for(cfg.a_depth - 1))
        b_aw = max(1, bits_for(cfg.b_depth - 1))
        c_aw = max(1, bits_for(cfg.acc_depth - 1))
        wide_bits = 33           # setup word counts: products of two 16-bit dims, plus headroom
        # Counts and pointers past CHECK: a job that passed it fits the memories, and the
        # sequencer's "words needed" run at most a few tiles past a count; two bits of
        # headroom over the deepest memory. (Narrow carry chains and compares.)
        cnt_bits = max(bits_for(d) for d in (cfg.a_depth, cfg.b_depth, cfg.acc_depth)) + 2
        row_bits = cfg.acc_word_bits

        # -- memories ------------------------------------------------------------------
        # reads: address in cycle t, word in t + 2 (the second register is the block RAM's
        # output register where the platform offers one; see .ram)
        m.submodules.a_spad = a_spad = PipelinedRAM(cfg.a_word_bits, cfg.a_depth)
        m.submodules.b_spad = b_spad = PipelinedRAM(cfg.b_word_bits, cfg.b_depth)
        # two read ports: the writer's read-modify-write and the output engine. Its words
        # go into the writer's adder and the requantizer's multipliers, so they take one
        # more register after the block RAM's output register (latency 3).
        m.submodules.acc_mem = acc_mem = PipelinedRAM(row_bits, cfg.acc_depth, read_ports=2,
                                                      latency=ACC_READ_LATENCY)

        # -- job registers and setup ---------------------------------------------------
        # Job values, and the sequencer's and output engine's positions, are written in
        # setup or at CHECK before anything reads them: they take no reset, so that a soft
        # reset fans out only to the control flags (``Job`` is a reset-less Signal).
        M = Job(DIM_BITS); K = Job(DIM_BITS); N = Job(DIM_BITS)
        sp_n, sp_m = cfg.nm
        P_os = BLOCK_ROWS[sp_n != sp_m]
        groups = Job(DIM_BITS)        # OS: A words per tile (K, or ceil(K/M) groups)
        steps = Job(DIM_BITS)         # OS: array steps per fold (K, or groups * N)
        mode = Job(4); mult = Job(16); shift = Job(6)
        mode_acc, mode_rq, mode_relu, mode_noout = mode[0], mode[1], mode[2], mode[3]
        # Without a requantization unit a REQUANT job fails at CHECK and never reaches the
        # output engine: a constant there lets synthesis drop the unit's multipliers.
        rq_asked = mode[1]
        if not cfg.requant:
            mode_rq = Const(0)
        ni = Job(DIM_BITS); nj = Job(DIM_BITS); nk = Job(DIM_BITS)
        n_a = Job(wide_bits); n_b = Job(wide_bits); n_c = Job(wide_bits)
        macs_job = Job(48); n_a1 = Job(cnt_bits)
        # setup pipeline: the adds of the ceil divisions, then the divisions, then products
        y_m = Job(DIM_BITS + 1); y_n = Job(DIM_BITS + 1); y_kr = Job(DIM_BITS + 1)
        y_kg = Job(DIM_BITS + 1)
        # values the sequencer and output engine compare against, registered per job
        ni_m1 = Job(DIM_BITS); nj_m1 = Job(DIM_BITS); nk_m1 = Job(DIM_BITS)
        # nj_m1 == 0 in a register (nj_m1 is written in setup, read from CHECK on)
        nj_one = Job()
        m.d.sync += nj_one.eq(nj_m1 == 0)
        steps_m1 = Job(DIM_BITS); gap_min = Job(8); out_rows_m1 = Job(cnt_bits)
        steps_one = Job()             # steps == 1
        # CHECK's conditions, registered in setup (SETUP0, SETUP5, SETUP6)
        bad_dim = Job(); a_ovf = Job(); b_ovf = Job(); c_ovf = Job()
        unsupported = Job()
        n_folds_m1 = Job(cnt_bits); fold_last = Job(DIM_BITS + 1); m_m1 = Job(DIM_BITS)

        m.submodules.loader = loader = Loader(
            stream_bits=cfg.stream_bits, a_word_bits=cfg.a_word_bits, b_word_bits=cfg.b_word_bits,
            a_addr_bits=a_aw, b_addr_bits=b_aw, count_bits=cnt_bits)
        m.d.comb += [
            loader.s_data.eq(self.s_data), loader.s_last.eq(self.s_last),
            loader.s_valid.eq(self.s_valid), self.s_ready.eq(loader.s_ready),
            loader.n_a.eq(n_a), loader.n_b.eq(n_b),
            # OS: A's first tile, then B, then the other A tiles; WS: all of A, then B
            loader.n_a1.eq(n_a1),
            a_spad.w_addr.eq(loader.a_addr), a_spad.w_data.eq(loader.a_data),
            a_spad.w_en.eq(loader.a_we),
            b_spad.w_addr.eq(loader.b_addr), b_spad.w_data.eq(loader.b_data),
            b_spad.w_en.eq(loader.b_we),
        ]

        tag_layout = data.StructLayout({"addr": unsigned(c_aw), "acc": 1, "final": 1, "end": 1})
        m.submodules.array = array = SystolicArray(
            rows=R, cols=C, a_shape=a_shape, b_shape=b_shape, acc_bits=cfg.acc_bits,
            dataflow=cfg.dataflow, tag_shape=tag_layout, group=sp_m)

        running = Signal()        # sequencer/writer/output may act
        aborting = Signal()
        abort_cycles = array.latency + R + 16
        # (both set at an abort and read only in ABORT: no reset) abort_wait ==
        # abort_cycles, a cycle late
        abort_wait = Signal(range(abort_cycles + 1), reset_less=True)
        drained_r = Signal(reset_less=True)
        m.d.sync += drained_r.eq(abort_wait == abort_cycles)
        seq_done = Signal()       # all steps issued
        # (span, span_done and out_started are cleared at START and read only in a running
        # job, or under busy: no reset)
        span = Job()              # compute span: first step issued .. last row written
        span_done = Job()
        seq_stall = Signal()      # sequencer waiting for operands
        err_code = Signal(8)

        loaded_all = Signal()
        m.d.comb += loaded_all.eq((loader.a_count == n_a[:cnt_bits])
                                  & (loader.b_count == n_b[:cnt_bits]))

        # -- sequencer -----------------------------------------------------------------
        step_valid = Signal()
        step_ctl = Signal(array.a.ctl.shape())
        step_tag = Signal(tag_layout)
        step_load = Signal()
        step_row = Signal(array.b.row.shape())
        any_issue = Signal()
        # Operands leave the scratchpads one cycle after the address and are registered
        # once more (block RAM output register); control and tag are delayed to match.
        ctl_q = Signal.like(step_ctl); tag_q = Signal(step_tag.shape(), reset_less=True)
        load_q = Signal(); row_q = Signal(step_row.shape(), reset_less=True)
        # (the tag's second register is reset-less too: the array reads it under the ctl's
        # valid flag)
        tag_r = Signal(step_tag.shape(), reset_less=True)
        m.d.sync += [ctl_q.eq(step_ctl), tag_q.eq(step_tag), load_q.eq(step_load),
                     row_q.eq(step_row),
                     array.a.ctl.eq(ctl_q), tag_r.eq(tag_q), array.b.load.eq(load_q),
                     array.b.row.eq(row_q)]
        m.d.comb += array.tag.eq(tag_r)
        m.d.comb += [array.a.data.as_value().eq(a_spad.r_data[0]),
                     array.b.data.as_value().eq(b_spad.r_data[0])]

        gate = loaded_all if not cfg.double_buffer else Const(1)

        # least spacing of fold ends (last steps): the array's drain and the sequencer's
        S = max(array.min_fold_cycles, OS_MIN_FOLD if os_ else WS_MIN_FOLD)
        if os_:
            P = P_os
            # fold position: block of P tile rows starting at ib, row tt in it, column j
            ib = Job(DIM_BITS); tt = Job(range(max(2, P))); j_idx = Job(DIM_BITS)
            # ib + P and a_blk + gP, kept in registers (no adder behind the block branch)
            ib_n = Job(DIM_BITS); a_blk_n = Job(cnt_bits)
            i_idx = Job(DIM_BITS)
            # step position in the fold: step kk, slot ss of the group
            kk = Job(DIM_BITS); ss = Job(range(max(2, sp_n)))
            # scratchpad bases of the fold (a_blk: of the block), the words it needs, and the
            # address pointers of the next step (between folds: the next fold's bases)
            a_base = Job(cnt_bits); a_blk = Job(cnt_bits); b_base = Job(cnt_bits)
            a_need = Job(cnt_bits); b_need = Job(cnt_bits)
            # their values of the next cycle, and "the operands are in" kept in a register:
            # compared with the loader's next-cycle counts (off the issue path)
            a_need_d = Signal(cnt_bits); b_need_d = Signal(cnt_bits); data_ok_r = Job()
            # the words the next fold can need, kept in registers for each branch of the
            # fold order: a_need + groups (next row), a_blk + groups (next column), a_blk +
            # groups * (P + 1) (next block), b_need + steps; gP = groups * P
            a_need_row = Job(cnt_bits); a_blk_g1 = Job(cnt_bits)
            a_blk_gP1 = Job(cnt_bits); b_need_row = Job(cnt_bits); gP = Job(cnt_bits)
            # a_need and b_need at the next fold end, picked by the branch it will take
            # (from the position, like br_row/br_blk, so valid when they are): "the operands
            # are in" is then two compares of registers for a fold end, two for a hold
            a_need_nx = Job(cnt_bits); b_need_nx = Job(cnt_bits)
            ok_hold, ok_nx, ok_d = (Signal(name=f"ok_{n}") for n in ("hold", "nx", "d"))
            # ni - 2, ni - 1 - P, nj - 2 and steps - 2 (negative: never equal to an index),
            # so the "at last" flags of the next index are compares without an add
            ni_m2 = Job(DIM_BITS + 1); ni_m1_mP = Job(DIM_BITS + 2)
            nj_m2 = Job(DIM_BITS + 1); steps_m2 = Job(DIM_BITS + 1)
            a_ptr = Job(cnt_bits); b_ptr = Job(cnt_bits)
            c_base = Job(c_aw + 1)
            # idle cycles still owed before the next fold may start (a down-counter from
            # gap_min at a fold end, resting at 0), and "none owed" in a register
            gap_left = Job(8)
            gap_ok_r = Job()      # gap_left == 0, kept in a register (off the issue path)
            # i_idx == ni_m1 and j_idx == nj_m1, kept in registers likewise
            i_at_last = Job(); j_at_last = Job()
            # The next fold's position, computed into registers from this fold's (each is
            # valid the cycle after the position changes, which is the cycle after a fold
            # end, and fold ends are at least OS_MIN_FOLD cycles apart): the fold end then
            # only selects among registers. br_row / br_blk: which branch of the fold order
            # the next fold end takes (else the next column).
            br_row = Job(); br_blk = Job()
            eq_i_row = Job(); eq_i_blk = Job(); eq_i_col = Job(); eq_j_col = Job()
            nx_tt = Job(range(max(2, P))); nx_i = Job(DIM_BITS); nx_j = Job(DIM_BITS)
            nx_ib_n = Job(DIM_BITS); nx_a_blk_n = Job(cnt_bits); nx_a_blk_gP1 = Job(cnt_bits)
            nx_a_base = Job(cnt_bits); nx_a_need_row = Job(cnt_bits)
            nx_blk_need_row = Job(cnt_bits); nx_col_need_row = Job(cnt_bits)
            nx_b_base = Job(cnt_bits); nx_b_need_row = Job(cnt_bits); steps_x2 = Job(cnt_bits)
            nx_c_base = Job(c_aw + 1)
            row_next = ~((tt == P - 1) | i_at_last)
            m.d.sync += [
                br_row.eq(row_next),
                br_blk.eq(~row_next & j_at_last),
                a_need_nx.eq(Mux(row_next, a_need_row, Mux(j_at_last, a_blk_gP1, a_blk_g1))),
                b_need_nx.eq(Mux(row_next, b_need, Mux(j_at_last, steps, b_need_row))),
                eq_i_row.eq(i_idx == ni_m2), eq_i_blk.eq(ib == ni_m1_mP),
                eq_i_col.eq(ib == ni_m1), eq_j_col.eq(j_idx == nj_m2),
                nx_tt.eq(tt + 1), nx_i.eq(i_idx + 1), nx_j.eq(j_idx + 1),
                nx_ib_n.eq(ib_n + P), nx_a_blk_n.eq(a_blk_n + gP),
                nx_a_blk_gP1.eq(a_blk_gP1 + gP), nx_a_base.eq(a_base + groups),
                nx_a_need_row.eq(a_need_row + groups), nx_blk_need_row.eq(a_blk_gP1 + groups),
                nx_col_need_row.eq(a_blk_g1 + groups), nx_b_base.eq(b_base + steps),
                nx_b_need_row.eq(b_need_row + steps), steps_x2.eq(steps + steps),
                nx_c_base.eq(c_base + R),
            ]
            waiting = Signal(); stepping = Signal()
            # stepping & (kk == steps_m1), waiting & gap_ok_r, and that & steps_one, kept in
            # registers: the fold end (the last step issues) is then st_last | (wg1 &
            # data_ok_r), three flip-flops
            st_last = Signal(); wg = Signal(); wg1 = Signal(); fold_end = Signal()
            data_ok = Signal(); go = Signal(); issuing = Signal()
            # The control flags above take their own copy of "the operands are in", kept
            # inverted (so that synthesis keeps two flip-flops): data_ok_r's fan-out is the
            # pointers, step counters and needs; this one's is five flags.
            data_nok_k = Signal(init=1); dk = Signal(); fold_end_k = Signal(); issuing_k = Signal()
            # The fold position (tt, i, j, ib, bases, needs of the next folds) steps the cycle
            # after a fold end, enabled by this register rather than by the operands' arrival
            pos_en = Signal()
            # this fold is the job's last (its steps' tag end), loaded at each fold end from
            # the next position's flags
            last_fold = Job(); is_last = Signal()
            # A fold is `steps` array steps: K when dense; with N:M, N kept slots per group
            # of M k, the N steps of a group reading the same A word.
            m.d.comb += [
                # the fold's last step lands >= S cycles after the previous fold's
                data_ok.eq(data_ok_r),
                dk.eq(~data_nok_k),
                a_need_d.eq(a_need), b_need_d.eq(b_need),
                ok_d.eq(ok_hold),
                # (waiting implies running: it is set at CHECK and cleared by the last
                # fold, a stream error's abort and a reset)
                go.eq(wg & data_ok),
                seq_stall.eq(wg & ~data_ok),
                issuing.eq(go | stepping),
                issuing_k.eq((wg & dk) | stepping),
                # a fold's first step is its last when it has one step; a later one, st_last
                is_last.eq(Mux(stepping, st_last, steps_one)),
                # = issuing & is_last (waiting and stepping are never both set)
                fold_end.eq(st_last | (wg1 & data_ok_r)),
                fold_end_k.eq(st_last | (wg1 & dk)),
                # (between folds kk and ss hold their first step's values and the
                # pointers the next fold's bases: the scratchpad addresses are flip-flops)
                a_spad.r_addr[0].eq(a_ptr),
                b_spad.r_addr[0].eq(b_ptr),
            ]
            # the step's tag whether or not a step issues (the array reads it under the
            # step's valid flag): no reset or enable on the tag registers
            m.d.comb += [step_tag.addr.eq(c_base), step_tag.acc.eq(mode_acc),
                         step_tag.final.eq(1), step_tag.end.eq(last_fold)]
            with m.If(issuing):
                m.d.comb += [
                    any_issue.eq(1),
                    step_ctl.valid.eq(1), step_ctl.first.eq(~stepping), step_ctl.last.eq(is_last),
                ]
            # The control flags (on their copy of the operands' flag): the fold end, a step,
            # or the gap before a short fold counting down
            with m.If(fold_end_k):
                m.d.sync += [stepping.eq(0), st_last.eq(0), waiting.eq(~last_fold),
                             wg.eq(~last_fold & (gap_min == 0)),
                             wg1.eq(~last_fold & (gap_min == 0) & steps_one)]
            with m.Elif(issuing_k):
                m.d.sync += [stepping.eq(1), waiting.eq(0), wg.eq(0), wg1.eq(0),
                             st_last.eq(kk == steps_m2)]
            with m.Elif(gap_left != 0):
                m.d.sync += [wg.eq(waiting & (gap_left[1:] == 0)),
                             wg1.eq(waiting & steps_one & (gap_left[1:] == 0))]
            # The step position and the next fold's pointers, needs and tag: the next
            # fold may issue the cycle after a fold end. (Their data come from registers
            # picked by registers; the fold end is only their enable.)
            with m.If(fold_end):
                m.d.sync += [gap_left.eq(gap_min), gap_ok_r.eq(gap_min == 0), kk.eq(0),
                             ss.eq(0), c_base.eq(nx_c_base),
                             last_fold.eq(Mux(br_row, eq_i_row & j_at_last,
                                              Mux(br_blk, eq_i_blk & nj_one,
                                                  eq_i_col & eq_j_col)))]
                m.d.comb += [a_need_d.eq(a_need_nx), b_need_d.eq(b_need_nx), ok_d.eq(ok_nx)]
                with m.If(last_fold):
                    m.d.sync += seq_done.eq(1)
                with m.If(br_row):
                    m.d.sync += [a_ptr.eq(nx_a_base), b_ptr.eq(b_base)]
                with m.Elif(br_blk):
                    m.d.sync += [a_ptr.eq(a_blk_n), b_ptr.eq(0)]
                with m.Else():
                    m.d.sync += [a_ptr.eq(a_blk), b_ptr.eq(nx_b_base)]
            with m.Elif(issuing):
                m.d.sync += [kk.eq(kk + 1), b_ptr.eq(b_ptr + 1)]
                if sp_n == 1:
                    m.d.sync += a_ptr.eq(a_ptr + 1)
                else:
                    with m.If(ss == sp_n - 1):
                        m.d.sync += [ss.eq(0), a_ptr.eq(a_ptr + 1)]
                    with m.Else():
                        m.d.sync += ss.eq(ss + 1)
            with m.Else():
                with m.If(gap_left != 0):
                    m.d.sync += [gap_left.eq(gap_left - 1), gap_ok_r.eq(gap_left[1:] == 0)]
            # The fold position, the cycle after the fold end (br_row/br_blk and the nx_
            # values still describe the fold that ended): fold order, blocks of P tile rows;
            # within a block j, then the row. After the last fold the position steps on too
            # (nothing reads it until the next job's CHECK sets it).
            m.d.sync += pos_en.eq(fold_end)
            with m.If(pos_en):
                with m.If(br_row):
                    m.d.sync += [tt.eq(nx_tt), i_idx.eq(nx_i), i_at_last.eq(eq_i_row),
                                 a_base.eq(nx_a_base), a_need_row.eq(nx_a_need_row)]
                with m.Elif(br_blk):
                    m.d.sync += [tt.eq(0), j_idx.eq(0), j_at_last.eq(nj_one),
                                 ib.eq(ib_n), i_idx.eq(ib_n), ib_n.eq(nx_ib_n),
                                 i_at_last.eq(eq_i_blk),
                                 a_blk.eq(a_blk_n), a_blk_n.eq(nx_a_blk_n),
                                 a_base.eq(a_blk_n), b_base.eq(0),
                                 a_need_row.eq(nx_blk_need_row),
                                 a_blk_g1.eq(a_blk_gP1), a_blk_gP1.eq(nx_a_blk_gP1),
                                 b_need_row.eq(steps_x2)]
                with m.Else():
                    m.d.sync += [tt.eq(0), j_idx.eq(nx_j), j_at_last.eq(eq_j_col),
                                 i_idx.eq(ib), i_at_last.eq(eq_i_col),
                                 a_base.eq(a_blk), b_base.eq(nx_b_base),
                                 a_need_row.eq(nx_col_need_row),
                                 b_need_row.eq(nx_b_need_row)]
            # (the loader's published counts of the next cycle are its own counts of this one)
            gate_d = Const(1) if cfg.double_buffer else \
                ((loader.a_count_next == n_a[:cnt_bits]) & (loader.b_count_next == n_b[:cnt_bits]))
            a_n, b_n = loader.a_count_next, loader.b_count_next
            m.d.comb += [ok_hold.eq((a_n >= a_need) & (b_n >= b_need)),
                         ok_nx.eq((a_n >= a_need_nx) & (b_n >= b_need_nx))]
            m.d.sync += [a_need.eq(a_need_d), b_need.eq(b_need_d), data_ok_r.eq(ok_d & gate_d),
                         data_nok_k.eq(~(ok_d & gate_d))]

            def seq_reset():
                m.d.sync += [ib.eq(0), tt.eq(0), i_idx.eq(0), a_blk.eq(0), j_idx.eq(0), kk.eq(0),
                             ib_n.eq(P), a_blk_n.eq(groups * P),
                             ss.eq(0), i_at_last.eq(ni_m1 == 0), j_at_last.eq(nj_m1 == 0),
                             a_base.eq(0), b_base.eq(0), a_need.eq(groups), b_need.eq(steps),
                             a_ptr.eq(0), b_ptr.eq(0),
                             data_ok_r.eq(0), data_nok_k.eq(1),   # no word of this job is in yet
                             last_fold.eq((ni_m1 == 0) & (nj_m1 == 0)), pos_en.eq(0),
                             a_need_row.eq(groups * 2), a_blk_g1.eq(groups),
                             a_blk_gP1.eq(groups * (P + 1)), b_need_row.eq(steps * 2),
                             gP.eq(groups * P),
                             ni_m2.eq(ni_m1 - 1), ni_m1_mP.eq(ni_m1 - P), nj_m2.eq(nj_m1 - 1),
                             steps_m2.eq(steps_m1 - 1),
                             c_base.eq(0), gap_left.eq(0), gap_ok_r.eq(1), waiting.eq(1),
                             wg.eq(1), wg1.eq(steps_one), stepping.eq(0), st_last.eq(0),
                             seq_done.eq(0)]
            seq_abort_sigs = [waiting, stepping, st_last, wg, wg1]
        else:
            jt = Job(DIM_BITS); kt = Job(DIM_BITS); f_idx = Job(cnt_bits)
            a_base = Job(cnt_bits); c_base = Job(c_aw + 1); wb_base = Job(cnt_bits)
            a_need = Job(cnt_bits); wb_need = Job(cnt_bits)
            a_ptr = Job(cnt_bits); wb_ptr = Job(cnt_bits); c_ptr = Job(c_aw + 1)
            t = Job(DIM_BITS + 1)
            preloading = Signal(); waiting = Signal(); in_fold = Signal()
            pre_ok = Signal(); data_ok = Signal(); go = Signal()
            t_cur = Signal(DIM_BITS + 1)
            cur_a = Signal(cnt_bits); cur_wb = Signal(cnt_bits); cur_c = Signal(c_aw + 1)
            has_next = Signal(); last_fold = Signal(); a_step = Signal(); w_step = Signal()
            m.d.comb += [
                has_next.eq(f_idx != n_folds_m1),
                last_fold.eq(~has_next),
                pre_ok.eq((loader.b_count >= R) & gate),
                data_ok.eq((loader.a_count >= a_need) & (~has_next | (loader.b_count >= wb_need))
                           & gate),
                go.eq(running & waiting & data_ok),
                seq_stall.eq(running & ((preloading & ~pre_ok) | (waiting & ~data_ok))),
                t_cur.eq(Mux(in_fold, t, 0)),
                cur_a.eq(Mux(in_fold, a_ptr, a_base)),
                cur_wb.eq(Mux(in_fold, wb_ptr, wb_base)),
                cur_c.eq(Mux(in_fold, c_ptr, c_base)),
                a_step.eq(t_cur <= m_m1),
                w_step.eq((t_cur < R) & has_next),
            ]
            # weight preload of fold 0
            pre_r = Job(range(max(2, R)))
            with m.If(running & preloading & pre_ok):
                m.d.comb += [any_issue.eq(1), b_spad.r_addr[0].eq(pre_r), step_load.eq(1),
                             step_row.eq(pre_r)]
                with m.If(pre_r == R - 1):
                    m.d.sync += [preloading.eq(0), waiting.eq(1), pre_r.eq(0)]
                with m.Else():
                    m.d.sync += pre_r.eq(pre_r + 1)
            with m.If(go | in_fold):
                m.d.comb += any_issue.eq(1)
                with m.If(a_step):
                    m.d.comb += [
                        a_spad.r_addr[0].eq(cur_a),
                        step_ctl.valid.eq(1), step_ctl.swap.eq(~in_fold),
                        step_tag.addr.eq(cur_c),
                        step_tag.acc.eq(mode_acc | (kt != 0)),
                        step_tag.final.eq(kt == nk_m1),
                        step_tag.end.eq(last_fold & (t_cur == m_m1)),
                    ]
                with m.If(w_step):
                    m.d.comb += [b_spad.r_addr[0].eq(cur_wb), step_load.eq(1), step_row.eq(t_cur)]
                m.d.sync += [a_ptr.eq(cur_a + 1), wb_ptr.eq(cur_wb + 1), c_ptr.eq(cur_c + 1)]
                with m.If(t_cur == fold_last):
                    m.d.sync += [in_fold.eq(0), t.eq(0), f_idx.eq(f_idx + 1),
                                 wb_base.eq(wb_base + R), wb_need.eq(wb_need + R)]
                    with m.If(last_fold):
                        m.d.sync += [waiting.eq(0), seq_done.eq(1)]
                    with m.Else():
                        m.d.sync += waiting.eq(1)
                        with m.If(kt == nk_m1):
                            m.d.sync += [kt.eq(0), a_base.eq(0), a_need.eq(M), jt.eq(jt + 1),
                                         c_base.eq(c_base + M)]
                        with m.Else():
                            m.d.sync += [kt.eq(kt + 1), a_base.eq(a_base + M),
                                         a_need.eq(a_need + M)]
                with m.Else():
                    m.d.sync += [in_fold.eq(1), waiting.eq(0), t.eq(t_cur + 1)]

            def seq_reset():
                m.d.sync += [jt.eq(0), kt.eq(0), f_idx.eq(0), a_base.eq(0), c_base.eq(0),
                             wb_base.eq(R), a_need.eq(M), wb_need.eq(2 * R), t.eq(0),
                             preloading.eq(1), waiting.eq(0), in_fold.eq(0), pre_r.eq(0),
                             seq_done.eq(0)]
            seq_abort_sigs = [preloading, waiting, in_fold]

        # -- writer: read-modify-write into the accumulator memory ---------------------
        # array row -> registered (address) -> memory read (ACC_READ_LATENCY cycles, the
        # row delayed alongside) -> registered sum -> memory write. The same row is
        # rewritten at least WS_MIN_FOLD cycles later (folds are at least that long), after
        # this write has landed.
        # Only the valid flags and the finished-row flags they qualify take a reset; rows,
        # addresses and tags are data read under them (no soft-reset fanout to them).
        acc_row = data.ArrayLayout(signed(cfg.acc_bits), C)
        w_valid = Signal(); w_addr = Signal(c_aw, reset_less=True)
        w_acc = Signal(reset_less=True); w_final = Signal(reset_less=True)
        w_end = Signal(reset_less=True); w_row = Signal(row_bits, reset_less=True)
        s_valid = Signal(); s_addr = Signal(c_aw, reset_less=True); s_final = Signal()
        s_end = Signal(); s_sum = Signal(row_bits, reset_less=True)
        final_count = Job(c_aw + 1)        # finished rows (their last write done)
        o_end = array.o_tag.end & ((array.o_row == R - 1) if os_ else 1)
        m.d.sync += [
            w_valid.eq(array.o_valid & running),
            w_addr.eq(array.o_tag.addr + (array.o_row if os_ else 0)),
            w_acc.eq(array.o_tag.acc), w_final.eq(array.o_tag.final), w_end.eq(o_end),
            w_row.eq(array.o_data.as_value()),
        ]
        # the row and its tag, delayed by the memory's read latency
        y_valid, y_addr, y_acc, y_final, y_end, y_row = w_valid, w_addr, w_acc, w_final, w_end, w_row
        for stage in range(ACC_READ_LATENCY):
            nxt = [Signal(sig.shape(), name=f"{name}_d{stage + 1}", reset_less=sig is not y_valid)
                   for sig, name in
                   zip((y_valid, y_addr, y_acc, y_final, y_end, y_row),
                       ("y_valid", "y_addr", "y_acc", "y_final", "y_end", "y_row"))]
            m.d.sync += [n.eq(o) for n, o in zip(nxt, (y_valid, y_addr, y_acc, y_final, y_end,
                                                      y_row))]
            y_valid, y_addr, y_acc, y_final, y_end, y_row = nxt
        y_old = Signal(row_bits)
        m.d.comb += [acc_mem.r_addr[0].eq(w_addr), y_old.eq(acc_mem.r_data[0])]
        old = data.View(acc_row, y_old)
        new = data.View(acc_row, y_row)
        lanes = []
        for c in range(C):
            lane = Signal(signed(cfg.acc_bits), name=f"sum{c}")
            m.d.comb += lane.eq(Mux(y_acc, old[c] + new[c], new[c]))
            lanes.append(lane)
        m.d.sync += [s_valid.eq(y_valid), s_addr.eq(y_addr), s_final.eq(y_final & y_valid),
                     s_end.eq(y_end & y_valid), s_sum.eq(Cat(*lanes))]
        m.d.comb += [acc_mem.w_addr.eq(s_addr), acc_mem.w_data.eq(s_sum),
                     acc_mem.w_en.eq(s_valid)]
        with m.If(s_final):
            m.d.sync += final_count.eq(final_count + 1)

        # -- output engine ---------------------------------------------------------------
        m.submodules.requant = rq = Requantizer(C, cfg.acc_bits)
        m.submodules.out_fifo = fifo = SyncFIFOBuffered(width=row_bits + 1, depth=OUT_FIFO_DEPTH)
        out_formats = [row_bits, C * 8]
        sk_valid = Signal(); sk_data = Job(cfg.stream_bits); sk_last = Job()
        # the skid register between the FIFO and the packer: a row read from the FIFO that
        # the packer did not take waits here
        pk_valid = Signal(); pk_data = Job(row_bits + 1); pk_in = Signal(row_bits + 1)
        m.d.comb += pk_in.eq(Mux(pk_valid, pk_data, fifo.r_data))
        m.submodules.packer = packer = Packer(cfg.stream_bits, out_formats)

        out_active = Signal(); out_started = Job(); flushing = Signal()
        out_addr = Job(c_aw + 1); out_r = Job(range(max(2, R))); out_j = Job(DIM_BITS)
        out_ibase = Job(DIM_BITS + 8); out_sent = Job(cnt_bits)
        out_i = Job(DIM_BITS); out_ib = Job(DIM_BITS); out_t = Job(range(max(2, P_os)))
        out_blk = Job(DIM_BITS + 8)      # out_ib * R
        out_abs = Job(DIM_BITS + 8)      # out_ibase + out_r, kept in a register (R < 3)
        out_rel = Job(signed(DIM_BITS + 10))   # out_abs - (M - 1) (R >= 3)
        row_ok_r = Job()                 # out_abs < M, kept in a register likewise
        out_i_last = Job(); out_j_last = Job()    # out_i == ni_m1, out_j == nj_m1, too
        sent_last = Job()                   # out_sent == out_rows_m1, too
        out_rows_m2 = Job(cnt_bits + 1)     # out_rows - 2 (negative: never equal to a count)
        # M - R and M - P_os * R (negative: no row index is below them), so that the next
        # tile row's or block's "first row is inside M" is a compare of registers
        m_mR = Job(signed(DIM_BITS + 10)); m_mPR = Job(signed(DIM_BITS + 10))
        out_blk_n = Job(DIM_BITS + 8)       # out_blk + P_os * R
        out_ib_n = Job(DIM_BITS)            # out_ib + P_os
        blk_n_ok = Job()                    # out_blk_n < M
        inflight = Signal(range(OUT_FIFO_DEPTH + 8))
        row_ok = Signal(); ready_row = Signal(); credit_ok = Signal(); out_issue = Signal()
        out_gate = span_done if not cfg.double_buffer else Const(1)
        advance = Signal()
        # final_count > out_addr, kept in a register: ``ahead`` = final_count - out_addr (it
        # goes negative past padding rows, which are skipped without waiting)
        # (these two and final_count are cleared at START and change only in a running job:
        # no reset)
        ahead = Job(signed(c_aw + 3)); row_in = Job()
        # level + inflight of the output FIFO: rows in it or on their way, kept in one count
        held = Signal(range(OUT_FIFO_DEPTH + 1))
        # held < OUT_FIFO_DEPTH (room for one more row), kept in a register
        room = Signal(init=1)
        pop = Signal()
        # With double buffering the output needs no gate, and `flushing` is folded into
        # the row_in register (an aborting job's padding starts a cycle later): "a row
        # may issue" is then three flip-flops, and the tile-row end enable a LUT of them.
        ready_in = row_in if cfg.double_buffer else ((row_in & out_gate) | flushing)
        m.d.comb += [
            row_ok.eq(row_ok_r if os_ else 1),
            ready_row.eq(ready_in),
            credit_ok.eq(room),
            pop.eq(fifo.r_en & fifo.r_rdy),
            out_issue.eq(out_active & row_ok & ready_row & credit_ok),
            advance.eq(out_active & (out_issue | ~row_ok)),
            acc_mem.r_addr[1].eq(out_addr),
        ]
        ge0, ge1, ge2 = ~ahead[-1], ~ahead[-1] & ahead.any(), ~ahead[-1] & ahead[1:].any()
        # (both sums from registers, the advance picking one: it is off the adders)
        ahead_up = Signal.like(ahead); ahead_dn = Signal.like(ahead)
        m.d.comb += [ahead_up.eq(ahead + s_final), ahead_dn.eq(ahead - ~s_final)]
        m.d.sync += [
            ahead.eq(Mux(advance, ahead_dn, ahead_up)),
            row_in.eq(Mux(s_final, Mux(advance, ge1, ge0), Mux(advance, ge2, ge1))
                      | (flushing if cfg.double_buffer else 0)),
            held.eq(held + out_issue - pop),
            room.eq(Mux(out_issue, Mux(pop, held < OUT_FIFO_DEPTH, held < OUT_FIFO_DEPTH - 1),
                        Mux(pop, 1, held < OUT_FIFO_DEPTH))),
        ]
        issued_last = Signal()
        # The tile-row end's values (next tile row, column or block), for R >= 2 computed
        # into registers from the output position: it changes only at a tile-row end, and
        # those are R advances apart, so the registers have a cycle to settle. The row
        # end flag r_end (out_r == R - 1) steps with out_r. (R == 1: every advance ends
        # a tile row; the values are computed in place.)
        if os_:
            nxt = {
                "t_br": (out_t != P_os - 1) & ~out_i_last, "j_br": out_j_last,
                "t1": out_t + 1, "i1": out_i + 1, "ibase_R": out_ibase + R,
                "lt_mR": out_ibase < m_mR, "eq_i": out_i == ni_m2,
                "ib_n": out_ib_n + P_os, "blk_n": out_blk_n + P_os * R,
                "blk_n_ok": out_blk_n < m_mPR, "eq_ibP": out_ib == ni_m1_mP,
                "j1": out_j + 1, "lt_blk": out_blk < M, "eq_j": out_j == nj_m2,
                "eq_ib": out_ib == ni_m1,
            }
            if R >= 2:
                for key, value in list(nxt.items()):
                    reg = Job(value.shape(), name=f"onx_{key}")
                    m.d.sync += reg.eq(value)
                    nxt[key] = reg
                r_end = Signal()
                r_end_d = Mux(advance, ~r_end & (out_r == R - 2), r_end)
                m.d.sync += r_end.eq(r_end_d)
            else:
                r_end = Const(1)
            t_br, j_br = nxt["t_br"], nxt["j_br"]
            if R >= 3:
                # Every position register's value after the next tile-row end (next tile
                # row, block or column, picked by the branch flags), in registers: valid
                # three cycles after a tile-row end (position, then the nxt registers, then
                # these), and tile-row ends are R >= 3 advances apart. The tile-row end is
                # then one enable (advance & r_end) of registers loading registers. The row
                # index is kept as out_rel = out_abs - (M - 1), so that "the next row is
                # inside M" after a step within the tile row is its sign bit.
                def pick(row, blk, col):
                    return Mux(t_br, row, Mux(j_br, blk, col))
                ends = [
                    (out_t, pick(nxt["t1"], 0, 0)),
                    (out_i, pick(nxt["i1"], out_ib_n, out_ib)),
                    (out_j, pick(out_j, 0, nxt["j1"])),
                    (out_ib, pick(out_ib, out_ib_n, out_ib)),
                    (out_ib_n, pick(out_ib_n, nxt["ib_n"], out_ib_n)),
                    (out_blk, pick(out_blk, out_blk_n, out_blk)),
                    (out_blk_n, pick(out_blk_n, nxt["blk_n"], out_blk_n)),
                    (out_ibase, pick(nxt["ibase_R"], out_blk_n, out_blk)),
                    (out_rel, pick(nxt["ibase_R"] - m_m1, out_blk_n - m_m1, out_blk - m_m1)),
                    (row_ok_r, pick(nxt["lt_mR"], blk_n_ok, nxt["lt_blk"])),
                    (blk_n_ok, pick(blk_n_ok, nxt["blk_n_ok"], blk_n_ok)),
                    (out_j_last, pick(out_j_last, nj_one, nxt["eq_j"])),
                    (out_i_last, pick(nxt["eq_i"], nxt["eq_ibP"], nxt["eq_ib"])),
                ]
                end_vals = []
                for reg, value in ends:
                    end_vals.append((reg, Job(reg.shape(), name=f"end_{reg.name}")))
                    m.d.sync += end_vals[-1][1].eq(value)
            else:
                e_row, e_blk, e_col = r_end & t_br, r_end & ~t_br & j_br, r_end & ~t_br & ~j_br
        with m.If(advance):
            m.d.sync += out_addr.eq(out_addr + 1)
            if os_ and R >= 3:
                with m.If(r_end):
                    m.d.sync += [reg.eq(value) for reg, value in end_vals]
                    m.d.sync += out_r.eq(0)
                with m.Else():
                    # out_abs + 1 < M, i.e. out_abs < M - 1 (M >= 1 in a running job)
                    m.d.sync += [out_r.eq(out_r + 1), out_rel.eq(out_rel + 1),
                                 row_ok_r.eq(out_rel[-1])]
            elif os_:
                # the sequencer's fold order (blocks of P_os tile rows, j, row)
                with m.If(e_row):
                    m.d.sync += [out_t.eq(nxt["t1"]), out_i.eq(nxt["i1"]),
                                 out_ibase.eq(nxt["ibase_R"]), out_abs.eq(nxt["ibase_R"]),
                                 row_ok_r.eq(nxt["lt_mR"]), out_i_last.eq(nxt["eq_i"])]
                with m.If(e_blk):
                    m.d.sync += [out_j.eq(0), out_t.eq(0), out_ib.eq(out_ib_n),
                                 out_i.eq(out_ib_n), out_ib_n.eq(nxt["ib_n"]),
                                 out_blk.eq(out_blk_n), out_blk_n.eq(nxt["blk_n"]),
                                 out_ibase.eq(out_blk_n), out_abs.eq(out_blk_n),
                                 row_ok_r.eq(blk_n_ok), blk_n_ok.eq(nxt["blk_n_ok"]),
                                 out_j_last.eq(nj_one), out_i_last.eq(nxt["eq_ibP"])]
                with m.If(e_col):
                    m.d.sync += [out_j.eq(nxt["j1"]), out_t.eq(0), out_i.eq(out_ib),
                                 out_ibase.eq(out_blk), out_abs.eq(out_blk),
                                 row_ok_r.eq(nxt["lt_blk"]),
                                 out_j_last.eq(nxt["eq_j"]), out_i_last.eq(nxt["eq_ib"])]
                with m.If(r_end):
                    m.d.sync += out_r.eq(0)
                with m.Else():
                    # out_abs + 1 < M, i.e. out_abs < M - 1 (M >= 1 in a running job)
                    m.d.sync += [out_r.eq(out_r + 1), out_abs.eq(out_abs + 1),
                                 row_ok_r.eq(out_abs < m_m1)]
        with m.If(out_issue):
            m.d.sync += [out_sent.eq(out_sent + 1), out_started.eq(1),
                         sent_last.eq(out_sent == out_rows_m2)]
            with m.If(sent_last):
                m.d.sync += out_active.eq(0)
        m.d.comb += issued_last.eq(out_issue & sent_last)
        # memory read (ACC_READ_LATENCY), then the requantizer
        rd_valid = [Signal(name=f"rd_valid{i}") for i in range(ACC_READ_LATENCY)]
        rd_last = [Signal(name=f"rd_last{i}") for i in range(ACC_READ_LATENCY)]
        out_q = Signal(row_bits); flushing_q = Signal()
        m.d.sync += [rd_valid[0].eq(out_issue), rd_last[0].eq(issued_last), flushing_q.eq(flushing)]
        m.d.sync += [rd_valid[i].eq(rd_valid[i - 1]) for i in range(1, ACC_READ_LATENCY)]
        m.d.sync += [rd_last[i].eq(rd_last[i - 1]) for i in range(1, ACC_READ_LATENCY)]
        rq_valid, rq_last = rd_valid[-1], rd_last[-1]
        m.d.comb += out_q.eq(Mux(flushing_q, 0, acc_mem.r_data[1]))
        m.d.comb += [
            rq.i_valid.eq(rq_valid), rq.i_last.eq(rq_last),
            rq.i_data.as_value().eq(out_q),
            rq.enable.eq(mode_rq), rq.relu.eq(mode_relu), rq.mult.eq(mult), rq.shift.eq(shift),
            fifo.w_en.eq(rq.o_valid), fifo.w_data.eq(Cat(rq.o_data, rq.o_last)),
            packer.fmt.eq(mode_rq),
            # FIFO -> packer through a skid register (below): the FIFO's read enable is a
            # flip-flop, not the packer's ready (which comes from the result port's)
            fifo.r_en.eq(~pk_valid),
            packer.i_valid.eq(pk_valid | fifo.r_rdy),
            packer.i_data.eq(pk_in[:row_bits]), packer.i_last.eq(pk_in[row_bits]),
            # result port: the packer's beat, or the skid register's (below)
            self.m_data.eq(Mux(sk_valid, sk_data, packer.o_data)),
            self.m_last.eq(Mux(sk_valid, sk_last, packer.o_last)),
            self.m_valid.eq(sk_valid | packer.o_valid), packer.o_ready.eq(~sk_valid),
        ]
        m.d.sync += inflight.eq(inflight + out_issue - rq.o_valid)
        # The FIFO's skid register: while empty it follows the FIFO's head (the FIFO is
        # read every cycle it holds a row), so its data registers load under one flip-flop.
        with m.If(~pk_valid):
            m.d.sync += pk_data.eq(fifo.r_data)
            with m.If(fifo.r_rdy & ~packer.i_ready):
                m.d.sync += pk_valid.eq(1)
        with m.Elif(packer.i_ready):
            m.d.sync += pk_valid.eq(0)
        # Skid register: the packer sees a registered ready (no skid beat held), and a beat
        # it hands over while the port stalls waits here. The port's TREADY then reaches
        # only these registers, not the packer's and the FIFO's enables. No latency: with
        # TREADY high the skid register stays empty and beats pass straight through.
        with m.If(sk_valid):
            with m.If(self.m_ready):
                m.d.sync += sk_valid.eq(0)
        with m.Elif(packer.o_valid & ~self.m_ready):
            m.d.sync += [sk_valid.eq(1), sk_data.eq(packer.o_data), sk_last.eq(packer.o_last)]

        # -- span and counters -----------------------------------------------------------
        last_beat = Signal()
        m.d.comb += last_beat.eq(self.m_valid & self.m_ready & self.m_last)
        # a job with output ends the cycle after its last beat (registered: the port's
        # handshake would otherwise reach every register `finish` writes)
        last_beat_r = Signal()
        m.d.sync += last_beat_r.eq(last_beat)
        with m.If(any_issue & running):
            m.d.sync += span.eq(1)
        with m.If(s_end):
            m.d.sync += [span.eq(0), span_done.eq(1)]
        # JOB_CYCLES counts to the last output beat: not the finish cycle after it
        # The last job's counters take no soft reset: START clears them (a soft reset leaves
        # the last job's figures), the hard reset too (below), so the soft reset's fanout
        # stays with the control registers and theirs starts at the hard reset's flip-flop.
        # (the registers behind the ports, by port name: tests/test_mutants.py reaches them)
        self._counter_regs = cnt = {
            name: Job(len(self.macs), name=name) for name in
            ("job_cycles", "compute_cycles", "in_stall_cycles", "out_stall_cycles", "macs")}
        m.d.comb += [getattr(self, name).eq(reg) for name, reg in cnt.items()]
        macs = cnt["macs"]
        count_flags = []
        with m.If(self.busy & ~(last_beat_r & running)):
            count_flags += _count(m, cnt["job_cycles"])
        # The other counters count a cycle later, from registered conditions (these come
        # from the sequencer's and the port's logic, and would otherwise reach the counters'
        # carry chains through it). Their last count lands by the cycle `done` shows: the
        # last stall or compute cycle is at least a cycle before the job's last beat.
        inc_in = Signal(); inc_out = Signal(); inc_compute = Signal()
        m.d.sync += [inc_in.eq(self.busy & seq_stall),
                     inc_out.eq(self.busy & self.m_valid & ~self.m_ready),
                     inc_compute.eq(self.busy & (span | (any_issue & running)) & ~seq_stall)]
        with m.If(inc_in):
            count_flags += _count(m, cnt["in_stall_cycles"])
        with m.If(inc_out):
            count_flags += _count(m, cnt["out_stall_cycles"])
        with m.If(inc_compute):
            count_flags += _count(m, cnt["compute_cycles"])


        # -- job control -----------------------------------------------------------------
        # "nothing of the output is left", registered for ABORT's finish: once the output
        # engine is stopped (out_active low) nothing enters its pipeline, so it stays true
        out_empty_r = Signal()
        m.d.sync += out_empty_r.eq(~out_active & (inflight == 0) & ~fifo.r_rdy & ~packer.o_valid
                                   & ~sk_valid & ~pk_valid & ~Cat(*rd_valid).any())
        # The loader's stream error pulses, registered: the abort they start reaches most
        # of the control registers, and the loader sits by the stream port, away from them
        # (the job aborts a cycle later; the abort drains whatever issued meanwhile)
        err_any_r = Signal(); err_short_r = Signal()
        m.d.sync += [err_any_r.eq(loader.err_short | loader.err_long),
                     err_short_r.eq(loader.err_short)]
        # (finish leaves the sequencer alone: a job's last fold, a stream error's abort and
        # a reset leave it stopped, and CHECK's reject comes before it starts)
        def finish(ok):
            m.d.sync += [self.busy.eq(0), self.done.eq(1), running.eq(0), out_active.eq(0),
                         flushing.eq(0), aborting.eq(0), self.jobs.eq(self.jobs + 1)]
            if ok:
                m.d.sync += macs.eq(macs_job)
            m.next = "IDLE"

        def fail(code):
            m.d.sync += [err_code.eq(code), self.error.eq(1)]

        m.d.comb += self.error_code.eq(err_code)

        # CHECK's decision and the output engine's per-job compare values, registered in the
        # last setup state, so that CHECK starts or flushes the loader from flip-flops
        reject = Signal(); accept = Signal()      # one-cycle pulses, in CHECK
        m.d.sync += [reject.eq(0), accept.eq(0)]
        # (high only in CHECK, so they drive the loader without a state decode)
        m.d.comb += [loader.flush.eq(reject), loader.start.eq(accept)]

        def last_setup(bad, a_o, b_o, c_o, uns):
            rej = bad | a_o | b_o | c_o | uns
            m.d.sync += [reject.eq(rej), accept.eq(~rej), out_rows_m2.eq(out_rows_m1 - 1),
                         m_mR.eq(M - R), m_mPR.eq(M - P_os * R)]

        def serial_setup():
            # config.serial_setup: one shift-add multiplier for every product of the setup.
            # Product register {high part, multiplier}; per cycle, add the multiplicand to
            # the high part if the multiplier's low bit is set, and shift right. After
            # `bits` cycles (plus one to load the operands) the product is in the
            # register's top. One state per product; GemmConfig.setup_cycles counts them.
            # Few registers: on an iCE40 a flip-flop loaded from a shared bus takes a
            # logic cell of its own. So products go straight to what uses them (M*N into
            # the multiplicand register for the MAC count, which stays in the product
            # register until the job ends; word counts minus one; CHECK's overflow flags).
            ybits = DIM_BITS + 1
            # (multiplicand or None to keep the register's, multiplier, its bits,
            #  f(product) -> statements at the end)
            ops = []
            for d, y, dst in (((R, M, ni) if os_ else (R, K, nk)), (C, N, nj)):
                if d & (d - 1):
                    c, sh = _reciprocal(d, ybits)
                    ops.append((Const(c), y + (d - 1), ybits,
                                lambda p, dst=dst, sh=sh: [dst.eq(p[sh:])]))
            macs_w = min(2 * DIM_BITS, cfg.counter_bits)    # bits of M*N the MAC count needs
            mc = Signal(max(macs_w, (((1 << DIM_BITS) - 1) * R).bit_length(),
                            *(len(op[0]) for op in ops)))
            a_words = lambda p: [n_a.eq(p), a_ovf.eq(p > cfg.a_depth)]
            if os_:
                ops += [(groups, ni, DIM_BITS, a_words),
                        (_mul_const(nj, R), ni, DIM_BITS, lambda p: [c_ovf.eq(p > cfg.acc_depth)]),
                        (M, nj, DIM_BITS, lambda p: [out_rows_m1.eq(p - 1)]),
                        (nj, steps, DIM_BITS, lambda p: [n_b.eq(p), b_ovf.eq(p > cfg.b_depth)])]
            else:
                def folds(p):
                    n_b_ = _mul_const(p, R)
                    return [n_folds_m1.eq(p - 1), n_b.eq(n_b_), b_ovf.eq(n_b_ > cfg.b_depth)]
                ops += [(M, nk, DIM_BITS, a_words), (nj, nk, DIM_BITS, folds),
                        (M, nj, DIM_BITS, lambda p: [c_ovf.eq(p > cfg.acc_depth),
                                                     out_rows_m1.eq(p - 1)])]
            ops += [(M, N, DIM_BITS, lambda p: [mc.eq(p)]), (None, steps, DIM_BITS, lambda p: [])]
            assert 3 + sum(bits + 1 for _, _, bits, _ in ops) == cfg.setup_cycles
            nmax = max(bits for _, _, bits, _ in ops)
            pr = Signal(len(mc) + 1 + nmax)
            pr_next = Signal.like(pr)
            cnt = Signal(range(nmax + 1))
            m.d.comb += [pr_next.eq(Cat(pr[1:nmax], pr[nmax:] + Mux(pr[0], mc, 0))),
                         macs_job.eq(pr[nmax - DIM_BITS:])]

            def states():
                with m.State("SETUP0"):
                    # the power-of-two divisions are shifts, steps a constant multiple
                    g = _div_const(K + (sp_m - 1), sp_m, ybits)
                    m.d.sync += [groups.eq(g), steps.eq(_mul_const(g, sp_n) if os_ else K),
                                 m_m1.eq(M - 1), cnt.eq(0),
                                 bad_dim.eq((M == 0) | (K == 0) | (N == 0)),
                                 unsupported.eq(rq_asked & (not cfg.requant))]
                    for d, y, dst in ((R, M, ni), (C, N, nj), (R, K, nk)):
                        if not d & (d - 1):
                            m.d.sync += dst.eq(_div_const(y + (d - 1), d, ybits))
                    m.next = "SETUP_MUL0"
                for i, (mcand, mplier, bits, done) in enumerate(ops):
                    with m.State(f"SETUP_MUL{i}"):
                        with m.If(cnt == 0):
                            m.d.sync += [pr.eq(mplier), cnt.eq(1)]
                            if mcand is not None:
                                m.d.sync += mc.eq(mcand)
                        with m.Else():
                            m.d.sync += [pr.eq(pr_next), cnt.eq(cnt + 1)]
                            with m.If(cnt == bits):
                                m.d.sync += [cnt.eq(0), *done(pr_next[nmax - bits:])]
                                m.next = f"SETUP_MUL{i + 1}" if i + 1 < len(ops) else "SETUP3"
                with m.State("SETUP3"):
                    m.d.sync += [ni_m1.eq(ni - 1), nj_m1.eq(nj - 1), nk_m1.eq(nk - 1),
                                 steps_m1.eq(steps - 1), steps_one.eq(steps == 1)]
                    if os_:
                        m.d.sync += [n_a1.eq(groups if P_os == 1
                                             else Mux(ni >= 2, groups * 2, groups)),
                                     gap_min.eq(Mux(steps < S, S - steps, 0))]
                    else:
                        m.d.sync += [n_a1.eq(n_a), fold_last.eq(Mux(M > S, M, S) - 1)]
                    last_setup(bad_dim, a_ovf, b_ovf, c_ovf, unsupported)
                    m.next = "CHECK"
            return states

        emit_serial_setup = serial_setup() if cfg.serial_setup else None
        if not cfg.serial_setup:
            # Products of two job values go through pipelined multipliers (operand and
            # product registers, on a DSP block where the platform has one, then a
            # fabric register): each is valid SETUP_PRODUCT_LATENCY cycles after its
            # operands settle, and they run continuously, so a state reads a product
            # once that many states have passed since its operands were written.
            built = []

            def product(name, a, b):
                built.append(name)
                return _setup_product(m, platform, name, a, b)
            mn_p = product("mn", M, N)                          # valid in SETUP3
            if os_:                                             # valid in SETUP5
                n_a_p, nij_p, rows_p = (product("n_a", ni, groups), product("nij", ni, nj),
                                        product("out_rows", M, nj))
                n_b_p = product("n_b", nj, steps)               # valid in SETUP6
            else:
                n_a_p, nij_p, rows_p = (product("n_a", nk, M), product("nij", nk, nj),
                                        product("out_rows", M, nj))
            macs_lo_p = product("macs_lo", mn_p[:16], steps)      # valid in SETUP6
            macs_hi_p = product("macs_hi", mn_p[16:], steps)
            assert tuple(built) == SETUP_PRODUCTS[cfg.dataflow], built
        with m.FSM(name="job"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "SETUP0"      # (its registers: start_job below)
            if cfg.serial_setup:
                emit_serial_setup()
            else:
                with m.State("SETUP0"):
                    m.d.sync += [y_m.eq(M + (R - 1)), y_n.eq(N + (C - 1)),
                                 y_kr.eq(K + (R - 1)), y_kg.eq(K + (sp_m - 1)), m_m1.eq(M - 1),
                                 bad_dim.eq((M == 0) | (K == 0) | (N == 0)),
                                 unsupported.eq(rq_asked & (not cfg.requant))]
                    m.next = "SETUP1"
                with m.State("SETUP1"):
                    m.d.sync += [
                        ni.eq(_div_const(y_m, R, DIM_BITS + 1)),
                        nj.eq(_div_const(y_n, C, DIM_BITS + 1)),
                        nk.eq(_div_const(y_kr, R, DIM_BITS + 1)),
                        groups.eq(_div_const(y_kg, sp_m, DIM_BITS + 1)),
                    ]
                    m.next = "SETUP2"
                with m.State("SETUP2"):
                    m.d.sync += [steps.eq(_mul_const(groups, sp_n) if os_ else K),
                                 ni_m1.eq(ni - 1), nj_m1.eq(nj - 1), nk_m1.eq(nk - 1)]
                    if os_:
                        m.d.sync += n_a1.eq(groups if P_os == 1
                                            else Mux(ni >= 2, groups << 1, groups))
                    else:
                        m.d.sync += fold_last.eq(Mux(M > S, M, S) - 1)
                    m.next = "SETUP3"
                with m.State("SETUP3"):
                    m.d.sync += [steps_m1.eq(steps - 1), steps_one.eq(steps == 1)]
                    if os_:
                        m.d.sync += gap_min.eq(Mux(steps < S, S - steps, 0))
                    m.next = "SETUP4"
                with m.State("SETUP4"):
                    m.next = "SETUP5"
                with m.State("SETUP5"):
                    m.d.sync += [n_a.eq(n_a_p), a_ovf.eq(n_a_p > cfg.a_depth),
                                 out_rows_m1.eq(rows_p - 1)]
                    if os_:
                        n_c_os = _mul_const(nij_p, R)
                        m.d.sync += [n_c.eq(n_c_os), c_ovf.eq(n_c_os > cfg.acc_depth)]
                    else:
                        m.d.sync += c_ovf.eq(rows_p > cfg.acc_depth)
                        n_b_ws = _mul_const(nij_p, R)
                        m.d.sync += [n_c.eq(rows_p), n_a1.eq(n_a_p), n_folds_m1.eq(nij_p - 1),
                                     n_b.eq(n_b_ws), b_ovf.eq(n_b_ws > cfg.b_depth)]
                    m.next = "SETUP6"
                with m.State("SETUP6"):
                    # every condition but OS's B overflow is in a register by now (the
                    # dimension checks from SETUP0, the overflows from SETUP5)
                    b_now = (n_b_p > cfg.b_depth) if os_ else b_ovf
                    m.d.sync += macs_job.eq(macs_lo_p + (macs_hi_p << 16))
                    if os_:
                        m.d.sync += [n_b.eq(n_b_p), b_ovf.eq(b_now)]
                    last_setup(bad_dim, a_ovf, b_now, c_ovf, unsupported)
                    m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(bad_dim):
                    fail(ERR["BAD_DIM"])
                with m.Elif(a_ovf):
                    fail(ERR["A_OVERFLOW"])
                with m.Elif(b_ovf):
                    fail(ERR["B_OVERFLOW"])
                with m.Elif(c_ovf):
                    fail(ERR["C_OVERFLOW"])
                with m.Elif(unsupported):
                    fail(ERR["UNSUPPORTED"])
                with m.If(reject):
                    finish(False)
                with m.Else():
                    m.next = "RUN"         # (its registers: accept below)
            with m.State("RUN"):
                with m.If(err_any_r):
                    m.next = "ABORT"       # (its registers: stream_error below)
                with m.Elif(mode_noout & span_done):
                    finish(True)
                with m.Elif(last_beat_r):
                    finish(True)
            with m.State("ABORT"):
                # Let steps in flight leave the array and writer, and finish a started
                # output frame with padding, so that nothing of this job leaks into the next.
                with m.If(abort_wait != abort_cycles):
                    m.d.sync += abort_wait.eq(abort_wait + 1)
                with m.If(drained_r & out_empty_r):
                    finish(False)
                with m.Elif(last_beat):
                    m.d.sync += out_active.eq(0)
        # The register writes of IDLE's start, CHECK's accept and RUN's stream error, enabled
        # by flip-flops rather than a decode of the state: IDLE is ~busy (busy is set
        # leaving IDLE and cleared by finish, which returns there), `accept` is a pulse
        # high only in CHECK, and RUN is `running`. (After the FSM, so that they take
        # priority over the logic before it as they did inside it.)
        counter_state = [*cnt.values(), *count_flags]     # what START and hard_reset clear
        start_job = Signal()
        m.d.comb += start_job.eq(self.start & ~self.busy)
        # a frame of a rejected earlier job may still be draining; this job's frame
        # follows its START, so stop discarding now
        m.d.comb += loader.cancel.eq(start_job)
        with m.If(start_job):
            m.d.sync += [M.eq(self.m), K.eq(self.k), N.eq(self.n), mode.eq(self.mode),
                         mult.eq(self.rq_mult), shift.eq(self.rq_shift),
                         self.busy.eq(1), self.done.eq(0), self.error.eq(0),
                         err_code.eq(0), *(reg.eq(0) for reg in counter_state),
                         inc_in.eq(0), inc_out.eq(0), inc_compute.eq(0),
                         span.eq(0), span_done.eq(0),
                         final_count.eq(0), out_started.eq(0), flushing.eq(0),
                         ahead.eq(0), row_in.eq(0)]
        # RUN is `running` (set by accept, cleared by finish and here)
        stream_error = Signal()
        m.d.comb += stream_error.eq(running & err_any_r)
        with m.If(stream_error):
            fail(Mux(err_short_r, ERR["SHORT_STREAM"], ERR["LONG_STREAM"]))
            # (no loader.abort: the loader raised the error as it left its loading
            # states, so it is idle now and discards the rest of a cut-off frame
            # itself; keeping its error pulse out of its own enables shortens them)
            m.d.sync += [running.eq(0), aborting.eq(1), abort_wait.eq(0), drained_r.eq(0)]
            for sig in seq_abort_sigs:
                m.d.sync += sig.eq(0)
            with m.If(out_started):
                m.d.sync += flushing.eq(1)
            with m.Else():
                m.d.sync += out_active.eq(0)
        with m.If(accept):
            m.d.sync += [running.eq(1), out_active.eq(~mode_noout), out_addr.eq(0),
                         out_r.eq(0), out_j.eq(0), out_ibase.eq(0), out_sent.eq(0),
                         sent_last.eq(out_rows_m1 == 0),
                         out_abs.eq(0), out_rel.eq(-m_m1),
                         row_ok_r.eq(1),    # 0 < M: M >= 1 here
                         out_i_last.eq(ni_m1 == 0), out_j_last.eq(nj_m1 == 0),
                         out_i.eq(0), out_ib.eq(0), out_t.eq(0), out_blk.eq(0),
                         out_blk_n.eq(P_os * R), blk_n_ok.eq(m_mPR > 0),
                         out_ib_n.eq(P_os)]
            if os_ and R >= 2:
                m.d.sync += r_end.eq(0)     # out_r = 0 < R - 1
            seq_reset()
        with m.If(self.hard_reset):
            m.d.sync += [reg.eq(0) for reg in counter_state]
        return m
