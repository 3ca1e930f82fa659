# amaranth: UnusedElaboratable=no
"""Sparse accelerator driver tests: spmv / spmm bit-exact against scipy.sparse on
every matrix family and edge case, on both backends; hardware counters equal to the
cycle model and identical across backends; tiling; error jobs; input checks."""

import numpy as np
import pytest
import scipy.sparse as sp

from accelgen.hdl import SparseConfig, GemmConfig
from accelgen.host import Accelerator
from accelgen.host import sparse_matrices as smx
from accelgen.host.sparse import (reference_spmm, plan_spmv, csr_entries, to_csr,
                                  pack_sparse_frame, pack_entries, unpack_rows)
from accelgen.host.sparse_model import predict_sparse
from accelgen.sim.device import DeviceError

# Three Verilator builds cover: replicated and banked buffers, SpMV and SpMM (P = 1, 2,
# 4), L = 3, 4, 8, every value type once, narrow (wrapping) and wide accumulators,
# slots that are and are not byte-aligned, 1 and 5 (not a power of two) rows per beat.
V_SMALL = SparseConfig(lanes=4, stream_bits=128, col_bits=9, max_cols=320, max_nnz=3000,
                       max_rows=400)
V_BANKED = SparseConfig(lanes=8, a_dtype="int16", x_dtype="uint8", acc_bits=24, dense_cols=2,
                        x_buffer="banked", x_banks=4, stream_bits=256, col_bits=8,
                        max_cols=256)
V_NARROW = SparseConfig(lanes=3, a_dtype="uint4", x_dtype="int4", acc_bits=16, dense_cols=4,
                        stream_bits=64, col_bits=9, max_cols=512)

_accs = {}


def _acc(cfg, backend):
    """One device per (config, backend) for the whole session: builds are the slow part."""
    key = (cfg, backend)
    if key not in _accs:
        _accs[key] = Accelerator(cfg, backend=backend)
    return _accs[key]


def _dense(cfg, n, p, seed, extremes=False):
    rng = np.random.default_rng(seed)
    X = rng.integers(cfg.x.min, cfg.x.max, (n, p), endpoint=True)
    if extremes:
        X.flat[::2] = cfg.x.min
        X.flat[1::2] = cfg.x.max
    return X


