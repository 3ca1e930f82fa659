"""Analytic cycle model of the generated GEMM hardware.

``predict(config, m, k, n)`` returns the counters one job would report (job,
compute, input-stall and output-stall cycles, MACs) without simulating it. It
follows the RTL's schedule fold by fold: words arrive from the stream at the
loader's rate, a fold starts when its operands are in the scratchpads (and, in
OS, when the previous fold's results have been read out of the PEs), steps issue
one per cycle, result rows pass the array and the accumulator write-back, and
the output engine packs finished rows into beats. The constants below are the
pipeline depths of the RTL; tests check the model against the hardware counters.
"""

from dataclasses import dataclass, asdict

from accelgen.hdl.config import GemmConfig
from accelgen.hdl.gearbox import words_per_beat, beats_per_word
from accelgen.hdl.gemm import ACC_READ_LATENCY, OUT_FIFO_DEPTH, WRITEBACK as _WRITEBACK, \
    WS_MIN_FOLD as _WS_MIN_FOLD, OS_MIN_FOLD as _OS_MIN_FOLD
from accelgen.hdl.loader import Loader
from accelgen.hdl.ram import READ_LATENCY
from accelgen.hdl.pe import OSProcessingElement, WSProcessingElement
from accelgen.hdl.requant import Requantizer

__all__ = ["Prediction", "predict", "scalesim_cycles", "lower_bound_cycles"]

# Pipeline constants of the RTL (see hdl/gemm.py, hdl/array.py); the pipeline depths that
# hdl exports are taken from it.
START_TO_BUSY = 2          # CTRL write handshake -> strobe -> job FSM
# Setup takes GemmConfig.setup_cycles (SETUP0..SETUP6 and CHECK, or the serial setup's).
ISSUE_TO_ARRAY = READ_LATENCY          # scratchpad read + its output register
PE_LATENCY = OSProcessingElement.LATENCY      # operand, product, fabric product, sum
assert WSProcessingElement.LATENCY == PE_LATENCY
WRITEBACK = _WRITEBACK     # writer: row register, accumulator read, sum
OUT_PIPE = ACC_READ_LATENCY + Requantizer.LATENCY   # accumulator read + requantizer
FIFO_DEPTH = OUT_FIFO_DEPTH
WRITE_DELAY = Loader.WRITE_DELAY   # loader's registered scratchpad write: counts seen later
FIFO_LATENCY = 3           # FIFO write -> packer input (buffered FIFO)
WS_MIN_FOLD = _WS_MIN_FOLD


@dataclass(frozen=True)
class Prediction:
    """Predicted counters of one job (same names as the report's fields)."""

    job_cycles: int
    compute_cycles: int
    input_stall_cycles: int
    output_stall_cycles: int
    macs: int
    folds: int

    def to_dict(self) -> dict:
        return asdict(self)


