"""cocotb testbenches on the generated Verilog, on Verilator and on Icarus.

Each runner builds the design (cached), runs every test of
``accelgen.sim.cocotb.tb_gemm`` in one simulator process and prints a summary
line per simulator, e.g. ``cocotb[icarus, os2x2]: 67 passed, 0 failed in 30 s``.

Environment:

``ACCELGEN_COCOTB_FILTER``
    A regular expression of cocotb test names to run (default: all), e.g.
    ``csr_`` or ``data/scenario=single/idle=none``.
``ACCELGEN_WAVES=1``
    Dump waveforms; the path (and each failing test's time window) is printed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from accelgen.hdl.config import GemmConfig
from accelgen.hdl.generate import generate
from accelgen.sim.cocotb import runner
from accelgen.sim.cocotb.jobs import (EQUIVALENCE_SCENARIOS, run_on_device, save_golden,
                                      scenarios)

from conftest import tool_problem

SMALL = dict(a_spad_kib=1, b_spad_kib=1, acc_kib=1)
#: The main configuration and a weight-stationary one with mixed operand types, a
#: 40-bit accumulator and a 32-bit stream (result rows span three beats). The driver
#: tests use the same two configurations, so the Verilator backend builds that give
#: the reference counters are shared.
CONFIGS = {
    "os2x2": GemmConfig(rows=2, cols=2, **SMALL),
    "ws3x2": GemmConfig(rows=3, cols=2, dataflow="ws", a_dtype="uint8", b_dtype="int16",
                        acc_bits=40, stream_bits=32, **SMALL),
}

SIMS = [pytest.param("verilator", marks=pytest.mark.verilator, id="verilator"),
        pytest.param("icarus", marks=pytest.mark.icarus, id="icarus")]

VERILATOR_TOOLS = ("verilator", "g++", "make", "perl")


@pytest.fixture(scope="session")
def design_dir(tmp_path_factory):
    made = {}

    def design(name: str):
        if name not in made:
            made[name] = generate(CONFIGS[name], tmp_path_factory.mktemp(f"design-{name}"))
        return made[name]
    return design


def _verilator_runs(config: GemmConfig, names) -> dict:
    from accelgen.sim.verilator_backend import VerilatorDevice

    all_scenarios = scenarios(config)
    with VerilatorDevice(config) as dev:
        return {name: run_on_device(config, all_scenarios[name], dev) for name in names}


@pytest.fixture(scope="session")
def golden(tmp_path_factory):
    """Path of the Verilator backend's runs of every scenario (stall-free reference
    counters for the testbench), or None without Verilator."""
    made = {}

    def get(name: str):
        if name not in made:
            if tool_problem(*VERILATOR_TOOLS):
                made[name] = None
            else:
                cfg = CONFIGS[name]
                path = tmp_path_factory.mktemp(f"golden-{name}") / "golden.json"
                save_golden(path, cfg, _verilator_runs(cfg, scenarios(cfg)))
                made[name] = path
        return made[name]
    return get


def _announce(capsys, record_property, line: str) -> None:
    # shown in `make test` output (pytest captures prints otherwise) and kept in the
    # test report's properties (survives pytest-xdist)
    record_property("cocotb", line)
    with capsys.disabled():
        print(f"\n{line}", flush=True)


def _run_suite(sim, config_name, design_dir, golden, tmp_path, capsys, record_property,
               *, test_filter=None):
    design = design_dir(config_name)
    waves = runner.waves_requested()
    build_dir = runner.build(sim, design, waves=waves)
    env = {}
    ref = golden(config_name)
    if ref is not None:
        env["ACCELGEN_GOLDEN"] = str(ref)
    result = runner.run(sim, design, build_dir, tmp_path / "run",
                        test_filter=test_filter or os.environ.get("ACCELGEN_COCOTB_FILTER"),
                        extra_env=env, waves=waves)
    label = f"{sim}, {config_name}"
    _announce(capsys, record_property, result.summary(label)
              + ("" if ref is not None else " (no Verilator reference counters)"))
    if result.waves:
        _announce(capsys, record_property, f"cocotb[{label}]: waves {result.waves}")
    assert result.tests > 0, result.report()
    assert result.failed == 0, result.report()
    return result


@pytest.mark.parametrize("sim", SIMS)
def test_cocotb(sim, design_dir, golden, tmp_path, capsys, record_property):
    """Every cocotb test on the main configuration."""
    result = _run_suite(sim, "os2x2", design_dir, golden, tmp_path, capsys, record_property)
    if not os.environ.get("ACCELGEN_COCOTB_FILTER"):
        # the crossing is all there: 3 scenarios x 4 idle x 4 backpressure patterns
        assert sum(n.startswith("data/") for n in result.names) == 48, result.names


@pytest.mark.slow
@pytest.mark.icarus
def test_cocotb_weight_stationary(design_dir, golden, tmp_path, capsys, record_property):
    """Every cocotb test on a weight-stationary configuration (Icarus: a Verilator
    build of a second design would cost another minute)."""
    _run_suite("icarus", "ws3x2", design_dir, golden, tmp_path, capsys, record_property)


@pytest.mark.verilator
@pytest.mark.icarus
def test_cross_simulator_equivalence(design_dir, tmp_path, capsys, record_property):
    """The same jobs on the Amaranth backend, the Verilator backend and cocotb on
    Icarus (with the canonical cycle protocol) give identical C and identical
    counter values."""
    from accelgen.sim.amaranth_backend import AmaranthDevice

    name = "os2x2"
    cfg = CONFIGS[name]
    all_scenarios = scenarios(cfg)
    with AmaranthDevice(cfg) as dev:
        amaranth = {n: run_on_device(cfg, all_scenarios[n], dev) for n in EQUIVALENCE_SCENARIOS}
    verilator = _verilator_runs(cfg, EQUIVALENCE_SCENARIOS)
    design = design_dir(name)
    out = tmp_path / "cocotb.json"
    result = runner.run("icarus", design, runner.build("icarus", design), tmp_path / "run",
                        test_filter="canonical_equivalence",
                        extra_env={"ACCELGEN_COCOTB_RESULTS": str(out)})
    assert result.tests == 1 and result.failed == 0, result.report()
    icarus = json.loads(out.read_text())
    jobs = 0
    for scenario in EQUIVALENCE_SCENARIOS:
        a, v, i = amaranth[scenario], verilator[scenario], icarus[scenario]
        for call, (ca, cv, ci) in enumerate(zip(a["C"], v["C"], i["C"])):
            np.testing.assert_array_equal(np.array(ca), np.array(cv))
            np.testing.assert_array_equal(np.array(ca), np.array(ci))
        assert a["counters"] == v["counters"], f"{scenario}: Amaranth vs Verilator backend"
        assert a["counters"] == i["counters"], f"{scenario}: Amaranth backend vs cocotb/Icarus"
        jobs += sum(len(c) for c in a["counters"])
    _announce(capsys, record_property,
              f"cocotb[equivalence]: {jobs} jobs identical on Amaranth, Verilator, Icarus")


def test_results_parsing(tmp_path):
    """The summary line comes from cocotb's results file."""
    xml = tmp_path / "results.xml"
    xml.write_text(
        '<testsuites><testsuite name="all">'
        '<testcase name="a" classname="m" sim_time_ns="100"/>'
        '<testcase name="b" classname="m" sim_time_ns="50"><failure message="boom"/></testcase>'
        '<testcase name="c" classname="m" sim_time_ns="0"><skipped/></testcase>'
        '<testcase name="d" classname="m"><properties>'
        '<property name="sim_time_start" value="200.0"/><property name="sim_time_stop" '
        'value="260.5"/></properties></testcase>'
        '</testsuite></testsuites>')
    run = runner.parse_results(xml, "icarus")
    assert (run.tests, run.failed, run.skipped, run.passed) == (4, 1, 1, 2)
    assert run.failures == [("b", "boom")]
    assert run.windows["b"] == (100.0, 150.0)
    assert run.windows["d"] == (200.0, 260.5)
    assert run.summary().startswith("cocotb[icarus]: 2 passed, 1 failed, 1 skipped")
