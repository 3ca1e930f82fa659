# amaranth: UnusedElaboratable=no
"""Generated artifacts: manifest, C header, Verilator lint with the scoped waivers,
and Yosys synthesis without latches or undriven nets."""

import json
import re
import subprocess
import sys

import pytest

from accelgen import toolchain
from accelgen.hdl import GemmConfig
from accelgen.hdl.generate import generate, LINT_WAIVERS
from accelgen.hdl.regs import gemm_register_map

SMALL = dict(a_spad_kib=1, b_spad_kib=1, acc_kib=1)
CONFIGS = [
    GemmConfig(rows=2, cols=3, **SMALL),
    GemmConfig(rows=3, cols=2, dataflow="ws", a_dtype="int4", b_dtype="uint16", acc_bits=40,
               stream_bits=32, requant=False, double_buffer=False, **SMALL),
]


@pytest.fixture(scope="module", params=CONFIGS, ids=["os-2x3", "ws-3x2-int4xuint16"])
def design(request, tmp_path_factory):
    return request.param, generate(request.param, tmp_path_factory.mktemp("gen"))


def test_manifest_contents(design):
    cfg, d = design
    man = json.loads(d.manifest.read_text())
    for key in ("top", "ports", "csrs", "streams", "config", "tools"):
        assert key in man
    assert man["top"] == cfg.top_name and d.verilog.name == f"{cfg.top_name}.v"
    assert GemmConfig.from_dict(man["config"]) == cfg
    ports = {p["name"]: p for p in man["ports"]}
    assert ports["s_axis_tdata"] == {"name": "s_axis_tdata", "direction": "input",
                                     "width": cfg.stream_bits}
    assert ports["m_axis_tvalid"]["direction"] == "output"
    assert not any("__" in p for p in ports)
    text = d.verilog.read_text()
    for p in ports.values():        # every manifest port is a port of the Verilog module
        assert re.search(rf"\b(input|output)\s+(\[\d+:0\]\s+)?{p['name']};", text), p["name"]
    rmap = gemm_register_map(cfg)
    assert [c["name"] for c in man["csrs"]] == [r.name for r in rmap.registers]
    for c in man["csrs"]:
        assert set(c) >= {"name", "offset", "access", "reset", "description"}
    assert man["streams"]["s_axis"]["tdata_bits"] == cfg.stream_bits
    assert "verilator" in man["tools"] and "amaranth" in man["tools"]


def test_c_header_compiles_and_matches(design, tmp_path):
    cfg, d = design
    rmap = gemm_register_map(cfg)
    src = tmp_path / "t.c"
    checks = "\n".join(f'_Static_assert(ACCELGEN_GEMM_{r.name} == {r.offset}u, "{r.name}");'
                       for r in rmap.registers)
    src.write_text(f'#include "{d.header}"\n{checks}\nint main(void) {{ return 0; }}\n')
    gcc = toolchain.cxx()
    if not gcc.found:
        pytest.skip(gcc.problem)
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-c", str(src), "-o",
                    str(tmp_path / "t.o")], check=True)


@pytest.mark.verilator
def test_verilator_lint_wall_with_scoped_waivers(design):
    cfg, d = design
    env = toolchain.verilator_env()
    vl = toolchain.verilator().path
    r = subprocess.run([vl, "--lint-only", "-Wall", str(d.lint), str(d.verilog),
                        "--top-module", cfg.top_name], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "%Warning" not in r.stderr
    # the waivers are scoped to the generated file and each names its rule
    vlt = d.lint.read_text()
    for rule in LINT_WAIVERS:
        assert f'lint_off -rule {rule} -file "*{cfg.top_name}.v"' in vlt
    # without them the same Verilog does warn (the waiver file is doing real work)
    r2 = subprocess.run([vl, "--lint-only", "-Wall", str(d.verilog), "--top-module",
                         cfg.top_name], capture_output=True, text=True, env=env)
    assert "%Warning" in r2.stderr


@pytest.mark.synth
def test_yosys_synth_no_latches(design, tmp_path):
    cfg, d = design
    ys = toolchain.yosys()
    # Coarse-grained synthesis: everything up to technology mapping (processes, FSMs,
    # memories kept as $mem). Latches are inferred there (proc_dlatch) if anywhere;
    # generic fine-grained mapping would only turn the memories into flip-flops.
    script = (f"read_verilog {d.verilog.name}; synth -top {cfg.top_name} -run begin:fine; "
              f"select -assert-none t:$dlatch t:$adlatch t:$dlatchsr; check -assert; stat")
    # YoWASP tools see the working directory, so run where the design is
    cmd = [ys.path, "-q", "-l", "yosys.log", "-p", script]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=d.out_dir)
    log = (d.out_dir / "yosys.log").read_text()
    assert r.returncode == 0, r.stderr + log[-3000:]
    assert "Latch inferred" not in log and "Found and reported 0 problems" in log


def test_cli_generate(tmp_path):
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(GemmConfig(rows=2, cols=2, **SMALL).to_json())
    r = subprocess.run([sys.executable, "-m", "accelgen.host.cli", "generate", "--config",
                        str(cfg_path), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    top = GemmConfig(rows=2, cols=2, **SMALL).top_name
    assert files == sorted([f"{top}.v", f"{top}.h", "manifest.json", "lint.vlt"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": 0}')
    r = subprocess.run([sys.executable, "-m", "accelgen.host.cli", "generate", "--config",
                        str(bad), "--out", str(tmp_path / "o2")], capture_output=True, text=True)
    assert r.returncode == 2 and "GemmConfig.rows must be in 1..64, not 0" in r.stderr