def _ceil(a, b):
    return -(-a // b)


def scalesim_cycles(cfg: GemmConfig, m: int, k: int, n: int) -> int:
    """SCALE-Sim 3.0's stall-free cycle count for C[m x n] = A[m x k] B[k x n].

    With N:M sparsity the reduction length is the compressed one, K' = ceil(K/M)*N
    (the array's steps): the anchor of a stall-free array that skips pruned MACs.
    """
    R, C = cfg.rows, cfg.cols
    if cfg.sparsity != "dense":
        n_sp, m_sp = cfg.nm
        k = _ceil(k, m_sp) * n_sp
    if cfg.dataflow == "os":
        return _ceil(m, R) * _ceil(n, C) * (k + R + C - 2) - 1
    return _ceil(k, R) * _ceil(n, C) * (m + 2 * R + C - 2) - 1


def lower_bound_cycles(cfg: GemmConfig, m: int, k: int, n: int, *, requant: bool = False) -> int:
    """max(compute, input, output) bound of one call, from useful work and bytes only.

    With N:M sparsity the work is the kept MACs (K' = ceil(K/M)*N per output) and B's
    bytes are its kept values with their positions.
    """
    n_sp, m_sp = cfg.nm
    kk = _ceil(k, m_sp) * n_sp if cfg.sparsity != "dense" else k
    compute = _ceil(m * kk * n, cfg.rows * cfg.cols)
    sbytes = cfg.stream_bits // 8
    in_bits = m * k * cfg.a.bits + kk * n * cfg.b_element_bits
    out_bits = m * n * (8 if requant else cfg.acc_bits)
    return max(compute, _ceil(_ceil(in_bits, 8), sbytes), _ceil(_ceil(out_bits, 8), sbytes))


class _Stream:
    """When scratchpad words land, from the input frame's segments (see hdl/loader.py).

    A segment's first beat is accepted at ``seg_start``. Words no wider than a beat
    are written one per cycle from ``seg_start + 1`` (count ``c`` visible at
    ``seg_start + 1 + c``) and the next segment starts one cycle after the last
    write; wider words take ``Q`` beats each (count ``c`` visible at
    ``seg_start + Q*c``) and the next segment follows at once. The sequencer sees a
    count ``WRITE_DELAY`` cycles later (the loader's registered write port).
    """

    def __init__(self, cfg: GemmConfig, segments, start: int):
        S = cfg.stream_bits
        width = {"a": cfg.a_word_bits, "b": cfg.b_word_bits}
        self.segs = {"a": [], "b": []}
        t = start
        for kind, n in segments:
            if n <= 0:
                continue
            W = width[kind]
            done = sum(x[2] for x in self.segs[kind])
            if W <= S:
                self.segs[kind].append((t, done, n, None))
                t = t + n + 1
            else:
                q = beats_per_word(W, S)
                self.segs[kind].append((t, done, n, q))
                t = t + q * n
        self.end = t

    def time(self, kind: str, count: int) -> int:
        """First cycle at which ``count`` words of ``kind`` are visible to the sequencer."""
        if count <= 0:
            return 0
        for seg_start, done, n, q in self.segs[kind]:
            if count <= done + n:
                local = count - done
                return WRITE_DELAY + (seg_start + 1 + local if q is None
                                      else seg_start + q * local)
        raise ValueError(f"{kind} word {count} is not in the frame")

    def a_time(self, count):
        return self.time("a", count)

    def b_time(self, count):
        return self.time("b", count)


def predict(cfg: GemmConfig, m: int, k: int, n: int, *, requant: bool = False,
            no_output: bool = False) -> Prediction:
    """Counters of one job of shape (m, k, n) on ``cfg``."""
    R, C, S = cfg.rows, cfg.cols, cfg.stream_bits
    nj = _ceil(n, C)
    t0 = START_TO_BUSY + cfg.setup_cycles        # cycle the loader starts, from busy
    busy0 = START_TO_BUSY
    sp_n, sp_m = cfg.nm
    groups = _ceil(k, sp_m)
    steps = groups * sp_n if cfg.dataflow == "os" else k   # array steps per OS fold
    macs = m * n * steps
    if cfg.dataflow == "os":
        ni = _ceil(m, R)
        n_a, n_b = ni * groups, nj * steps
    else:
        nk = _ceil(k, R)
        n_a, n_b = nk * m, nk * nj * R
    from .packing import first_a_words
    n_a1 = first_a_words(cfg, m, k, n_a)
    st = _Stream(cfg, [("a", n_a1), ("b", n_b), ("a", n_a - n_a1)], t0)
    all_loaded = max(st.a_time(n_a), st.b_time(n_b))
    stall = 0
    rows = []                                     # (cycle written, is_output_row)
    if cfg.dataflow == "os":
        Sgap = max(R, C, _OS_MIN_FOLD)
        lat = ISSUE_TO_ARRAY + C + PE_LATENCY + WRITEBACK
        t = t0
        prev_last = None
        first_issue = None
        folds = ni * nj
        from .packing import os_fold_order
        for i, j in os_fold_order(cfg, ni, nj):
            if True:
                ready = max(st.a_time((i + 1) * groups), st.b_time((j + 1) * steps))
                if not cfg.double_buffer:
                    ready = max(ready, all_loaded)
                gap_ok = t if prev_last is None else max(t, prev_last + Sgap - steps + 1)
                start = max(gap_ok, ready)
                stall += max(0, start - gap_ok)
                if first_issue is None:
                    first_issue = start
                last = start + steps - 1
                rv = min(R, m - i * R)
                for r in range(R):
                    rows.append((last + lat + r, r < rv))
                prev_last = last
                t = last + 1
        span_end = rows[-1][0]
    else:
        Sf = max(R, WS_MIN_FOLD)
        lat = ISSUE_TO_ARRAY + R + C + PE_LATENCY - 1 + WRITEBACK
        folds = nk * nj
        pre = max(t0, st.b_time(R) if cfg.double_buffer else all_loaded)
        stall += pre - t0
        first_issue = pre
        t = pre + R
        f = 0
        fold_len = max(m, Sf)
        for jt in range(nj):
            for kt in range(nk):
                ready = st.a_time((kt + 1) * m)
                if f + 1 < folds:
                    ready = max(ready, st.b_time((f + 2) * R))
                if not cfg.double_buffer:
                    ready = max(ready, all_loaded)
                start = max(t, ready)
                stall += start - t
                if kt == nk - 1:
                    for mm in range(m):
                        rows.append((start + mm + lat, True))
                else:
                    rows.append((start + m - 1 + lat, False))
                t = start + fold_len
                f += 1
        span_end = rows[-1][0]
    compute = span_end - first_issue + 1 - stall_within(stall, first_issue, t0, cfg)
    if no_output:
        end = span_end + 1          # the job ends the cycle after the last row is written
    else:
        end = _output_end(cfg, rows, span_end, requant)
    job = end - busy0 + 1
    return Prediction(job_cycles=job, compute_cycles=compute, input_stall_cycles=stall,
                      output_stall_cycles=0, macs=macs, folds=folds)


def stall_within(stall, first_issue, t0, cfg):
    """Stall cycles after the first issue (the compute span excludes only those)."""
    return stall - max(0, first_issue - t0) if stall else 0


def _output_end(cfg: GemmConfig, rows, span_end, requant):
    """Cycle of the last output beat, from the cycles result rows are written."""
    S = cfg.stream_bits
    row_bits = cfg.cols * (8 if requant else cfg.acc_bits)
    # Rows no wider than a beat are packed `per` to a beat and the beat leaves one cycle
    # after its last row; wider rows are split into `beats_row` beats straight from the
    # packer's input, one a cycle, the first likewise one cycle after the row arrives.
    packed = row_bits <= S
    per = words_per_beat(row_bits, S) if packed else 1
    beats_row = 1 if packed else beats_per_word(row_bits, S)
    gate = span_end if not cfg.double_buffer else None
    read_t = -1
    beat_t = -1
    pending = 0
    for written, out in rows:
        if not out:
            continue
        avail = written + 1 if gate is None else max(written + 1, gate + 1)
        read_t = max(avail, read_t + 1)
        arrive = read_t + OUT_PIPE + FIFO_LATENCY     # at the packer's input
        if packed:
            pending += 1
            if pending == per:
                beat_t = max(arrive, beat_t + 1)
                pending = 0
        else:
            for b in range(beats_row):
                beat_t = max(arrive + b, beat_t + 1)
    if pending:
        beat_t = max(read_t + OUT_PIPE + FIFO_LATENCY, beat_t + 1)
    return beat_t