def _values(cfg, A, seed, extremes=False):
    """A's pattern with values of cfg's A type (nonzero; alternating extremes)."""
    A = sp.csr_matrix(A, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if extremes:
        A.data = np.where(np.arange(A.nnz) % 2, cfg.a.max, cfg.a.min or cfg.a.max)
    else:
        lo = cfg.a.min if cfg.a.min < 0 else 1
        A.data = smx.nonzero_values(rng, A.nnz, lo, cfg.a.max)
    return A


def _check(cfg, backend, A, p=None, seed=0, extremes=False):
    """Run spmv (p None) or spmm on A; check against scipy and the counters against the model."""
    acc = _acc(cfg, backend)
    A = _values(cfg, A, seed, extremes)
    X = _dense(cfg, A.shape[1], p or 1, seed + 1, extremes)
    if p is None:
        y, rep = acc.spmv(A, X[:, 0])
        np.testing.assert_array_equal(y, reference_spmm(cfg, A, X[:, 0]))
        assert y.shape == (A.shape[0],)
    else:
        y, rep = acc.spmm(A, X)
        np.testing.assert_array_equal(y, reference_spmm(cfg, A, X))
    groups = -(-(p or 1) // cfg.dense_cols)
    assert rep.nnz == A.nnz
    assert rep.nnz_processed == A.nnz * groups
    assert rep.lane_busy_cycles >= rep.entries
    assert rep.lane_utilization == rep.nnz_processed / (cfg.lanes * rep.job_cycles)
    # the cycle model is exact, job by job and counter by counter
    assert all(j["job_cycles"] == j["model_job_cycles"] for j in rep.jobs)
    pred = predict_sparse(cfg, A, p or 1)
    assert (pred.job_cycles, pred.nnz, pred.lane_busy_cycles, pred.conflict_stall_cycles,
            pred.out_stall_cycles, pred.in_stall_cycles) == (
        rep.job_cycles, rep.nnz_processed, rep.lane_busy_cycles, rep.conflict_stall_cycles,
        rep.output_stall_cycles, rep.input_stall_cycles)
    return rep


def _edge_cases(m, n, seed):
    """(name, pattern) of the edge cases every config runs."""
    rng = np.random.default_rng(seed)
    empty_rows = smx.uniform(m, n, 0.2, seed).tolil()
    empty_rows[::3] = 0
    empty_rows[m - 1] = 0                                   # trailing empty row too
    dense_row = smx.uniform(m, n, 0.02, seed).tolil()
    dense_row[m // 2] = smx.nonzero_values(rng, n)
    return [
        ("empty_rows", empty_rows.tocsr()),
        ("one_dense_row", dense_row.tocsr()),
        ("all_zero", sp.csr_matrix((m, n), dtype=np.int64)),
        ("1xN", smx.uniform(1, n, 0.5, seed)),
        ("Nx1", smx.uniform(m, 1, 0.6, seed)),
        ("1x1", sp.csr_matrix(np.array([[-7]]))),
    ]


def _families(n, seed):
    """(name, pattern) of the matrix families at test size (about n x n)."""
    k = int(np.sqrt(n))
    return [
        ("uniform_50%", smx.uniform(n, n + 7, 0.5, seed)),
        ("uniform_10%", smx.uniform(n, n + 7, 0.1, seed)),
        ("uniform_1%", smx.uniform(n, n + 7, 0.01, seed)),
        ("uniform_0.1%", smx.uniform(3 * n, 3 * n, 0.001, seed)),
        ("banded", smx.banded(n, 3, seed)),
        ("poisson2d", smx.poisson2d(k, seed)),
        ("barabasi_albert", smx.barabasi_albert(n, 3, seed)),
        ("block_diagonal", smx.block_diagonal(n, 9, 0.7, seed)),
        ("short_rows", smx.short_rows(n, n, 1, 8, seed)),
    ]


# -- Verilator: the broad sweep ---------------------------------------------------------------

@pytest.mark.verilator
@pytest.mark.parametrize("cfg,p", [(V_SMALL, None), (V_BANKED, 2), (V_NARROW, 3)],
                         ids=["L4-spmv", "L8-banked-spmm", "L3-int4-spmm"])
def test_families_and_edge_cases_verilator(cfg, p):
    for i, (name, A) in enumerate(_families(120, 1) + _edge_cases(37, 90, 2)):
        _check(cfg, "verilator", A, p, seed=i)
        _check(cfg, "verilator", A[:, :min(A.shape[1], 60)], p, seed=i, extremes=True)


@pytest.mark.verilator
def test_wrapping_accumulator_and_long_rows_verilator():
    # uint4 x int4 = -120..105 per product: 400 of them wrap a 16-bit accumulator
    A = sp.csr_matrix(np.ones((5, 500), dtype=np.int64))
    rep = _check(V_NARROW, "verilator", A, 4, extremes=True)
    assert rep.jobs and len(rep.jobs) == 1


@pytest.mark.verilator
def test_tiling_verilator():
    # 700 columns > max_cols 320: 3 column blocks; 5000 entries > max_nnz 3000: row blocks;
    # 450 rows > max_rows 400
    cfg = V_SMALL
    A = smx.uniform(450, 700, 0.016, 3)
    rep = _check(cfg, "verilator", A)
    assert len({(j["c0"], j["c1"]) for j in rep.jobs}) == 3
    assert max(j["r1"] - j["r0"] for j in rep.jobs) <= cfg.max_rows
    assert all(j["entries"] <= cfg.max_nnz for j in rep.jobs)
    assert rep.job_cycles == sum(j["job_cycles"] for j in rep.jobs)
    # SpMM with more columns than dense_cols: column groups stream A again
    rep = _check(V_BANKED, "verilator", smx.uniform(60, 300, 0.05, 4), 5)
    assert len({(j["g0"], j["g1"]) for j in rep.jobs}) == 3
    assert len({(j["c0"], j["c1"]) for j in rep.jobs}) == 2


@pytest.mark.verilator
def test_stall_counters_verilator():
    # banked buffer, random columns: conflicts
    A = smx.short_rows(200, 250, 1, 3, seed=5)
    rep = _check(V_BANKED, "verilator", A, 2)
    assert rep.conflict_stall_cycles > 0
    # one entry per row, L = 3 rows per beat but one output row per result beat: the
    # output is the bottleneck
    rep = _check(V_NARROW, "verilator", smx.short_rows(90, 100, 1, 1, seed=6), 4)
    assert rep.output_stall_cycles > 0 and rep.conflict_stall_cycles == 0
    rep = _check(V_SMALL, "verilator", smx.uniform(40, 300, 0.2, 6))
    assert len(rep.jobs) == 1
    assert rep.conflict_stall_cycles == 0 and rep.output_stall_cycles == 0
    assert rep.input_stall_cycles == 1                      # pipeline fill only
    assert rep.load_cycles == -(-300 // V_SMALL.x_rows_per_beat)
    assert rep.lane_busy_cycles == rep.entries


def _job(dev, rm, rows, cols, entries):
    for name, v in (("ROWS", rows), ("COLS", cols), ("ENTRIES", entries)):
        dev.write(rm.offset(name), v)
    dev.write(rm.offset("CTRL"), 1)


@pytest.mark.verilator
def test_error_jobs_verilator():
    cfg = V_SMALL
    acc = _acc(cfg, "verilator")
    dev, rm = acc.device, acc.regmap
    status = rm.offset("STATUS")
    codes = {e.name: e.code for e in rm.errors}
    A = _values(cfg, smx.uniform(9, 40, 0.3, 7), 7)
    x = _dense(cfg, 40, 1, 8)[:, 0]
    plan = plan_spmv(cfg, A, x)
    frame = next(op[1] for op in plan.ops if op[0] == "send")
    E = plan.jobs[0].entries
    out_bytes = plan.jobs[0].out_bytes
    beat = cfg.stream_bits // 8

    def finish():
        return dev.wait(status, 0b11, 0b10, timeout_cycles=20_000)

    # rejected at the start: no result frame, the input frame is discarded
    for dims, code in [((0, 40, E), "BAD_DIM"), ((9, 0, E), "BAD_DIM"), ((9, 40, 0), "BAD_DIM"),
                       ((9, 40, 8), "BAD_DIM"), ((401, 40, 500), "OVER_LIMIT"),
                       ((9, 321, E), "OVER_LIMIT"), ((9, 40, 3001), "OVER_LIMIT")]:
        _job(dev, rm, *dims)
        dev.send(frame)
        st = finish()
        assert st & 0b100 and st >> 8 == codes[code], dims
        for _ in range(30):         # let the discarded frame go by before the next START
            dev.read(status)
    _check(cfg, "verilator", A)
    # failing while running: the result frame still comes, zero-padded
    for dims, data, code in [
            ((9, 35, E), frame, "COL_RANGE"),                   # columns 35..39 out of range
            ((8, 40, E), frame, "ROW_MISMATCH"),                # a ninth row ends
            ((9, 40, E), frame[:-beat], "SHORT_STREAM"),
            ((9, 40, E), frame + bytes(beat), "LONG_STREAM"),
            ((9, 40, E), frame[:beat], "SHORT_STREAM")]:        # ends inside X
        _job(dev, rm, *dims)
        dev.send(data)
        got = dev.recv(-(-dims[0] // cfg.rows_per_beat) * beat, timeout_cycles=20_000)
        st = finish()
        assert st & 0b100 and st >> 8 == codes[code], code
        assert len(got) == -(-dims[0] // cfg.rows_per_beat) * beat
        # the next job, started at once, skips the rest of the aborted frame
        y, _ = acc.spmv(A, x)
        np.testing.assert_array_equal(y, reference_spmm(cfg, A, x))
        _check(cfg, "verilator", A, seed=1)              # and counts as the model says
    # a row-count mismatch the other way: the final entry does not end the last row
    _job(dev, rm, 10, 40, E)
    dev.send(frame)
    dev.recv(-(-10 // cfg.rows_per_beat) * beat, timeout_cycles=20_000)
    assert finish() >> 8 == codes["ROW_MISMATCH"]
    # SOFT_RESET abandons a job waiting for its frame; the core is idle and usable again
    _job(dev, rm, 9, 40, E)
    assert dev.read(status) & 0b1
    dev.write(rm.offset("CTRL"), 0b10)
    assert dev.read(status) & 0b11 == 0
    _check(cfg, "verilator", A, seed=3)
    # the plan reports a failed job by name
    bad = plan_spmv(cfg, A, x)
    ops = [("write", op[1], 35) if op[0] == "write" and op[1] == rm.offset("COLS") else op
           for op in bad.ops]
    with pytest.raises(DeviceError, match="failed with error 3 \\(COL_RANGE\\)"):
        bad.assemble(dev.execute(ops, timeout_cycles=50_000))
    _check(cfg, "verilator", A, seed=2)


@pytest.mark.verilator
def test_row_check_drops_the_failing_beat_whole_verilator():
    """A beat whose rows do not match ROWS is not taken: the rows ended in earlier beats
    come back exact, every later row is zero. Both forms of the check: too many rows
    end (found at the beat that ends one row too many), and the final entry does not
    end a row although the count matches."""
    cfg = V_SMALL
    acc = _acc(cfg, "verilator")
    dev, rm = acc.device, acc.regmap
    codes = {e.name: e.code for e in rm.errors}
    L, N = cfg.lanes, 40
    A = _values(cfg, smx.uniform(9, N, 0.3, 7), 7)
    x = _dense(cfg, N, 1, 8)
    Y = reference_spmm(cfg, A, x)
    value, col, last, empty = csr_entries(A)
    E = len(value)
    x_segment = pack_sparse_frame(cfg, A, x)[:-len(pack_entries(cfg, value, col, last, empty))]

    def run(rows, last_flags):
        _job(dev, rm, rows, N, E)
        dev.send(x_segment + pack_entries(cfg, value, col, last_flags, empty))
        got = dev.recv(-(-rows // cfg.rows_per_beat) * cfg.stream_bits // 8,
                       timeout_cycles=20_000)
        st = dev.wait(rm.offset("STATUS"), 0b11, 0b10, timeout_cycles=20_000)
        assert st >> 8 == codes["ROW_MISMATCH"]
        return unpack_rows(cfg, got, rows)

    def expect(rows, last_flags, bad_beat):
        ends = np.flatnonzero(last_flags)
        kept = int(np.count_nonzero(ends // L < bad_beat))
        want = np.zeros((rows, 1), dtype=np.int64)
        want[:kept] = Y[:kept]
        return want

    # ROWS = 1..8: the beat that ends row ROWS + 1 fails, whether it ends one row too
    # many or more, and whether or not it is the final beat
    ends = np.flatnonzero(last)
    over_by_one = 0
    for rows in range(1, 9):
        bad = ends[rows] // L
        got = run(rows, last)
        np.testing.assert_array_equal(got, expect(rows, last, bad), err_msg=f"ROWS={rows}")
        over_by_one += bad < (E - 1) // L and np.count_nonzero(ends // L == bad) == \
            rows + 1 - np.count_nonzero(ends // L < bad)
    assert over_by_one, "no case ends exactly one row too many before the final beat"
    # the last row's final entry loses its flag to the entry before it (same row): nine
    # rows still end, but the final entry ends none
    assert ends[8] - ends[7] >= 2, "the test matrix's last row needs two entries"
    moved = last.copy()
    moved[E - 1], moved[E - 2] = 0, 1
    np.testing.assert_array_equal(run(9, moved), expect(9, moved, (E - 1) // L))
    _check(cfg, "verilator", A, seed=1)              # the core is usable and counts right


@pytest.mark.verilator
@pytest.mark.parametrize("cfg,p", [(V_SMALL, None), (V_BANKED, 2)], ids=["replicated", "banked"])
def test_backends_agree_on_results_and_counters(cfg, p):
    cases = [smx.barabasi_albert(30, 2, 1), _edge_cases(9, 20, 3)[0][1],
             smx.short_rows(25, 30, 1, 1, seed=2)]
    out = {}
    for backend in ("amaranth", "verilator"):
        runs = []
        for i, A in enumerate(cases):
            rep = _check(cfg, backend, A, p, seed=i)
            runs.append(rep.jobs)
        out[backend] = runs
    assert out["amaranth"] == out["verilator"]          # every counter of every job


# -- Amaranth simulator: more configurations, small problems ----------------------------------

@pytest.mark.parametrize("cfg", [
    SparseConfig(lanes=1, stream_bits=32, col_bits=6, max_cols=64),
    SparseConfig(lanes=5, a_dtype="uint16", x_dtype="int16", acc_bits=64, dense_cols=2,
                 stream_bits=256, col_bits=6, max_cols=64),
    SparseConfig(lanes=2, a_dtype="uint8", x_dtype="uint4", acc_bits=16, x_buffer="banked",
                 x_banks=2, stream_bits=64, col_bits=5, max_cols=32, max_nnz=40, max_rows=7),
], ids=["L1", "L5-int16-acc64", "L2-banked-tiny-limits"])
def test_configs_amaranth(cfg):
    cases = [smx.uniform(11, 13, 0.3, 1), _edge_cases(6, 9, 2)[0][1], smx.uniform(1, 40, 0.9, 3),
             smx.uniform(15, 1, 0.5, 4)]
    for i, A in enumerate(cases):
        _check(cfg, "amaranth", A, None, seed=i, extremes=i % 2 == 1)
    _check(cfg, "amaranth", smx.uniform(8, 10, 0.4, 5), 3, seed=5)


def test_plan_is_plain_tuples_and_replayable():
    cfg = SparseConfig(lanes=2, stream_bits=64, col_bits=5, max_cols=32)
    acc = _acc(cfg, "amaranth")
    A = _values(cfg, smx.uniform(5, 12, 0.4, 1), 1)
    x = _dense(cfg, 12, 1, 2)[:, 0]
    plan = acc.plan_spmv(A, x)
    assert {op[0] for op in plan.ops} == {"write", "read", "send", "recv", "wait"}
    for op in plan.ops:
        assert isinstance(op, tuple) and all(isinstance(v, (int, str, bytes)) for v in op)
    np.testing.assert_array_equal(plan.assemble(acc.device.execute(plan.ops)),
                                  reference_spmm(cfg, A, x))
    X = _dense(cfg, 12, 2, 3)
    plan = acc.plan_spmm(A.tocoo(), X)
    np.testing.assert_array_equal(plan.assemble(acc.device.execute(plan.ops)), A @ X)


def test_input_formats_and_checks():
    cfg = SparseConfig(lanes=2, stream_bits=64, col_bits=5, max_cols=32)
    acc = Accelerator(cfg, backend="amaranth")
    A = np.array([[1, 0, -3], [0, 0, 0]])
    x = np.array([2, 5, 1])
    for form in (A, sp.coo_matrix(A), sp.csc_array(A), sp.lil_matrix(A), sp.dok_matrix(A)):
        plan = acc.plan_spmv(form, x)
        assert plan.nnz == 2 and plan.jobs[0].entries == 3        # one placeholder
    # stored zeros are dropped, duplicates summed
    dup = sp.coo_matrix((np.array([1, 2, 0]), (np.array([0, 0, 1]), np.array([2, 2, 1]))),
                        shape=(2, 3))
    csr = to_csr("A", dup, cfg.a)
    assert csr.nnz == 1 and csr[0, 2] == 3
    value, col, last, empty = csr_entries(csr)
    assert list(last) == [1, 1] and list(empty) == [0, 1]
    with pytest.raises(ValueError, match="Shapes do not match for A @ x: A has 3 columns, "
                                         "x has length 4"):
        acc.plan_spmv(A, np.ones(4, dtype=np.int8))
    with pytest.raises(ValueError, match="Shapes do not match for A @ X: A has 3 columns, "
                                         "X has 2 rows"):
        acc.plan_spmm(A, np.ones((2, 2), dtype=np.int8))
    with pytest.raises(ValueError, match="x must be 1-D \\(use spmm for several columns\\)"):
        acc.plan_spmv(A, np.ones((3, 1), dtype=np.int8))
    with pytest.raises(TypeError, match="A must have an integer dtype \\(quantize first\\), "
                                        "not float64"):
        acc.plan_spmv(sp.random(3, 3, density=0.5, format="csr"), x)
    with pytest.raises(TypeError, match="x must have an integer dtype"):
        acc.plan_spmv(A, x.astype(np.float32))
    with pytest.raises(ValueError, match="A holds 200, outside int8 \\[-128, 127\\]"):
        acc.plan_spmv(sp.csr_matrix(np.array([[200, 0, 0]])), x)
    with pytest.raises(ValueError, match="X holds -129, outside int8"):
        acc.plan_spmm(A, np.full((3, 2), -129))
    with pytest.raises(TypeError, match="A must be a scipy.sparse matrix or a numpy array, "
                                        "not list"):
        acc.plan_spmv([[1, 2, 3]], x)
    with pytest.raises(ValueError, match="A must not be empty, but has shape \\(0, 3\\)"):
        acc.plan_spmv(np.zeros((0, 3), dtype=np.int8), x)
    with pytest.raises(ValueError, match="A must be 2-D, not 1-D"):
        acc.plan_spmv(np.ones(3, dtype=np.int8), x)
    with pytest.raises(TypeError, match="matmul needs a GEMM accelerator \\(GemmConfig\\); "
                                        "this one is the sparse accelerator"):
        acc.matmul(np.ones((2, 2), dtype=np.int8), np.ones((2, 2), dtype=np.int8))
    gemm = Accelerator(GemmConfig(rows=2, cols=2), backend="amaranth")
    with pytest.raises(TypeError, match="spmv needs the sparse accelerator \\(SparseConfig\\)"):
        gemm.spmv(A, x)
    with pytest.raises(TypeError, match="plan_spmm needs the sparse accelerator"):
        gemm.plan_spmm(A, np.ones((3, 1), dtype=np.int8))
