# amaranth: UnusedElaboratable=no
"""The analytic cycle model against the hardware's own counters (Verilator backend).

Small cases across dataflows, array shapes, operand types, stream widths (narrower
and wider than a scratchpad word or a result row), double buffering on and off,
requantization, N:M sparsity, and calls the driver tiles into several jobs (K split:
partial-sum jobs without output). Every job's predicted counters must be within 1%
of the RTL's; the call-level wrapper (:func:`accelgen.host.callmodel.predict_call`)
must equal the driver's per-job sum. The deviations seen are printed with ``-s``.

The configurations are the ones other test modules build (driver, properties,
cocotb), so their Verilator models are shared through the build cache; only the
OS no-double-buffering one is new (a 2x2 array: a short build).
"""

import numpy as np
import pytest

from accelgen.hdl import GemmConfig
from accelgen.host import Accelerator, Requant, reference_matmul
from accelgen.host.callmodel import predict_call, call_jobs
from accelgen.host.model import predict, scalesim_cycles, lower_bound_cycles

pytestmark = pytest.mark.verilator

SMALL = dict(a_spad_kib=1, b_spad_kib=1, acc_kib=1)
TOLERANCE = 0.01

#: name -> config; comments say which other test builds the same one.
CONFIGS = {
    # test_verilator_backend, test_cocotb, test_properties
    "os2x2": GemmConfig(rows=2, cols=2, **SMALL),
    # test_cocotb: WS, int4 x uint8, 24-bit accumulators, 32-bit stream (rows wider than a beat)
    "ws3x2-s32": GemmConfig(rows=3, cols=2, dataflow="ws", a_dtype="int4", b_dtype="uint8",
                            acc_bits=24, stream_bits=32, **SMALL),
    # test_driver ARRAYS: rectangular arrays, both dataflows
    "os8x4": GemmConfig(rows=8, cols=4, **SMALL),
    "ws4x8": GemmConfig(rows=4, cols=8, dataflow="ws", **SMALL),
    "os3x5": GemmConfig(rows=3, cols=5, **SMALL),
    # test_driver TYPE_CONFIGS: 128- and 512-bit streams (several words per beat)
    "os3x2-s128": GemmConfig(rows=3, cols=2, a_dtype="int8", b_dtype="uint8", acc_bits=24,
                             stream_bits=128, **SMALL),
    "os3x2-s512": GemmConfig(rows=3, cols=2, a_dtype="int16", b_dtype="int8", acc_bits=32,
                             stream_bits=512, **SMALL),
    # test_properties' pinned example: WS without double buffering, words wider than a beat
    "ws1x3-nodb": GemmConfig(rows=1, cols=3, dataflow="ws", a_dtype="int16", b_dtype="uint4",
                             acc_bits=24, stream_bits=32, double_buffer=False, **SMALL),
    # new here: OS without double buffering
    "os2x2-nodb": GemmConfig(rows=2, cols=2, double_buffer=False, **SMALL),
    # test_driver N:M tests
    "os2x3-2of4": GemmConfig(rows=2, cols=3, sparsity="2:4", **SMALL),
}

#: (m, k, n): one element, exact tiles, ragged edges, GEMV both ways, long K, and calls
#: the 1 KiB memories split into several jobs (M/N tiles, K chunks without output).
SHAPES = [(1, 1, 1), (6, 12, 8), (7, 13, 11), (1, 40, 9), (9, 40, 1), (5, 37, 4),
          (29, 150, 23)]

_accs = {}
DEVIATIONS = []


def _acc(cfg):
    if cfg not in _accs:
        _accs[cfg] = Accelerator(cfg, backend="verilator")
    return _accs[cfg]


def _operands(cfg, m, k, n, seed):
    rng = np.random.default_rng(seed)
    A = rng.integers(cfg.a.min, cfg.a.max + 1, (m, k))
    B = rng.integers(cfg.b.min, cfg.b.max + 1, (k, n))
    if cfg.sparsity != "dense":
        from accelgen.host import prune_nm
        B = prune_nm(B, *cfg.nm)
    return A, B


def _rel(model, hw):
    return (model - hw) / hw if hw else float(model != hw)


def _check_call(name, cfg, m, k, n, seed, requant=None):
    acc = _acc(cfg)
    A, B = _operands(cfg, m, k, n, seed)
    C, rep = acc.matmul(A, B, requant=requant)
    np.testing.assert_array_equal(C, reference_matmul(cfg, A, B, requant=requant))
    plan = acc.plan_matmul(A, B, requant=requant)
    assert len(plan.jobs) == len(rep.jobs)
    for job, hw in zip(plan.jobs, rep.jobs):
        p = predict(cfg, job.m, job.k, job.n, requant=job.requant, no_output=not job.emits)
        for field, key in (("job_cycles", "job_cycles"), ("compute_cycles", "compute_cycles")):
            model, real = getattr(p, field), hw[key]
            err = _rel(model, real)
            DEVIATIONS.append((name, (m, k, n), (job.m, job.k, job.n), requant is not None,
                               not job.emits, field, model, real, err))
            assert abs(err) <= TOLERANCE, (
                f"{name} {cfg.describe()}: job {job.m}x{job.k}x{job.n} of call {m}x{k}x{n} "
                f"(requant={requant is not None}, no_output={not job.emits}): model {field} "
                f"{model} vs RTL {real} ({err:+.3%})")
        assert p.macs == hw["macs"]
    # the call-level wrapper is the driver's tiling summed
    call = predict_call(cfg, m, k, n, requant=requant is not None)
    assert call.job_cycles == rep.model_job_cycles
    assert call.jobs == len(rep.jobs) and call.tiling == tuple(rep.tiling)
    assert (call.input_bytes, call.output_bytes) == (plan.input_bytes, plan.output_bytes)
    assert abs(_rel(call.job_cycles, rep.job_cycles)) <= TOLERANCE
    return rep


