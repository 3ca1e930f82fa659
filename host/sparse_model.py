"""Cycle model of the sparse MAC accelerator.

``predict_sparse_job(cfg, cols, row_entries)`` returns the counters one job
reports (job, load, lane-busy and stall cycles, nonzeros) without simulating the
RTL: it replays the RTL's schedule beat by beat. The pieces are the ones of
:mod:`accelgen.hdl.sparse`:

* two setup cycles (SETUP, CHECK), then one cycle per beat of X;
* entry beats accepted one per cycle into the gather stage while it is free; a
  beat stays there one cycle (replicated buffer) or one cycle per arbitration
  round (banked buffer: each round every bank serves one row of X to all lanes
  asking for it, lowest lane first);
* after the gather stage: the registers of ``PIPELINE`` (dense-buffer read,
  operands, product), ``ceil(log2 L)`` scan levels and the carry stage, the
  registers of ``POST_REDUCE`` (compaction), then the compaction queue
  (``capacity`` rows), with no stall after the gather stage: a beat is taken
  only while the queue has room for every row under way (credits: ``room`` is
  the capacity less ``L`` rows per beat taken, plus each beat's refund of the
  ``L - k`` rows it does not end, added three cycles after it is taken, plus the
  rows popped, added two cycles after the pop; a beat is taken in a cycle if, in
  the cycle before, ``room`` was at least ``L``, or ``2 L`` when a beat was taken
  then too); a cycle in which the gather stage idles because a beat was refused
  so is an output stall;
* the output packer takes ``rows_per_beat`` rows per result beat (fewer for the
  final beat) one cycle after they are queued; the job ends with the last beat.

The stream is assumed to deliver a beat every cycle and to accept one every cycle,
which is what the simulation backends do; tests check the model against the
hardware counters.
"""

from dataclasses import dataclass, asdict

import numpy as np

from accelgen.hdl.sparse import PIPELINE, POST_REDUCE, QUEUE_DEPTH
from accelgen.hdl.sparse_config import SparseConfig

__all__ = ["SparsePrediction", "predict_sparse_job", "predict_sparse", "beat_rounds",
           "SETUP_CYCLES", "queue_capacity", "pipeline_depth"]

SETUP_CYCLES = 2                    # SETUP, CHECK (JOB_CYCLES starts counting at SETUP)
PRE_REDUCE = len(PIPELINE) - 1      # registers after the gather stage, before the reduction


@dataclass(frozen=True)
class SparsePrediction:
    """Predicted counters of one job (names as the hardware counters)."""

    job_cycles: int
    load_cycles: int
    nnz: int
    lane_busy_cycles: int
    in_stall_cycles: int
    conflict_stall_cycles: int
    out_stall_cycles: int

    def to_dict(self) -> dict:
        return asdict(self)


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def queue_capacity(cfg: SparseConfig) -> int:
    """Rows the compaction queue holds (see :class:`accelgen.hdl.rowqueue.CompactionQueue`)."""
    return _pow2_at_least(max(cfg.lanes, cfg.rows_per_beat)) * QUEUE_DEPTH


def pipeline_depth(cfg: SparseConfig) -> int:
    """Registers from the gather stage's output to the compaction queue's input."""
    return PRE_REDUCE + (cfg.lanes - 1).bit_length() + 1 + len(POST_REDUCE)


def beat_rounds(cols: np.ndarray, req: np.ndarray, banks: int, words: int) -> np.ndarray:
    """Arbitration rounds each entry beat spends in a banked buffer's gather stage.

    ``cols`` and ``req`` are (beats, L): column indices and whether the lane needs a
    row of X; ``banks`` banks interleaved by column, ``words`` rows of X per buffer
    word. Each round every bank serves the row asked for by its lowest waiting lane
    to all lanes asking for that row. A beat with no request takes one round.
    """
    nbeats, L = cols.shape
    bank = cols % banks
    addr = cols // words
    pending = req.astype(bool).copy()
    rounds = np.zeros(nbeats, dtype=np.int64)
    rows = np.arange(nbeats)
    while pending.any():
        rounds += pending.any(axis=1)
        winner = np.full((nbeats, banks), -1, dtype=np.int64)
        for l in range(L - 1, -1, -1):      # lowest lane written last: it wins
            p = pending[:, l]
            winner[rows[p], bank[p, l]] = addr[p, l]
        granted = pending & (addr == winner[rows[:, None], bank])
        pending &= ~granted
    return np.maximum(rounds, 1)


