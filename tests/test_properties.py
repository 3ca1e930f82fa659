"""Property-based sweeps (hypothesis) on the Verilator backend: configs x shapes.

Every example runs the driver on the compiled RTL and checks C bit-exactly against
``reference_matmul`` and the counters against what is exact: MACs, the lower
bound, no output stalls (the backend's sink is always ready), compute cycles
within job cycles.

Profiles
--------
``accelgen-ci`` (the default here): derandomized, so the sampled configurations
(each one a Verilator build of ~20 s, cached in ``$ACCELGEN_CACHE``) are the same
on every run; a few configs, many shapes each.
``accelgen-large``: random, many more examples, larger shapes, more configs, for
long runs. Select it with ``ACCELGEN_HYPOTHESIS=large`` or
``pytest --hypothesis-profile=accelgen-large``.

Failing examples are kept: hypothesis' example database (``.hypothesis/``, local)
replays them first on the next run, and the ones found so far are pinned below as
explicit ``@example``s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, example, given, note, settings
from hypothesis import strategies as st

from accelgen.hdl.config import GemmConfig
from accelgen.hdl.dtypes import DTYPES, dtype
from accelgen.host.driver import Accelerator, reference_matmul
from accelgen.host.plan import Requant

pytestmark = pytest.mark.verilator

settings.register_profile(
    "accelgen-ci", max_examples=60, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "accelgen-large", max_examples=400, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_ALIASES = {"ci": "accelgen-ci", "large": "accelgen-large"}


def _profile() -> str:
    chosen = os.environ.get("ACCELGEN_HYPOTHESIS")
    if chosen:
        return _ALIASES.get(chosen, chosen)
    current = settings.get_current_profile_name()
    # --hypothesis-profile=... wins; otherwise the CI profile, not hypothesis' default
    return current if current != "default" else "accelgen-ci"


PROFILE = _profile()
LARGE = PROFILE != "accelgen-ci"
SETTINGS = settings.get_profile(PROFILE)
#: New Verilator builds one run of the random-config sweep may cost.
CONFIG_EXAMPLES = SETTINGS.max_examples if LARGE else 2
DIM_MAX = 64 if LARGE else 20

SMALL = dict(a_spad_kib=1, b_spad_kib=1, acc_kib=1)
#: Sampled once for CI (the driver tests build these same configurations, so their
#: Verilator models are shared): both dataflows, 4/8-bit operands of both
#: signednesses, 16/24/32-bit accumulators (wrapping), 64/128-bit streams.
CONFIGS = {
    "os2x2-int8": GemmConfig(rows=2, cols=2, **SMALL),
    "ws3x2-uint4-int4-acc16": GemmConfig(rows=3, cols=2, dataflow="ws", a_dtype="uint4",
                                         b_dtype="int4", acc_bits=16, stream_bits=64, **SMALL),
    "os3x2-int8-uint8-acc24": GemmConfig(rows=3, cols=2, dataflow="os", a_dtype="int8",
                                         b_dtype="uint8", acc_bits=24, stream_bits=128, **SMALL),
}


@dataclass(frozen=True)
class Case:
    """One property example: shapes, operand values and the call's modes."""

    m: int
    k: int
    n: int
    fill: str = "random"          # random | extreme | sparse
    seed: int = 0
    mode: str = "plain"           # plain | requant | accumulate
    rq_mult: int = 1
    rq_shift: int = 0
    relu: bool = False


def _dims():
    edges = st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9])
    return st.one_of(edges, st.integers(1, DIM_MAX))


@st.composite
def cases(draw) -> Case:
    m, n = draw(_dims()), draw(_dims())
    # K up to a few hundred sometimes: longer than the scratchpads hold, so the
    # driver splits K across jobs (NO_OUTPUT and ACCUMULATE jobs)
    k = draw(st.one_of(_dims(), st.integers(200, 700 if LARGE else 400)))
    mode = draw(st.sampled_from(["plain", "requant", "accumulate"]))
    return Case(m, k, n, fill=draw(st.sampled_from(["random", "extreme", "sparse"])),
                seed=draw(st.integers(0, 2**32 - 1)), mode=mode,
                rq_mult=draw(st.integers(1, 65535)), rq_shift=draw(st.integers(0, 24)),
                relu=draw(st.booleans()))


@st.composite
def configs(draw) -> GemmConfig:
    a, b = draw(st.sampled_from(sorted(DTYPES))), draw(st.sampled_from(sorted(DTYPES)))
    # the PEs' product width: one bit more when the signedness differs
    prod = dtype(a).bits + dtype(b).bits + (dtype(a).signed != dtype(b).signed)
    acc = draw(st.sampled_from([w for w in (16, 24, 32, 40, 48, 64) if w >= prod]))
    return GemmConfig(rows=draw(st.integers(1, 4)), cols=draw(st.integers(1, 4)),
                      dataflow=draw(st.sampled_from(["os", "ws"])), a_dtype=a, b_dtype=b,
                      acc_bits=acc, stream_bits=draw(st.sampled_from([32, 64, 128, 256])),
                      double_buffer=draw(st.booleans()), requant=draw(st.booleans()), **SMALL)