@pytest.mark.parametrize("name", list(CONFIGS))
def test_model_matches_rtl_counters(name):
    cfg = CONFIGS[name]
    for i, (m, k, n) in enumerate(SHAPES):
        _check_call(name, cfg, m, k, n, seed=i)
    if cfg.requant:
        _check_call(name, cfg, 7, 13, 11, seed=99, requant=Requant(5, 9))
        _check_call(name, cfg, 29, 150, 23, seed=98, requant=Requant(3, 7, relu=True))


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_model_matches_rtl_on_the_default_8x8(dataflow):
    """The benchmark's configs: one job of 64^3 and a 200x72x136 call tiled by the driver."""
    cfg = GemmConfig(dataflow=dataflow)
    rep = _check_call(f"8x8-{dataflow}", cfg, 64, 64, 64, seed=1)
    assert rep.job_cycles == predict_call(cfg, 64, 64, 64).job_cycles
    _check_call(f"8x8-{dataflow}", cfg, 200, 72, 136, seed=2)
    _check_call(f"8x8-{dataflow}", cfg, 33, 40, 17, seed=3, requant=Requant(7, 10))


#: The small-FPGA options: serial setup (setup_cycles longer, divisions by non-powers of
#: two on the shift-add multiplier in OS and WS), narrow counters, fields-only CSRs.
EXACT_CONFIGS = {
    "os2x2-ice40": "ice40-os",      # the iCE40 table's options, output-stationary
    "ws3x3-serial": GemmConfig(rows=3, cols=3, dataflow="ws", serial_setup=True, counter_bits=32,
                               **SMALL),
    "os3x2-2of4-serial": GemmConfig(rows=3, cols=2, sparsity="2:4", serial_setup=True,
                                    counter_bits=40, csr_fields_only=True, **SMALL),
}


@pytest.mark.parametrize("name", list(EXACT_CONFIGS))
def test_model_equals_rtl_with_small_fpga_options(name):
    cfg = EXACT_CONFIGS[name]
    if cfg == "ice40-os":
        from accelgen.boards.table import ice40_config
        cfg = ice40_config(2, dataflow="os")
    acc = _acc(cfg)
    for i, (m, k, n) in enumerate([(1, 1, 1), (7, 13, 11), (29, 150, 23)]):
        A, B = _operands(cfg, m, k, n, seed=i)
        C, rep = acc.matmul(A, B)
        np.testing.assert_array_equal(C, reference_matmul(cfg, A, B))
        for job, hw in zip(acc.plan_matmul(A, B).jobs, rep.jobs):
            p = predict(cfg, job.m, job.k, job.n, no_output=not job.emits)
            assert (p.job_cycles, p.compute_cycles, p.input_stall_cycles, p.macs) == (
                hw["job_cycles"], hw["compute_cycles"], hw["in_stall_cycles"], hw["macs"]), (
                name, (m, k, n), (job.m, job.k, job.n))


def test_call_jobs_follow_the_plan():
    # shape-only: no simulation; the job list equals build_plan's, modes included
    from accelgen.host.plan import build_plan
    cfg = CONFIGS["os3x5"]
    A, B = _operands(cfg, 29, 150, 23, 0)
    plan = build_plan(cfg, A, B, requant=Requant(1, 0))
    jobs = call_jobs(cfg, 29, 150, 23, requant=True)
    assert sum(jobs.values()) == len(plan.jobs)
    from collections import Counter
    seen = Counter((j.m, j.k, j.n, j.requant, not j.emits) for j in plan.jobs)
    assert seen == Counter({(j.m, j.k, j.n, j.requant, j.no_output): c for j, c in jobs.items()})


def test_predict_call_rejects_bad_arguments():
    with pytest.raises(ValueError, match="M must be a positive integer, not 0"):
        predict_call(GemmConfig(), 0, 4, 4)
    with pytest.raises(TypeError, match="predict_call needs a GemmConfig"):
        predict_call(object(), 4, 4, 4)


def test_anchor_closed_forms():
    # SCALE-Sim 3.0 closed forms (design notes) and the lower bound, by hand
    cfg = GemmConfig()
    assert scalesim_cycles(cfg, 128, 128, 128) == 16 * 16 * (128 + 14) - 1
    assert scalesim_cycles(cfg.replace(dataflow="ws"), 128, 128, 128) == 16 * 16 * (128 + 22) - 1
    assert lower_bound_cycles(cfg, 128, 128, 128) == 128 ** 3 // 64
    assert lower_bound_cycles(cfg, 1, 768, 768) == (768 + 768 * 768) // 8


def teardown_module(module):
    for acc in _accs.values():
        acc.close()
    if DEVIATIONS:
        worst = max(DEVIATIONS, key=lambda d: abs(d[-1]))
        nonzero = [d for d in DEVIATIONS if d[-1] != 0]
        print(f"\nmodel vs RTL: {len(DEVIATIONS)} job counters compared, {len(nonzero)} "
              f"differ; worst {worst[5]} {worst[6]} vs {worst[7]} ({worst[-1]:+.3%}) on "
              f"{worst[0]} call {worst[1]} job {worst[2]}")
        for d in nonzero:
            print(f"  {d[0]} call {d[1]} job {d[2]} requant={d[3]} no_output={d[4]}: "
                  f"{d[5]} model {d[6]} RTL {d[7]} ({d[-1]:+.3%})")
