"""Sparse jobs on the host: checking, CSR entry packing, tiling, programs, reports.

``plan_spmv(cfg, A, x)`` and ``plan_spmm(cfg, A, X)`` turn a product with a sparse A
into a program of device operations in exactly the form of
:func:`accelgen.host.plan.build_plan` (``write`` / ``read`` / ``send`` / ``recv`` /
``wait`` tuples); ``plan.assemble(results)`` turns the results of its reads and
receives back into y or Y. A may be any scipy.sparse matrix or array (converted to
CSR, duplicates summed, stored zeros dropped) or a dense numpy array.

Tiling, for products beyond one job's limits:

* columns of A beyond ``max_cols`` (the dense buffer): column blocks of equal
  width; each block is a job on its slice of X, and the host adds the partial
  results (modulo ``2**acc_bits``, which gives exactly the hardware's wrapped sum);
* rows beyond ``max_rows`` or entries beyond ``max_nnz``: row blocks, greedily
  as large as the limits allow (each re-loads its slice of X);
* columns of X beyond ``dense_cols``: column groups of P, each streaming A again
  (fewer columns are zero-padded).
"""

import time
from dataclasses import dataclass, field, asdict

import numpy as np

from accelgen.hdl.sparse_config import SparseConfig
from accelgen.hdl.sparse_regs import sparse_register_map

from .packing import ceil_div, pack_segment
from .plan import STATUS_BUSY, STATUS_DONE, STATUS_ERROR, ProgramResults

__all__ = ["SparseJob", "SparsePlan", "SparseReport", "plan_spmv", "plan_spmm", "to_csr",
           "csr_entries", "pack_entries", "pack_sparse_frame", "reference_spmm",
           "run_sparse_plan", "sparse_lower_bound_cycles", "sparse_jobs", "spmv", "spmm"]

# -- operands ---------------------------------------------------------------------------------

def _is_sparse(A) -> bool:
    try:
        import scipy.sparse as sp
    except ImportError:      # pragma: no cover - scipy is a dependency
        return False
    return sp.issparse(A)


def _check_range(name: str, lo: int, hi: int, dt) -> None:
    if lo < dt.min or hi > dt.max:
        bad = lo if lo < dt.min else hi
        raise ValueError(f"{name} holds {bad}, outside {dt.name} [{dt.min}, {dt.max}]")