def predict_sparse_job(cfg: SparseConfig, cols: int, row_entries, entry_cols=None,
                       entry_req=None) -> SparsePrediction:
    """Counters of one job.

    Parameters
    ----------
    cfg : SparseConfig
    cols : int
        Columns of A in the job (rows of X loaded).
    row_entries : array of int
        Entries of each row (its nonzeros, or 1 for an empty row).
    entry_cols, entry_req : arrays, optional
        Column index of each entry, and whether it is a nonzero (False for an
        empty-row placeholder). ``entry_cols`` is needed for a banked buffer, whose
        conflicts depend on it; without ``entry_req`` every entry counts as a nonzero.
    """
    L, rb = cfg.lanes, cfg.rows_per_beat
    row_entries = np.asarray(row_entries, dtype=np.int64)
    M = len(row_entries)
    E = int(row_entries.sum())
    nbeats = -(-E // L)
    x_beats = -(-cols // cfg.x_rows_per_beat)
    last_pos = np.cumsum(row_entries) - 1
    k_beat = np.bincount(last_pos // L, minlength=nbeats).astype(np.int64)
    lanes_beat = np.full(nbeats, L, dtype=np.int64)
    lanes_beat[-1] = E - L * (nbeats - 1)
    if entry_req is None:
        entry_req = np.ones(E, dtype=bool)
    entry_req = np.asarray(entry_req, dtype=bool)
    padded_req = np.zeros(nbeats * L, dtype=bool)
    padded_req[:E] = entry_req
    nnz_beat = padded_req.reshape(nbeats, L).sum(axis=1)
    if cfg.x_buffer == "banked":
        if entry_cols is None:
            raise ValueError("predict_sparse_job needs entry_cols for a banked dense buffer")
        padded_cols = np.zeros(nbeats * L, dtype=np.int64)
        padded_cols[:E] = entry_cols
        rounds = beat_rounds(padded_cols.reshape(nbeats, L), padded_req.reshape(nbeats, L),
                             cfg.x_banks, cfg.x_rows_per_beat)
    else:
        rounds = np.ones(nbeats, dtype=np.int64)

    Q = queue_capacity(cfg)
    depth = pipeline_depth(cfg)
    k_list = k_beat.tolist()
    rounds_list = rounds.tolist()
    lanes_list = lanes_beat.tolist()
    nnz_list = nnz_beat.tolist()

    cycle = SETUP_CYCLES + x_beats          # first RUN cycle
    s1 = None
    s1_left = 0
    s1_k = 0                                # rows the beat in S1 ends
    fresh = False                           # S1 holds a beat for its first cycle
    pipe = [None] * depth
    level = 0
    room, room_ok, ret, refused = Q, True, 0, False     # credits (see the module doc)
    rows_out = 0
    m_valid = m_last = False
    nxt = 0
    acc_open = True
    lane_busy = in_stall = conflict = out_stall = nnz = 0
    while True:
        out = pipe[-1]
        i_ready = s1 is not None and s1_left == 1
        s1_free = s1 is None or i_ready
        accept = acc_open and s1_free and room_ok
        if acc_open or s1 is not None:
            if s1 is not None and not i_ready:
                conflict += 1
            elif s1 is None and refused:
                out_stall += 1
            elif s1 is None:
                in_stall += 1
        if s1 is not None:
            lane_busy += lanes_list[s1]
            if i_ready:
                nnz += nnz_list[s1]
        rows_left = M - rows_out
        k_out = rb if rows_left >= rb else rows_left
        emit = rows_left > 0 and level >= k_out
        if m_valid and m_last:
            return SparsePrediction(job_cycles=cycle + 1, load_cycles=x_beats, nnz=nnz,
                                    lane_busy_cycles=lane_busy, in_stall_cycles=in_stall,
                                    conflict_stall_cycles=conflict, out_stall_cycles=out_stall)
        # -- clock edge --
        if emit:
            m_valid, m_last = True, rows_left == k_out
            rows_out += k_out
        else:
            m_valid = False
        level += (k_list[out] if out is not None else 0) - (k_out if emit else 0)
        refused = acc_open and s1_free and not room_ok
        room_ok = room >= (2 * L if accept else L)
        room = room - (L if accept else 0) + ret
        ret = (L - s1_k if fresh else 0) + (k_out if emit else 0)
        fresh = accept
        pipe = [s1 if i_ready else None] + pipe[:-1]
        if s1 is not None:
            if i_ready:
                s1 = None
            else:
                s1_left -= 1
        if accept:
            s1, s1_left, s1_k = nxt, rounds_list[nxt], k_list[nxt]
            nxt += 1
            if nxt == nbeats:
                acc_open = False
        cycle += 1


def predict_sparse(cfg: SparseConfig, A, p: int = 1) -> SparsePrediction:
    """Counters of ``A @ X`` (X with ``p`` columns), summed over the jobs the host's
    tiling makes (see :mod:`accelgen.host.sparse`)."""
    from .sparse import to_csr, sparse_jobs, csr_entries
    csr = to_csr("A", A, cfg.a)
    total = None
    for job, sub in sparse_jobs(cfg, csr, p):
        _v, col, _last, empty = csr_entries(sub)
        pred = predict_sparse_job(cfg, job.cols, job.row_entries, col, empty == 0)
        if total is None:
            total = pred.to_dict()
        else:
            for k, v in pred.to_dict().items():
                total[k] += v
    return SparsePrediction(**total)
