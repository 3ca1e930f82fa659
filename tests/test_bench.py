# amaranth: UnusedElaboratable=no
"""``accelgen bench --quick``: the outputs' shape, and the model within 1% of the RTL on
every workload the run measured on the RTL.

Benchmarks are not tests: nothing here asserts a speed or a utilization. The run
builds (or loads from the cache) the Verilator models of the 8x8 OS and WS arrays
and of the sparse engine.
"""

import json
import struct

import pytest

from accelgen.host.cli import main
from accelgen.host.workloads import WORKLOADS, SPARSE_WORKLOADS

pytestmark = [pytest.mark.verilator, pytest.mark.slow]

PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = ("utilization", "scalesim_ratio", "roofline", "amdahl", "sparse_density")
GEMM_FIELDS = ("workload", "config", "source", "m", "k", "n", "jobs", "tiling", "job_cycles",
               "compute_cycles", "input_stall_cycles", "output_stall_cycles", "macs",
               "model_job_cycles", "model_error", "scalesim_cycles", "job_to_scalesim",
               "compute_to_scalesim", "lower_bound_cycles", "job_to_lower_bound",
               "utilization", "clock_mhz", "clock_source", "projected_s",
               "speedup_vs_numpy_f32", "speedup_vs_numpy_int", "roofline", "input_bytes",
               "output_bytes", "pack_s", "correct")
SPARSE_FIELDS = ("workload", "config", "source", "nnz", "density", "job_cycles",
                 "model_job_cycles", "model_error", "lane_utilization", "lower_bound_cycles",
                 "projected_s", "speedup_vs_scipy_f32", "dense_array_model_cycles", "correct")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    status = main(["bench", "--quick", "--out", str(out)])
    assert status == 0
    return out, json.loads((out / "bench.json").read_text())


def test_outputs_exist(quick):
    out, res = quick
    assert (out / "report.md").stat().st_size > 1000
    for name in FIGURES:
        data = (out / f"{name}.png").read_bytes()
        assert data.startswith(PNG), name
        width, height = struct.unpack(">II", data[16:24])
        assert width > 300 and height > 200 and len(data) > 10_000, name
    assert set(res["figures"]) >= set(FIGURES)


def test_json_shape(quick):
    _, res = quick
    for key in ("schema", "command", "created", "machine", "tools", "configs", "workloads",
                "sparse_workloads", "gemm", "sparse", "baselines", "host_side", "amdahl",
                "summary", "elapsed_s", "notes"):
        assert key in res, key
    assert res["quick"] is True and res["command"].startswith("accelgen bench --quick")
    assert {"verilator", "amaranth", "python"} <= set(res["tools"])
    assert {"cpu", "logical_cpus", "numpy", "blas"} <= set(res["machine"])
    keys = {c["key"]: c for c in res["configs"]}
    assert {"os", "ws", "os_2of4", "sparse"} <= set(keys)
    for c in keys.values():
        assert c["clock_mhz"] > 0 and c["clock_source"] in ("synthesized", "assumed")
        assert [l["key"] for l in c["links"]] == ["axi_dma", "pcie3x4", "uart3m"]
        assert c["config"]["kind"] in ("gemm", "sparse")
    assert keys["os"]["peak_macs_per_cycle"] == 64 and keys["os"]["input_bytes_per_cycle"] == 8
    # every dense workload on both dense configs; the N:M config on the nm-tagged ones
    rows = {(r["workload"], r["config"]): r for r in res["gemm"]}
    for w in WORKLOADS:
        assert (w.name, "os") in rows and (w.name, "ws") in rows
        assert ((w.name, "os_2of4") in rows) == ("nm" in w.tags)
    for r in res["gemm"]:
        assert set(GEMM_FIELDS) <= set(r), set(GEMM_FIELDS) - set(r)
        assert r["source"] in ("rtl", "model")
        assert r["job_cycles"] >= r["lower_bound_cycles"] > 0
        assert 0 < r["utilization"] <= 1
        assert r["roofline"]["achieved_macs_per_cycle"] <= r["roofline"]["attainable_macs_per_cycle"] + 1e-9
    # --quick: small calls on the RTL, large ones by the model, both present
    for cfg in ("os", "ws"):
        sources = {r["source"] for r in res["gemm"] if r["config"] == cfg}
        assert sources == {"rtl", "model"}
    assert {r["workload"] for r in res["sparse"]} == {w.name for w in SPARSE_WORKLOADS}
    for r in res["sparse"]:
        assert set(SPARSE_FIELDS) <= set(r), set(SPARSE_FIELDS) - set(r)
        assert 0 < r["lane_utilization"] <= 1
    names = {w.name for w in WORKLOADS} | {w.name for w in SPARSE_WORKLOADS}
    assert {b["workload"] for b in res["baselines"]} == names
    for b in res["baselines"]:
        for key in ("numpy_f32", "scipy_csr_f32"):
            if key in b:
                assert b[key]["median_s"] > 0 and b[key]["reps"] >= 1
    links = {(a["workload"], a["config"], a["link"], a["packer"]) for a in res["amdahl"]}
    assert ("bert.qkv", "os", "uart3m", "python") in links
    for a in res["amdahl"]:
        assert 0 < a["accelerated_fraction"] < 1
        assert a["achieved_speedup"] <= a["amdahl_bound"] * (1 + 1e-9)
        assert abs(a["host_share"] + a["accelerator_share"] - 1) < 1e-9
    assert res["design_space"] == []          # full run only


def test_model_within_one_percent_of_rtl(quick):
    _, res = quick
    rtl = [r for r in res["gemm"] + res["sparse"] if r["source"] == "rtl"]
    assert len(rtl) >= 8
    bad = [(r["workload"], r["config"], r["model_job_cycles"], r["job_cycles"])
           for r in rtl if abs(r["model_error"]) > 0.01]
    assert not bad, f"model off by more than 1% (workload, config, model, RTL): {bad}"
    assert all(r["correct"] for r in rtl), "an RTL result differs from numpy"
    assert res["summary"]["max_abs_model_error"] <= 0.01


def test_report_names_every_row_and_its_source(quick):
    out, res = quick
    md = (out / "report.md").read_text()
    for r in res["gemm"]:
        assert f"| {r['workload']} |" in md
    assert "| RTL |" in md and "| model |" in md
    assert "assumed" in md or "synthesized" in md
    for name in FIGURES:
        assert f"({name}.png)" in md


def test_list_and_bad_names(capsys):
    assert main(["bench", "--list"]) == 0
    assert "bert.ffn_up" in capsys.readouterr().out
    assert main(["bench", "--workloads", "no_such_workload"]) == 2
    assert "No workload named 'no_such_workload'" in capsys.readouterr().err