def _check_integer_dtype(name: str, dtype) -> None:
    if not np.issubdtype(dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype (quantize first), not {dtype}")


def to_csr(name: str, A, dt):
    """``A`` (scipy.sparse of any format, or a 2-D numpy array) as a canonical CSR matrix:
    int64 values checked against ``dt``, duplicates summed, stored zeros dropped."""
    import scipy.sparse as sp
    if _is_sparse(A):
        if A.ndim != 2:
            raise ValueError(f"{name} must be 2-D, not {A.ndim}-D with shape {A.shape}")
        _check_integer_dtype(name, A.dtype)
        csr = sp.csr_matrix(A, dtype=np.int64, copy=True)
        csr.sum_duplicates()
    elif isinstance(A, np.ndarray):
        if A.ndim != 2:
            raise ValueError(f"{name} must be 2-D, not {A.ndim}-D with shape {A.shape}")
        _check_integer_dtype(name, A.dtype)
        csr = sp.csr_matrix(A.astype(np.int64, copy=False))
    else:
        raise TypeError(f"{name} must be a scipy.sparse matrix or a numpy array, "
                        f"not {type(A).__name__}")
    if csr.shape[0] == 0 or csr.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, but has shape {csr.shape}")
    if csr.nnz:
        _check_range(name, int(csr.data.min()), int(csr.data.max()), dt)
    csr.eliminate_zeros()
    csr.sort_indices()
    return csr


def _dense_operand(name: str, X, dt, n: int, *, vector: bool) -> np.ndarray:
    if _is_sparse(X):
        X = X.toarray()
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(X).__name__}")
    if vector:
        if X.ndim != 1:
            raise ValueError(f"{name} must be 1-D (use spmm for several columns), not "
                             f"{X.ndim}-D with shape {X.shape}")
        X = X.reshape(-1, 1)
    elif X.ndim != 2:
        raise ValueError(f"{name} must be 2-D, not {X.ndim}-D with shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, but has shape {X.shape}")
    if X.shape[0] != n:
        what = f"length {X.shape[0]}" if vector else f"{X.shape[0]} rows"
        raise ValueError(f"Shapes do not match for A @ {name}: A has {n} columns, {name} has "
                         f"{what}")
    _check_integer_dtype(name, X.dtype)
    _check_range(name, int(X.min()), int(X.max()), dt)
    return X.astype(np.int64, copy=False)


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement wrap of int64 values to ``bits``."""
    x = np.asarray(x, dtype=np.int64)
    if bits >= 64:
        return x
    mod = np.int64(1) << np.int64(bits)
    half = np.int64(1) << np.int64(bits - 1)
    return ((x + half) & (mod - 1)) - half


def reference_spmm(cfg: SparseConfig, A, X) -> np.ndarray:
    """What the hardware computes: ``A @ X`` wrapped to the accumulator width (int32 for
    accumulators up to 32 bits, else int64). ``X`` 1-D gives a 1-D result."""
    csr = to_csr("A", A, cfg.a)
    vec = np.ndim(X) == 1
    Xd = _dense_operand("x" if vec else "X", X, cfg.x, csr.shape[1], vector=vec)
    Y = wrap(np.asarray(csr @ Xd, dtype=np.int64), cfg.acc_bits)
    Y = Y.astype(np.int32 if cfg.acc_bits <= 32 else np.int64)
    return Y[:, 0] if vec else Y


# -- packing ----------------------------------------------------------------------------------

def csr_entries(csr):
    """The entry sequence of a CSR matrix: (value, col, last, empty) arrays.

    Rows in order, each row's stored entries, ``last`` on its final one; an empty row
    is a single placeholder entry (value 0, column 0, last, empty).
    """
    M = csr.shape[0]
    lengths = np.diff(csr.indptr)
    per_row = np.maximum(lengths, 1)
    E = int(per_row.sum())
    starts = np.zeros(M + 1, dtype=np.int64)
    np.cumsum(per_row, out=starts[1:])
    value = np.zeros(E, dtype=np.int64)
    col = np.zeros(E, dtype=np.int64)
    last = np.zeros(E, dtype=np.uint8)
    empty = np.zeros(E, dtype=np.uint8)
    # positions of the stored entries in the entry sequence
    row_of = np.repeat(np.arange(M), lengths)
    pos = np.arange(csr.nnz) - csr.indptr[row_of] + starts[row_of]
    value[pos] = csr.data
    col[pos] = csr.indices
    last[starts[1:] - 1] = 1
    empty[starts[:-1][lengths == 0]] = 1
    return value, col, last, empty


def pack_entries(cfg: SparseConfig, value, col, last, empty) -> bytes:
    """Segment A of the input frame: ``lanes`` entries per beat in ``slot_bits`` slots."""
    a, cb = cfg.a.bits, cfg.col_bits
    words = ((value.astype(np.int64) & ((1 << a) - 1)).astype(np.uint64)
             | (col.astype(np.uint64) << np.uint64(a))
             | (last.astype(np.uint64) << np.uint64(a + cb))
             | (empty.astype(np.uint64) << np.uint64(a + cb + 1)))
    L, sbits = cfg.lanes, cfg.slot_bits
    E = len(words)
    nbeats = ceil_div(E, L)
    padded = np.zeros(nbeats * L, dtype=np.uint64)
    padded[:E] = words
    if cfg.lanes * sbits == cfg.stream_bits and sbits in (8, 16, 32, 64):
        return padded.astype(f"<u{sbits // 8}").tobytes()
    eb = cfg.entry_bits
    bits = ((padded[:, None] >> np.arange(eb, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    beats = np.zeros((nbeats, cfg.stream_bits), dtype=np.uint8)
    for l in range(L):
        beats[:, l * sbits:l * sbits + eb] = bits[l::L]
    return np.packbits(beats.reshape(-1), bitorder="little").tobytes()


def pack_sparse_frame(cfg: SparseConfig, csr, X: np.ndarray) -> bytes:
    """The whole input frame of one job: segment X (``COLS x dense_cols``, fewer columns
    zero-padded) then segment A."""
    Xp = np.zeros((X.shape[0], cfg.dense_cols), dtype=np.int64)
    Xp[:, :X.shape[1]] = X
    return (pack_segment(Xp, cfg.x.bits, cfg.stream_bits)
            + pack_entries(cfg, *csr_entries(csr)))


def output_frame_bytes(cfg: SparseConfig, rows: int) -> int:
    return ceil_div(rows, cfg.rows_per_beat) * cfg.stream_bits // 8


def unpack_rows(cfg: SparseConfig, frame: bytes, rows: int) -> np.ndarray:
    """Result frame of one job -> (rows, dense_cols) int64."""
    sb = cfg.stream_bits // 8
    rb, row_bytes, lb = cfg.rows_per_beat, cfg.row_bits // 8, cfg.acc_bits // 8
    buf = np.frombuffer(frame, dtype=np.uint8).reshape(-1, sb)[:, :rb * row_bytes]
    raw = buf.reshape(-1, cfg.dense_cols, lb)[:rows].astype(np.uint64)
    val = np.zeros(raw.shape[:2], dtype=np.uint64)
    for i in range(lb):
        val |= raw[..., i] << np.uint64(8 * i)
    out = val.astype(np.int64)          # two's complement reinterpretation for 64-bit lanes
    if cfg.acc_bits < 64:
        out = wrap(out, cfg.acc_bits)
    return out


# -- plans ------------------------------------------------------------------------------------

@dataclass
class SparseJob:
    """One hardware job: ``Y[r0:r1, g0:g1] += A[r0:r1, c0:c1] . X[c0:c1, g0:g1]``."""

    r0: int
    r1: int
    c0: int
    c1: int
    g0: int
    g1: int
    entries: int
    nnz: int
    row_entries: np.ndarray = field(repr=False, default=None)   # entries per row
    recv_index: int = 0
    status_index: int = 0
    counter_index: int = 0
    out_bytes: int = 0
    in_bytes: int = 0
    prediction: object = field(repr=False, default=None)   # sparse_model.SparsePrediction

    @property
    def rows(self):
        return self.r1 - self.r0

    @property
    def cols(self):
        return self.c1 - self.c0


@dataclass
class SparsePlan(ProgramResults):
    """A SpMV / SpMM call as a program of device operations.

    Members
    -------
    config : SparseConfig
    shape : (M, N, Pn)
        A is M x N, X is N x Pn (Pn = 1 for SpMV).
    vector : bool
        SpMV: ``assemble`` returns a 1-D y.
    ops : list of tuple
        The program, in the form of :class:`~accelgen.host.plan.MatmulPlan`.
    jobs : list of SparseJob
    nnz : int
        Stored nonzeros of A (after dropping explicit zeros).
    """

    config: SparseConfig
    shape: tuple
    vector: bool
    ops: list
    jobs: list
    nnz: int
    counters: tuple = ()
    input_bytes: int = 0
    output_bytes: int = 0
    tiling: tuple = ()

    def register_map(self):
        return sparse_register_map(self.config)

    @staticmethod
    def job_label(j) -> str:
        return f"Y[{j.r0}:{j.r1}, {j.g0}:{j.g1}] (A columns {j.c0}:{j.c1})"

    def assemble(self, results: list) -> np.ndarray:
        """y (SpMV, 1-D) or Y from the results of the program's reads and receives."""
        self.check(results)
        cfg = self.config
        M, N, Pn = self.shape
        Y = np.zeros((M, Pn), dtype=np.int64)
        for j in self.jobs:
            rows = unpack_rows(cfg, results[j.recv_index], j.rows)
            Y[j.r0:j.r1, j.g0:j.g1] += rows[:, :j.g1 - j.g0]
        Y = wrap(Y, cfg.acc_bits).astype(np.int32 if cfg.acc_bits <= 32 else np.int64)
        return Y[:, 0] if self.vector else Y


