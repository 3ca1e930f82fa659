"""cocotb testbench of the sparse MAC accelerator's generated Verilog, on Verilator
and on Icarus (and a banked-buffer configuration on Icarus).

Each runner builds the design (cached, as in ``tests/test_cocotb.py``), runs every
test of ``accelgen.sim.cocotb.tb_sparse`` in one simulator process and prints a
summary line per simulator, e.g. ``cocotb[icarus, sparse-L4P2]: 62 passed, 0 failed
in 20 s``. ``ACCELGEN_COCOTB_FILTER`` and ``ACCELGEN_WAVES`` work as there.
"""

from __future__ import annotations

import os

import pytest

from accelgen.hdl.generate import generate
from accelgen.hdl.sparse_config import SparseConfig
from accelgen.sim.cocotb import runner
from accelgen.sim.cocotb.sparse_jobs import SPARSE_DATA_SCENARIOS, sparse_scenarios
from accelgen.sim.cocotb.testbench import STALL_PATTERNS

from test_cocotb import SIMS, _announce

#: The main configuration: 4 lanes, int8 x int8 into 16-bit accumulators (the
#: extreme-value rows wrap them), 2 columns of X per job (SpMV pads X; SpMM with 3
#: columns needs two column groups), 64-bit streams (16-bit entry slots, 4 rows of X
#: and 2 result rows per beat) and small limits, so that the scenarios exercise row
#: blocks, column blocks and every over-limit error at small sizes and the build
#: stays quick. The N x 1 case's first job (max_rows one-entry rows: 4 rows in, 2 out
#: per cycle) fills the result queue, so a stall-free job has output stalls for the
#: model to predict.
CONFIG = SparseConfig(lanes=4, acc_bits=16, dense_cols=2, col_bits=6, max_cols=64,
                      max_rows=120, max_nnz=400, stream_bits=64)
#: A banked dense buffer (4 banks: bank conflicts, arbitration under stalls), SpMV
#: hardware (P = 1), uint8 x int4 (mixed signedness) into 32 bits. Icarus only: a
#: second Verilator build would cost another half minute.
BANKED = SparseConfig(lanes=4, a_dtype="uint8", x_dtype="int4", acc_bits=32, col_bits=6,
                      max_cols=64, max_rows=120, max_nnz=400, x_buffer="banked", x_banks=4,
                      stream_bits=64)
CONFIGS = {"sparse-L4P2": CONFIG, "sparse-banked4": BANKED}


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    made = {}

    def get(name: str):
        if name not in made:
            made[name] = generate(CONFIGS[name], tmp_path_factory.mktemp(f"design-{name}"))
        return made[name]
    return get


def _run_suite(sim, name, design, tmp_path, capsys, record_property):
    design = design(name)
    waves = runner.waves_requested()
    build_dir = runner.build(sim, design, waves=waves)
    test_filter = os.environ.get("ACCELGEN_COCOTB_FILTER")
    result = runner.run(sim, design, build_dir, tmp_path / "run", test_filter=test_filter,
                        waves=waves)
    label = f"{sim}, {name}"
    _announce(capsys, record_property, result.summary(label))
    if result.waves:
        _announce(capsys, record_property, f"cocotb[{label}]: waves {result.waves}")
    assert result.tests > 0, result.report()
    assert result.failed == 0, result.report()
    if not test_filter:
        # the crossing is all there: every scenario x idle x backpressure pattern
        crossed = len(SPARSE_DATA_SCENARIOS) * len(STALL_PATTERNS) ** 2
        assert sum(n.startswith("data/") for n in result.names) == crossed, result.names
    return result


@pytest.mark.parametrize("sim", SIMS)
def test_cocotb_sparse(sim, design, tmp_path, capsys, record_property):
    """Every cocotb test of the sparse top: data scenarios crossed with input idle and
    output backpressure patterns, CSR map, back-to-back jobs, error jobs."""
    _run_suite(sim, "sparse-L4P2", design, tmp_path, capsys, record_property)


@pytest.mark.icarus
def test_cocotb_sparse_banked(design, tmp_path, capsys, record_property):
    """Every cocotb test on the banked-buffer configuration (Icarus)."""
    _run_suite("icarus", "sparse-banked4", design, tmp_path, capsys, record_property)


def test_runner_picks_the_sparse_testbench(design):
    """The runner's default test module follows the design's kind."""
    assert runner.test_module_for(design("sparse-L4P2")) == "accelgen.sim.cocotb.tb_sparse"
    assert runner.TEST_MODULE == "accelgen.sim.cocotb.tb_gemm"


def test_scenarios_cover_the_issue():
    """The workloads are what the testbench's documentation promises: uniform at 50%,
    5% and 0.5%, banded, the edge cases, SpMM; every call's expected result is
    scipy's, and plans tile over the limits."""
    scenarios = sparse_scenarios(CONFIG)
    names = [c.name for s in scenarios.values() for c in s.calls]
    for want in ("uniform 50%", "uniform 5%", "uniform 0.5%", "banded", "empty rows",
                 "one dense row", "all zero", "1xN", "Nx1", "extremes", "spmm P+1 columns"):
        assert want in names
    extremes = next(c for c in scenarios["edges"].calls if c.name == "extremes")
    assert set(extremes.A.data) == {CONFIG.a.min, CONFIG.a.max}
    # the extreme rows overflow 16 bits: the expected results are wrapped
    assert abs(extremes.A @ extremes.X).max() >= 1 << (CONFIG.acc_bits - 1)