_accelerators: dict = {}


def _accelerator(cfg: GemmConfig) -> Accelerator:
    """One device per config for the session: the build is the slow part."""
    if cfg not in _accelerators:
        _accelerators[cfg] = Accelerator(cfg, backend="verilator")
    return _accelerators[cfg]


def _operands(cfg: GemmConfig, rng, m, k, n, fill):
    A = rng.integers(cfg.a.min, cfg.a.max + 1, (m, k))
    B = rng.integers(cfg.b.min, cfg.b.max + 1, (k, n))
    if fill == "extreme":
        A = np.where(rng.random((m, k)) < 0.5, cfg.a.min, cfg.a.max)
        B = np.where(rng.random((k, n)) < 0.5, cfg.b.min, cfg.b.max)
    elif fill == "sparse":
        A = np.where(rng.random((m, k)) < 0.8, 0, A)
        B = np.where(rng.random((k, n)) < 0.8, 0, B)
    return A.astype(np.int64), B.astype(np.int64)


def _check_report(cfg: GemmConfig, case: Case, rep) -> None:
    assert rep.macs == case.m * case.k * case.n
    assert rep.job_cycles >= rep.lower_bound_cycles, (rep.job_cycles, rep.lower_bound_cycles)
    ceil = lambda a, b: -(-a // b)                        # noqa: E731
    for job in rep.jobs:
        what = f"job {job}"
        assert job["macs"] == job["m"] * job["k"] * job["n"], what
        assert job["out_stall_cycles"] == 0, what          # the backend's sink never stalls
        assert ceil(job["macs"], cfg.rows * cfg.cols) <= job["compute_cycles"], what
        assert job["compute_cycles"] <= job["job_cycles"], what


def check_case(cfg: GemmConfig, case: Case) -> None:
    acc = _accelerator(cfg)
    rng = np.random.default_rng(case.seed)
    A, B = _operands(cfg, rng, case.m, case.k, case.n, case.fill)
    requant = None
    if case.mode == "requant" and cfg.requant:
        requant = Requant(case.rq_mult, case.rq_shift, case.relu)
    prev = None
    if case.mode == "accumulate":
        mt, _, nt = acc.plan_matmul(A, B).tiling
        assume(mt >= case.m and nt >= case.n)              # C must stay in the accumulators
        A0, B0 = _operands(cfg, rng, case.m, case.k, case.n, "random")
        C0, rep0 = acc.matmul(A0, B0)
        np.testing.assert_array_equal(C0, reference_matmul(cfg, A0, B0))
        prev = reference_matmul(cfg, A0, B0)
    note(f"config {cfg.describe()} ({cfg.to_json()})")
    C, rep = acc.matmul(A, B, accumulate=prev is not None, requant=requant)
    note(f"tiling {rep.tiling}, {len(rep.jobs)} jobs")
    event(f"mode {case.mode if requant or case.mode != 'requant' else 'plain'}")
    event("several jobs" if len(rep.jobs) > 1 else "one job")
    if any(j["k"] < case.k for j in rep.jobs):
        event("K split across jobs")
    np.testing.assert_array_equal(C, reference_matmul(cfg, A, B, C_prev=prev, requant=requant))
    _check_report(cfg, case, rep)


@pytest.mark.parametrize("name", CONFIGS)
@settings(SETTINGS)
@given(case=cases())
@example(case=Case(1, 1, 1))
@example(case=Case(9, 401, 7, fill="extreme", mode="plain"))           # K split, wraps
@example(case=Case(5, 3, 4, fill="extreme", mode="requant", rq_mult=65535, rq_shift=0))
@example(case=Case(4, 9, 3, mode="accumulate"))
def test_matmul_matches_numpy(name, case):
    check_case(CONFIGS[name], case)


@settings(SETTINGS, max_examples=CONFIG_EXAMPLES)
@given(cfg=configs(), case=cases())
@example(cfg=GemmConfig(rows=1, cols=3, dataflow="ws", a_dtype="int16", b_dtype="uint4",
                        acc_bits=24, stream_bits=32, double_buffer=False, **SMALL),
         case=Case(3, 11, 5, fill="extreme"))
def test_random_configs_match_numpy(cfg, case):
    """Configurations drawn too (each new one is a Verilator build: few in CI)."""
    check_case(cfg, case)


def test_config_rejects_unbuildable_accumulator():
    """Found by the random-config sweep: a config that validates must elaborate."""
    from accelgen.hdl.generate import verilog_text

    with pytest.raises(ValueError, match="at least the product width 33 \\(int16 x uint16\\)"):
        GemmConfig(rows=1, cols=1, a_dtype="int16", b_dtype="uint16", acc_bits=32, **SMALL)
    # the narrowest accepted accumulator elaborates
    verilog_text(GemmConfig(rows=1, cols=1, a_dtype="int8", b_dtype="uint8", acc_bits=24, **SMALL))