def _row_blocks(per_row: np.ndarray, max_rows: int, max_entries: int):
    """Greedy row blocks [r0, r1) with at most ``max_rows`` rows and ``max_entries`` entries."""
    M = len(per_row)
    cum = np.zeros(M + 1, dtype=np.int64)
    np.cumsum(per_row, out=cum[1:])
    blocks = []
    r0 = 0
    while r0 < M:
        r1 = int(np.searchsorted(cum, cum[r0] + max_entries, side="right")) - 1
        r1 = min(r1, r0 + max_rows, M)
        if r1 <= r0:        # cannot happen: a row's entries never exceed the block width
            raise ValueError(f"Row {r0} has {per_row[r0]} entries, more than a job holds "
                             f"({max_entries})")
        blocks.append((r0, r1))
        r0 = r1
    return blocks


def sparse_jobs(cfg: SparseConfig, csr, Pn: int):
    """The jobs of ``csr @ X`` (X with ``Pn`` columns): yields ``(SparseJob, sub_csr)``."""
    M, N = csr.shape
    P = cfg.dense_cols
    n_cblocks = ceil_div(N, min(cfg.max_cols, cfg.max_nnz))
    cw = ceil_div(N, n_cblocks)
    csc = csr.tocsc() if n_cblocks > 1 else None
    for g0 in range(0, Pn, P):
        g1 = min(Pn, g0 + P)
        for c0 in range(0, N, cw):
            c1 = min(N, c0 + cw)
            if csc is None:
                block = csr
            else:
                block = csc[:, c0:c1].tocsr()
                block.sort_indices()
            lengths = np.diff(block.indptr)
            per_row = np.maximum(lengths, 1)
            for r0, r1 in _row_blocks(per_row, cfg.max_rows, cfg.max_nnz):
                sub = block if (r0, r1) == (0, M) else block[r0:r1]
                yield (SparseJob(r0, r1, c0, c1, g0, g1, entries=int(per_row[r0:r1].sum()),
                                 nnz=int(lengths[r0:r1].sum()), row_entries=per_row[r0:r1]),
                       sub)


def _build(cfg: SparseConfig, csr, X: np.ndarray, vector: bool) -> SparsePlan:
    from .sparse_model import predict_sparse_job
    rmap = sparse_register_map(cfg)
    off = rmap.offset
    M, N = csr.shape
    Pn = X.shape[1]
    ops, jobs = [], []
    n_results = 0
    in_bytes = out_bytes = 0
    cw = None
    for job, sub in sparse_jobs(cfg, csr, Pn):
        cw = max(cw or 0, job.cols)
        value, col, last, empty = csr_entries(sub)
        Xp = np.zeros((job.cols, cfg.dense_cols), dtype=np.int64)
        Xp[:, :job.g1 - job.g0] = X[job.c0:job.c1, job.g0:job.g1]
        frame = (pack_segment(Xp, cfg.x.bits, cfg.stream_bits)
                 + pack_entries(cfg, value, col, last, empty))
        job.prediction = predict_sparse_job(cfg, job.cols, job.row_entries, col, empty == 0)
        job.in_bytes = len(frame)
        in_bytes += len(frame)
        ops += [("write", off("ROWS"), job.rows), ("write", off("COLS"), job.cols),
                ("write", off("ENTRIES"), job.entries), ("write", off("CTRL"), 1),
                ("send", frame)]
        job.out_bytes = output_frame_bytes(cfg, job.rows)
        out_bytes += job.out_bytes
        ops.append(("recv", job.out_bytes))
        job.recv_index = n_results
        n_results += 1
        ops.append(("wait", off("STATUS"), STATUS_BUSY | STATUS_DONE, STATUS_DONE))
        ops.append(("read", off("STATUS")))
        job.status_index = n_results
        n_results += 1
        job.counter_index = n_results
        for name in rmap.counters:
            ops += [("read", off(f"{name}_LO")), ("read", off(f"{name}_HI"))]
            n_results += 2
        jobs.append(job)
    return SparsePlan(cfg, (M, N, Pn), vector, ops, jobs, int(csr.nnz), rmap.counters,
                      in_bytes, out_bytes, (cw, ceil_div(Pn, cfg.dense_cols)))


def _require_sparse(cfg, what):
    if not isinstance(cfg, SparseConfig):
        raise TypeError(f"{what} needs a SparseConfig (the sparse accelerator), not "
                        f"{type(cfg).__name__}; use matmul on a GEMM accelerator")


def plan_spmv(cfg: SparseConfig, A, x) -> SparsePlan:
    """The device-operation program of ``y = A @ x`` (x 1-D)."""
    _require_sparse(cfg, "plan_spmv")
    csr = to_csr("A", A, cfg.a)
    X = _dense_operand("x", x, cfg.x, csr.shape[1], vector=True)
    return _build(cfg, csr, X, True)


def plan_spmm(cfg: SparseConfig, A, X) -> SparsePlan:
    """The device-operation program of ``Y = A @ X`` (X 2-D, any number of columns)."""
    _require_sparse(cfg, "plan_spmm")
    csr = to_csr("A", A, cfg.a)
    Xd = _dense_operand("X", X, cfg.x, csr.shape[1], vector=False)
    return _build(cfg, csr, Xd, False)


# -- reports ----------------------------------------------------------------------------------

def sparse_lower_bound_cycles(cfg: SparseConfig, plan: SparsePlan) -> int:
    """max(entries / L, input bytes / stream bytes, output bytes / stream bytes) of a call."""
    sbytes = cfg.stream_bits // 8
    entries = sum(j.entries for j in plan.jobs)
    return max(ceil_div(entries, cfg.lanes), ceil_div(plan.input_bytes, sbytes),
               ceil_div(plan.output_bytes, sbytes))


@dataclass
class SparseReport:
    """Counters and derived figures of one ``spmv`` / ``spmm`` call.

    Counters are read from the hardware and summed over the call's jobs (``jobs``
    lists each job's own). ``lane_utilization`` is U = nnz processed / (L x job
    cycles): the share of lane slots that did useful work, X loading, pipeline fill
    and every stall included.

    Members
    -------
    nnz : int
        Stored nonzeros of A.
    nnz_processed : int
        The hardware's nonzero counter, summed over jobs (nnz x column groups).
    entries : int
        Entries streamed (nonzeros plus empty-row placeholders), summed over jobs.
    lower_bound_cycles : int
        max(entries / L, input bytes / bus bytes, output bytes / bus bytes).
    model_job_cycles : int
        :func:`accelgen.host.sparse_model.predict_sparse`, summed over jobs.
    scipy_seconds : float
        Wall time of scipy.sparse's ``A @ X`` on the same operands (the software baseline).
    """

    m: int
    n: int
    p: int
    backend: str
    config: str
    nnz: int
    nnz_processed: int
    entries: int
    job_cycles: int
    load_cycles: int
    lane_busy_cycles: int
    input_stall_cycles: int
    conflict_stall_cycles: int
    output_stall_cycles: int
    lanes: int
    lane_utilization: float
    lower_bound_cycles: int
    model_job_cycles: int
    tiling: tuple = ()
    fmax_mhz: float | None = None
    projected_seconds: float | None = None
    fmax_note: str = ""
    scipy_seconds: float = 0.0
    host_seconds: float = 0.0
    device_seconds: float = 0.0
    device_cycles: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    jobs: list = field(default_factory=list)

    @property
    def density(self) -> float:
        return self.nnz / (self.m * self.n)

    @property
    def ratio_to_lower_bound(self) -> float:
        return self.job_cycles / self.lower_bound_cycles

    @property
    def model_error(self) -> float:
        return (self.model_job_cycles - self.job_cycles) / self.job_cycles

    @property
    def simulated_cycles_per_second(self) -> float:
        return self.device_cycles / self.device_seconds if self.device_seconds else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tiling"] = list(self.tiling)
        d.update(density=self.density, ratio_to_lower_bound=self.ratio_to_lower_bound,
                 model_error=self.model_error,
                 simulated_cycles_per_second=self.simulated_cycles_per_second)
        return d


def run_sparse_plan(acc, plan: SparsePlan, host_seconds: float = 0.0, baseline=None):
    """Execute ``plan`` on ``acc``'s device; returns ``(y_or_Y, SparseReport)``."""
    from accelgen.sim.device import DeviceTimeout, DeviceError
    cfg = plan.config
    preds = [j.prediction for j in plan.jobs]
    budget = sum(p.job_cycles for p in preds) * 4 + 100_000
    dev = acc.device
    c0 = dev.cycles
    t1 = time.perf_counter()
    try:
        results = dev.execute(plan.ops, timeout_cycles=budget)
    except DeviceTimeout as exc:
        status = dev.read(acc.regmap.offset("STATUS"))
        if status & STATUS_ERROR:
            code = (status >> 8) & 0xFF
            raise DeviceError(f"The accelerator reported error {code} "
                              f"({acc.regmap.error_name(code)})") from exc
        raise
    dev_s = time.perf_counter() - t1
    Y = plan.assemble(results)
    per_job = plan.job_counters(results)
    for j, d, p in zip(plan.jobs, per_job, preds):
        d.update(r0=j.r0, r1=j.r1, c0=j.c0, c1=j.c1, g0=j.g0, g1=j.g1, entries=j.entries,
                 model_job_cycles=p.job_cycles)
    tot = {k: sum(d[k] for d in per_job) for k in
           ("job_cycles", "load_cycles", "nnz", "lane_busy_cycles", "in_stall_cycles",
            "conflict_stall_cycles", "out_stall_cycles")}
    scipy_s = 0.0
    if baseline is not None:
        A_csr, X = baseline
        t = time.perf_counter()
        _ = A_csr @ X
        scipy_s = time.perf_counter() - t
    try:
        from accelgen.boards.cache import cached_fmax
        fmax, note = cached_fmax(cfg)
    except Exception:                   # noqa: BLE001 - no synthesis flow or no result
        fmax, note = None, "no synthesis result cached"
    M, N, Pn = plan.shape
    report = SparseReport(
        m=M, n=N, p=Pn, backend=acc.backend, config=cfg.describe(), nnz=plan.nnz,
        nnz_processed=tot["nnz"], entries=sum(j.entries for j in plan.jobs),
        job_cycles=tot["job_cycles"], load_cycles=tot["load_cycles"],
        lane_busy_cycles=tot["lane_busy_cycles"], input_stall_cycles=tot["in_stall_cycles"],
        conflict_stall_cycles=tot["conflict_stall_cycles"],
        output_stall_cycles=tot["out_stall_cycles"], lanes=cfg.lanes,
        lane_utilization=tot["nnz"] / (cfg.lanes * tot["job_cycles"]),
        lower_bound_cycles=sparse_lower_bound_cycles(cfg, plan),
        model_job_cycles=sum(p.job_cycles for p in preds), tiling=plan.tiling,
        fmax_mhz=fmax, projected_seconds=(tot["job_cycles"] / (fmax * 1e6)) if fmax else None,
        fmax_note=note, scipy_seconds=scipy_s, host_seconds=host_seconds,
        device_seconds=dev_s, device_cycles=dev.cycles - c0, input_bytes=plan.input_bytes,
        output_bytes=plan.output_bytes, jobs=per_job)
    return Y, report


def spmv(acc, A, x):
    """``y = A @ x`` on ``acc`` (a sparse accelerator): ``(y, SparseReport)``."""
    t0 = time.perf_counter()
    plan = plan_spmv(acc.config, A, x)
    host_s = time.perf_counter() - t0
    return run_sparse_plan(acc, plan, host_s, baseline=_baseline(A, x))


def spmm(acc, A, X):
    """``Y = A @ X`` on ``acc`` (a sparse accelerator): ``(Y, SparseReport)``."""
    t0 = time.perf_counter()
    plan = plan_spmm(acc.config, A, X)
    host_s = time.perf_counter() - t0
    return run_sparse_plan(acc, plan, host_s, baseline=_baseline(A, X))


def _baseline(A, X):
    import scipy.sparse as sp
    A_csr = sp.csr_matrix(A) if not sp.issparse(A) or A.format != "csr" else A
    return A_csr, np.asarray(X)
