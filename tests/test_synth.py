# amaranth: UnusedElaboratable=no
"""Synthesis flow, board targets and the UART bridge.

Fast tests: the part-code parser, the nextpnr/Yosys report parsers (on a report
captured from a real run, ``tests/data/nextpnr_report_ecp5.json``), the cache, the
out-of-context harness, and the UART and bridge in the Amaranth simulator (the
bridge end to end: a real GEMM job through the UART pins of a small accelerator).

Slow tests (``synth`` marker): one small out-of-context ECP5 run and one iCE40
board build (iCEBreaker), asserting the design fits and the reports parse.
"""

import json
import random
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, Mux, Signal
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.sim import Simulator

from accelgen.boards import cache, report
from accelgen.boards.bridge import BridgeProtocol, UARTBridge, OP
from accelgen.boards.harness import OutOfContext
from accelgen.boards.parts import parse_part
from accelgen.boards.uart import UARTRx, UARTTx, uart_divisor
from accelgen.hdl import GemmConfig
from accelgen.hdl.top import GemmTop

DATA = Path(__file__).parent / "data"


# --- part codes ------------------------------------------------------------------------------

@pytest.mark.parametrize("code,family,device,package,speed", [
    ("LFE5U-85F-6BG381C", "ecp5", "LFE5U-85F", "CABGA381", "6"),
    ("LFE5U-25F-6BG256C", "ecp5", "LFE5U-25F", "CABGA256", "6"),
    ("lfe5u-45f-8mg285i", "ecp5", "LFE5U-45F", "CSFBGA285", "8"),
    ("LFE5UM5G-85F-8BG756CTR", "ecp5", "LFE5UM5G-85F", "CABGA756", "8"),
    ("iCE40UP5K-SG48", "ice40", "iCE40UP5K", "sg48", None),
    ("ICE40UP5K-SG48ITR", "ice40", "iCE40UP5K", "sg48", None),
    ("iCE40HX8K-CT256", "ice40", "iCE40HX8K", "ct256", None),
])
def test_part_codes_parse(code, family, device, package, speed):
    part = parse_part(code)
    assert (part.family, part.device, part.package, part.speed) == (family, device, package, speed)
    assert part.nextpnr_args()[1:3] == ["--package", package]
    assert parse_part(part.code) == part          # the canonical spelling parses to itself


def test_part_nextpnr_arguments():
    assert parse_part("LFE5U-85F-6BG381C").nextpnr_args() == [
        "--85k", "--package", "CABGA381", "--speed", "6"]
    assert parse_part("iCE40UP5K-SG48").nextpnr_args() == ["--up5k", "--package", "sg48"]
    assert parse_part("LFE5UM-45F-7BG381C").nextpnr_flag == "--um-45k"


@pytest.mark.parametrize("code,message", [
    ("LFE5U-85F-6BG256C", r"Package of LFE5U-85F must be one of BG381, BG554, BG756, MG285, "
                          r"not 'BG256'"),
    ("LFE5U-85F-9BG381C", r"Speed grade of LFE5U-85F must be one of 6, 7, 8, not '9'"),
    ("LFE5UM5G-85F-6BG381C", r"Speed grade of LFE5UM5G-85F must be one of 8, not '6'"),
    ("LFE5U-30F-6BG381C", r"ECP5 device .* must be one of .*LFE5U-85F.*, not 'LFE5U-30F'"),
    ("LFE5U-85F", r"ECP5 part code must look like LFE5U-85F-6BG381C"),
    ("iCE40UP5K-CT256", r"Package of iCE40UP5K must be one of SG48, UWG30, not 'CT256'"),
    ("iCE40UP9K-SG48", r"iCE40 device .* not 'iCE40UP9K'"),
    ("XC7A35T-1CSG324C", r"must be a Lattice ECP5 .* or iCE40 .* ordering code, not "
                         r"'XC7A35T-1CSG324C'"),
])
def test_part_code_errors_name_the_problem(code, message):
    with pytest.raises(ValueError, match=message):
        parse_part(code)


def test_part_code_type_error():
    with pytest.raises(TypeError, match="Part code must be a string"):
        parse_part(85)


# --- report parsing ---------------------------------------------------------------------------

def test_nextpnr_report_parses():
    # Captured from `accelgen synth` of a 2x2 int8 array on an LFE5U-25F (out of context).
    path = DATA / "nextpnr_report_ecp5.json"
    util = report.utilization(path, "ecp5")
    assert set(util) >= {"LUT4", "FF", "MULT18X18D", "EBR"}
    for entry in util.values():
        assert 0 <= entry["used"] <= entry["available"]
    assert util["MULT18X18D"] == {"used": 15, "available": 28}
    assert util["LUT4"] == {"used": 6032, "available": 24288}
    fmax, clock = report.fmax(path)
    assert fmax == pytest.approx(89.46, abs=0.01)
    assert "clk" in clock
    paths = report.critical_paths(path)
    assert paths and paths[0]["delay_ns"] >= paths[-1]["delay_ns"]
    worst = paths[0]
    assert worst["delay_ns"] == pytest.approx(1000 / fmax, rel=1e-3)
    assert worst["delay_ns"] == pytest.approx(worst["logic_ns"] + worst["routing_ns"], abs=1e-3)
    assert worst["start_module"] == "design.core.loader"
    assert any(s["type"] == "routing" and s["net"] for s in worst["steps"])
    text = report.format_path(worst)
    assert text.startswith("11.18 ns") and "27 carry-chain steps" in text
    assert len(text.splitlines()) < 25 and max(map(len, text.splitlines())) < 140


def test_ice40_utilization_splits_logic_cells():
    rep = {"utilization": {"ICESTORM_LC": {"used": 120, "available": 5280},
                           "ICESTORM_DSP": {"used": 2, "available": 8},
                           "ICESTORM_RAM": {"used": 0, "available": 30},
                           "ICESTORM_SPRAM": {"used": 0, "available": 4},
                           "SB_IO": {"used": 4, "available": 96}},
           "fmax": {"clk": {"achieved": 50.5, "constraint": 30}}}
    cells = {"SB_LUT4": 100, "SB_DFF": 10, "SB_DFFE": 30, "SB_CARRY": 8}
    util = report.utilization(rep, "ice40", cells)
    assert util["LUT4"] == {"used": 100, "available": 5280}
    assert util["FF"] == {"used": 40, "available": 5280}
    assert util["SB_MAC16"] == {"used": 2, "available": 8}
    assert util["SPRAM"]["used"] == 0
    with pytest.raises(ValueError, match="Family must be one of 'ecp5', 'ice40', not 'xc7'"):
        report.utilization(rep, "xc7")


def test_yosys_stat_and_markdown_table():
    stat = {"design": {"num_cells_by_type": {"$scopeinfo": 3, "LUT4": 10, "TRELLIS_FF": 4}}}
    assert report.yosys_cells(stat) == {"LUT4": 10, "TRELLIS_FF": 4}
    table = report.markdown_table([
        {"design": "8x8", "device": "LFE5U-85F-6BG381C", "target_mhz": 150, "fmax_mhz": 64.2,
         "utilization": {"LUT4": {"used": 10, "available": 100}}, "status": "timing-not-met"},
        {"design": "4x4", "device": "LFE5U-85F-6BG381C", "target_mhz": 150, "fmax_mhz": 151.0,
         "utilization": {"LUT4": {"used": 5, "available": 100}}, "status": "ok"}])
    lines = table.splitlines()
    assert lines[0].startswith("| Config | Device | Target MHz | Fmax MHz | LUT4")
    assert "64.2 (miss)" in lines[2] and "10 / 100 (10.0%)" in lines[2]
    assert "151.0 |" in lines[3]


def test_fmax_from_log_takes_the_last_line(tmp_path):
    log = tmp_path / "nextpnr.log"
    log.write_text("Info: Max frequency for clock 'clk': 80.00 MHz (PASS at 12.00 MHz)\n"
                   "Info: Max frequency for clock 'clk': 71.25 MHz (PASS at 12.00 MHz)\n")
    assert report.fmax_from_log(log) == 71.25


# --- synthesis scripts and DSP modes ---------------------------------------------------------

def test_synth_scripts_per_family_and_dsp_mode():
    from accelgen.boards.flow import synth_script
    ecp5, ice40 = parse_part("LFE5U-85F-6BG381C"), parse_part("iCE40UP5K-SG48")
    assert "synth_ecp5 -abc9 -top T -json synth.json" in synth_script(ecp5, "T")
    assert "synth_ecp5 -abc9 -nodsp -top T" in synth_script(ecp5, "T", dsp="none")
    assert "synth_ice40 -dsp -spram -top T" in synth_script(ice40, "T")
    assert "synth_ice40 -spram -top T" in synth_script(ice40, "T", dsp="none")
    array = synth_script(ice40, "T", dsp="array").splitlines()
    assert array[1:4] == ["hierarchy -top T", "proc", "booth t:$mul a:src=*pe.py* %d"]
    fill = synth_script(ecp5, "T", dsp="fill").splitlines()
    assert fill[1].startswith("synth_ecp5 -abc9 -nodsp -top T")   # no booth prelude
    with pytest.raises(ValueError, match="DSP mode must be one of 'all', 'array', 'fill', "
                                         "'none', not 'some'"):
        synth_script(ecp5, "T", dsp="some")


def test_ecp5_registered_multiplier_hook():
    """ECP5 runs that may use DSP blocks hand the PEs a MULT18X18D with its input and
    output registers on; other runs keep Yosys' own mapping."""
    from amaranth import signed, unsigned
    from amaranth.back import rtlil
    from accelgen.boards.flow import primitives_for
    from accelgen.boards.primitives import ECP5Multiplier, ecp5_multiplier
    ecp5, ice40 = parse_part("LFE5U-85F-6BG381C"), parse_part("iCE40UP5K-SG48")
    for dsp, multiplier in (("all", True), ("array", True), ("fill", True), ("none", False)):
        hooks = primitives_for(ecp5, dsp)
        assert hasattr(hooks, "accelgen_multiplier") is multiplier
        assert hasattr(hooks, "accelgen_memory")
    assert primitives_for(ice40, "all") is None
    mul = ecp5_multiplier(signed(8), unsigned(8), signed(17))
    text = rtlil.convert(mul, ports=[mul.a, mul.b, mul.a_en, mul.b_en, mul.p])
    for param in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"):
        assert f'parameter \\{param} "CLK0"' in text, param
    assert 'parameter \\REG_PIPELINE_CLK "NONE"' in text
    assert ecp5_multiplier(unsigned(18), signed(8), signed(27)) is None   # 18-bit unsigned
    wide = ecp5_multiplier(signed(18), signed(18), signed(36))
    assert "MULT18X18D" in rtlil.convert(wide, ports=[wide.a, wide.b, wide.a_en, wide.b_en,
                                                      wide.p])
    with pytest.raises(ValueError, match="does not fit 18-bit two's complement"):
        ECP5Multiplier(signed(19), signed(8), signed(27))


def test_dsp_breakdown_of_array_and_sparse_designs(tmp_path):
    """DSP use per PE for systolic arrays; the sparse engine (no PE array) has none."""
    import json
    from accelgen.boards.flow import dsp_breakdown
    from accelgen.hdl import SparseConfig
    cells = {f"design.core.array.pe_{i}_0.mul.dsp": {"type": "MULT18X18D"} for i in range(4)}
    cells["design.core.requant.x"] = {"type": "MULT18X18D"}
    netlist = tmp_path / "synth.json"
    netlist.write_text(json.dumps({"modules": {"top": {"cells": cells}}}))
    gemm = dsp_breakdown(netlist, GemmConfig(rows=2, cols=2))
    assert (gemm["total"], gemm["array"], gemm["per_pe"]) == (5, 4, 1.0)
    assert gemm["by_module"]["core.array.pe_*.mul"] == 4
    sparse = dsp_breakdown(netlist, SparseConfig(lanes=4))
    assert sparse["total"] == 5 and sparse["per_pe"] is None


def test_table_max_side_is_checked(tmp_path):
    from accelgen.boards.table import run_table
    with pytest.raises(ValueError, match="max_side must be a positive integer, not 0"):
        run_table(tmp_path, max_side=0)


def test_dsp_shortfall_and_modes():
    from accelgen.boards.flow import dsp_modes, dsp_shortfall
    from accelgen.boards.runner import SynthError
    assert dsp_modes("auto") == ("all", "array", "fill", "none") and dsp_modes("none") == ("none",)
    assert dsp_modes("auto", "ice40") == ("all", "array", "none")
    assert dsp_modes("fill", "ice40") == ("all",)
    with pytest.raises(ValueError, match="DSP mode must be 'auto' or one of"):
        dsp_modes("yes")
    assert dsp_shortfall(SynthError("does-not-fit", "x does not fit y: needs 279 MULT18X18D "
                                                    "(has 156)"))
    assert not dsp_shortfall(SynthError("does-not-fit", "x does not fit y: needs 12 SB_MAC16 "
                                                        "(has 8), 6000 LUT4 (has 5280)"))
    assert not dsp_shortfall(SynthError("tool-failed", "needs MULT18X18D"))


def test_fit_check_counts_what_cannot_fit():
    from accelgen.boards.flow import fit_problems
    part = parse_part("LFE5U-25F-6BG256C")
    assert fit_problems({"LUT4": 100, "TRELLIS_FF": 50, "MULT18X18D": 28}, part) == []
    assert fit_problems({"LUT4": 24000, "CCU2C": 200, "MULT18X18D": 30}, part) == [
        "24400 LUT4 (has 24288)", "30 MULT18X18D (has 28)"]


def test_sta_on_a_routed_sdf_matches_nextpnr(tmp_path):
    """SDF of mult8.v (registered 8x8 multiply and accumulate) routed on an LFE5U-85F at
    150 MHz; nextpnr reported 150.85 MHz, i.e. a 6.629 ns critical path."""
    import gzip
    from accelgen.boards import sta
    sdf = tmp_path / "mult8.sdf"
    sdf.write_bytes(gzip.decompress((DATA / "mult8_ecp5.sdf.gz").read_bytes()))
    paths = sta.top_paths(sdf, count=5)
    assert [p["group"] for p in paths] == ["p", "y"]
    worst = paths[0]
    assert worst["delay_ns"] == pytest.approx(6.629, abs=0.002)
    assert worst["start"].startswith("ar_TRELLIS_FF_Q") and worst["end"].startswith("p_TRELLIS_FF")
    cells = [pin["pin"].rsplit("/", 1)[0] for pin in worst["path"]]
    assert any("MULT18X18D" in c for c in cells)
    arrivals = [pin["arrival_ns"] for pin in worst["path"]]
    assert arrivals == sorted(arrivals)
    assert sta.endpoint_group("design.core.array.pe_1_2.acc_TRELLIS_FF_Q_12") == \
        "design.core.array.pe_*.acc"


def test_a_silent_tool_failure_is_retried_once(tmp_path):
    from accelgen.boards.runner import SynthError, run_tool
    tool = tmp_path / "flaky"
    tool.write_text("#!/bin/sh\nif [ -e marker ]; then echo 'Info: done'; exit 0; fi\n"
                    "touch marker; echo 'Running ABC'; exit 1\n")
    tool.chmod(0o755)
    seen = []
    run_tool(str(tool), [], cwd=tmp_path, log=tmp_path / "t.log", stage="yosys",
             progress=lambda stage, status: seen.append(status))
    assert "Info: done" in (tmp_path / "t.log").read_text()
    assert "Running ABC" in (tmp_path / "t.log.1").read_text()
    assert any("running it again" in s for s in seen)
    loud = tmp_path / "loud"
    loud.write_text("#!/bin/sh\necho 'ERROR: Design does not fit'; exit 1\n")
    loud.chmod(0o755)
    with pytest.raises(SynthError, match="yosys failed \\(exit status 1\\): Design does not fit"):
        run_tool(str(loud), [], cwd=tmp_path, log=tmp_path / "l.log", stage="yosys")
    assert not (tmp_path / "l.log.1").exists()


# --- cache ------------------------------------------------------------------------------------

def test_cached_fmax_finds_the_current_netlist_only(tmp_path, monkeypatch):
    from accelgen.boards.flow import ooc_netlist_digest
    from accelgen.boards.parts import parse_part
    monkeypatch.setenv("ACCELGEN_CACHE", str(tmp_path))
    cfg = GemmConfig(rows=2, cols=2)
    fmax, note = cache.cached_fmax(cfg)
    assert fmax is None and "run accelgen synth" in note and cache.DEFAULT_PART in note

    def put(key, **fields):
        entry = cache.cache_dir() / key
        entry.mkdir(parents=True)
        base = {"config_hash": cfg.config_hash, "source_digest": cache.source_digest(),
                "flow": "ooc", "family": "ecp5", "target_mhz": 150, "created": "2025",
                "multipliers": "all"}
        (entry / "result.json").write_text(json.dumps({**base, **fields}))

    small = "LFE5U-25F-6BG256C"
    netlist = ooc_netlist_digest(cfg, parse_part(small), "all")
    put("a", device=small, fmax_mhz=90.0, netlist_digest=netlist)
    put("b", device=cache.DEFAULT_PART, fmax_mhz=80.0, netlist_digest="0" * 16)   # stale
    put("c", device=cache.DEFAULT_PART, fmax_mhz=70.0, source_digest="stale")     # stale
    fmax, note = cache.cached_fmax(cfg)
    assert fmax == 90.0 and small in note and "cached" in note
    put("d", device=cache.DEFAULT_PART, fmax_mhz=120.0, netlist_digest=netlist)
    assert cache.cached_fmax(cfg)[0] == 120.0
    # another placement seed of the same netlist: the best Fmax counts, not the latest
    put("e", device=cache.DEFAULT_PART, fmax_mhz=110.0, netlist_digest=netlist, created="2026",
        material={"seed": 2})
    assert cache.cached_fmax(cfg)[0] == 120.0
    put("f", device=cache.DEFAULT_PART, fmax_mhz=125.0, netlist_digest=netlist, created="2024",
        material={"seed": 3})
    fmax, note = cache.cached_fmax(cfg)
    assert fmax == 125.0 and "nextpnr seed 3" in note
    assert cache.cached_fmax(GemmConfig(rows=3, cols=2))[0] is None
    # An edit of the sources that leaves the netlist alone keeps the results.
    monkeypatch.setattr(cache, "source_digest", lambda: "edited")
    assert cache.cached_fmax(cfg)[0] == 125.0
    # One that changes the netlist does not.
    from accelgen.boards import flow
    monkeypatch.setattr(flow, "ooc_rtlil", lambda *a: "module \\other\nend\n")
    monkeypatch.setattr(cache, "source_digest", lambda: "edited again")
    assert cache.cached_fmax(cfg)[0] is None


def test_netlist_digest_ignores_source_locations_only():
    text = 'module \\top\n  attribute \\src "hdl/gemm.py:12"\n  wire width 8 \\a\nend\n'
    moved = text.replace("gemm.py:12", "gemm.py:99").replace("hdl/", "/elsewhere/hdl/")
    assert cache.netlist_digest(text) == cache.netlist_digest(moved)
    assert cache.netlist_digest(text) != cache.netlist_digest(text.replace("width 8", "width 9"))
    assert cache.netlist_digest(text) != cache.netlist_digest(
        text.replace('attribute \\src "hdl/gemm.py:12"', 'attribute \\keep 1'))


def test_netlist_elaborates_once_and_refuses_a_changed_netlist(tmp_path, monkeypatch):
    from accelgen.boards.runner import SynthError
    monkeypatch.setenv("ACCELGEN_CACHE", str(tmp_path))
    texts = ["module \\a\nend\n"]
    calls = []

    def elaborate():
        calls.append(1)
        return texts[-1], "extra"

    first = cache.Netlist({"x": 1}, elaborate)         # digest unknown: elaborates
    assert first.digest == cache.netlist_digest(texts[0])
    assert first.elaborated() == (texts[0], "extra") and len(calls) == 1
    again = cache.Netlist({"x": 1}, elaborate)         # digest remembered: no elaboration
    assert again.digest == first.digest and len(calls) == 1
    assert again.elaborated() == (texts[0], "extra") and len(calls) == 2
    texts.append("module \\b\nend\n")                 # the sources changed under it
    stale = cache.Netlist({"x": 1}, elaborate)
    with pytest.raises(SynthError, match="differs from the one remembered"):
        stale.elaborated()


def test_remembered_digest_computes_once_per_source_version(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELGEN_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return f"{len(calls):016x}"

    assert cache.remembered_digest({"x": 1}, compute) == f"{1:016x}"
    assert cache.remembered_digest({"x": 1}, compute) == f"{1:016x}" and len(calls) == 1
    assert cache.remembered_digest({"x": 2}, compute) == f"{2:016x}"
    monkeypatch.setattr(cache, "source_digest", lambda: "edited")
    assert cache.remembered_digest({"x": 1}, compute) == f"{3:016x}"


def test_nextpnr_full_device_errors_are_does_not_fit():
    from accelgen.boards.flow import classify_nextpnr_error
    from accelgen.boards.runner import SynthError
    from accelgen.boards.parts import parse_part
    cfg, part = GemmConfig(rows=2, cols=2), parse_part("iCE40UP5K-SG48")
    for text in ("Unable to place cell 'x', no BELs remaining to implement cell type "
                 "'ICESTORM_LC'",
                 "Failed to expand region (0, 0) |_> (25, 31) of 5301 ICESTORM_LCs"):
        error = classify_nextpnr_error(SynthError("tool-failed", f"nextpnr failed: {text}",
                                                  Path("n.log")), cfg, part)
        assert error.kind == "does-not-fit" and "does not fit iCE40UP5K-SG48" in str(error)
        assert error.log == Path("n.log")
    other = classify_nextpnr_error(SynthError("tool-failed", "nextpnr failed: bad JSON"),
                                   cfg, part)
    assert other.kind == "tool-failed"


def test_entry_keys_depend_on_every_input():
    base = {"config_hash": "x", "device": "d", "target_mhz": 150.0}
    keys = {cache.entry_key(base), cache.entry_key({**base, "target_mhz": 151.0}),
            cache.entry_key({**base, "device": "e"})}
    assert len(keys) == 3


# --- out-of-context harness -------------------------------------------------------------------

def test_harness_registers_every_port():
    top = GemmTop(GemmConfig(rows=2, cols=2, stream_bits=32), own_domain=False)
    h = OutOfContext(top)
    ins = sum(len(getattr(top, name)) for name, member in top.signature.members.items()
              if member.flow.name == "In")
    assert h.in_bits == ins
    assert h.in_bits + h.out_bits == sum(len(getattr(top, n)) for n in top.signature.members)
    assert h.overhead()["FF"] > h.in_bits + h.out_bits
    assert list(h.signature.members) == ["clk", "rst", "scan_in", "scan_out"]


# --- board targets and tops -------------------------------------------------------------------

def test_board_names_resolve_to_lattice_platforms():
    from accelgen.boards.targets import board_part, board_platform, list_boards
    ulx3s = board_platform("ulx3s-85f")
    assert type(ulx3s).__name__ == "ULX3S_85F_Platform"
    assert "openFPGALoader" not in ulx3s.required_tools
    assert str(board_part(ulx3s)) == "LFE5U-85F-6BG381C"
    assert str(board_part(board_platform("icebreaker"))) == "iCE40UP5K-SG48"
    assert type(board_platform("ULX3S_45F")).__name__ == "ULX3S_45F_Platform"
    assert type(board_platform("versa_ecp5")).__name__ == "VersaECP5Platform"
    assert "ICEBreakerPlatform" in list_boards() and "ArtyA7_35Platform" not in list_boards()
    with pytest.raises(ValueError, match="is not a Lattice ECP5 or iCE40 board"):
        board_platform("ArtyA7_35")
    with pytest.raises(ValueError, match="Board must be an alias .* not 'nosuchboard'"):
        board_platform("nosuchboard")


@pytest.mark.parametrize("f_in,f_out", [(25e6, 150e6), (25e6, 100e6), (25e6, 48e6)])
def test_ecp5_pll_settings_obey_the_limits(f_in, f_out):
    from accelgen.boards.top import ecp5_pll
    pll = ecp5_pll(f_in, f_out)
    p = pll.params
    assert abs(pll.f_out - f_out) <= 0.05 * f_out
    assert pll.f_out == pytest.approx(f_in / p["CLKI_DIV"] * p["CLKFB_DIV"])
    assert 400e6 <= pll.f_vco <= 800e6 and f_in / p["CLKI_DIV"] >= 3.125e6


@pytest.mark.parametrize("f_out", [24e6, 30e6, 48e6])
def test_ice40_pll_settings_obey_the_limits(f_out):
    from accelgen.boards.top import ice40_pll
    pll = ice40_pll(12e6, f_out)
    p = pll.params
    assert pll.f_out == pytest.approx(f_out, rel=0.01)
    assert pll.f_vco == pytest.approx(12e6 / (p["DIVR"] + 1) * (p["DIVF"] + 1))
    assert 533e6 <= pll.f_vco <= 1066e6 and pll.f_out == pll.f_vco / 2 ** p["DIVQ"]
    with pytest.raises(ValueError, match="iCE40 PLL output must be 16..275 MHz"):
        ice40_pll(12e6, 400e6)


@pytest.mark.parametrize("board,primitive", [("ulx3s-85f", "EHXPLLL"),
                                             ("icebreaker", "SB_PLL40_PAD")])
def test_board_top_elaborates_with_pll_bridge_and_constraints(tmp_path, board, primitive):
    from accelgen.boards.loopback import LoopbackConfig
    from accelgen.boards.targets import board_platform
    from accelgen.boards.top import BoardTop
    platform = board_platform(board)
    top = BoardTop(LoopbackConfig(), clock_hz=30e6)
    plan = platform.prepare(top, name="top")
    files = plan.extract(tmp_path)
    rtlil = (tmp_path / "top.il").read_text()
    assert primitive in rtlil and "uart_rx" in rtlil and "bridge" in rtlil
    constraints = (tmp_path / ("top.lpf" if primitive == "EHXPLLL" else "top.pcf")).read_text()
    assert ("FREQUENCY NET" in constraints) or ("set_frequency" in constraints)
    assert top.clock_hz_actual == pytest.approx(30e6, rel=0.05)


# --- UART -------------------------------------------------------------------------------------

def _sim(dut, *benches):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for b in benches:
        sim.add_testbench(b)
    sim.run()


async def _idle(ctx, cycles):
    if cycles:
        await ctx.tick().repeat(cycles)


async def _uart_put(ctx, pin, byte, divisor, stop=1):
    for bit in [0, *((byte >> i) & 1 for i in range(8)), stop]:
        ctx.set(pin, bit)
        await ctx.tick().repeat(divisor)
    ctx.set(pin, 1)


async def _uart_get(ctx, pin, divisor):
    """Wait for a start bit on ``pin``, return the byte (sampled mid-bit)."""
    while ctx.get(pin):
        await ctx.tick()
    await ctx.tick().repeat(divisor + divisor // 2)
    value = 0
    for i in range(8):
        value |= ctx.get(pin) << i
        await ctx.tick().repeat(divisor)
    assert ctx.get(pin) == 1, "stop bit must be high"
    return value


@pytest.mark.parametrize("divisor", [4, 5, 7])
def test_uart_tx_to_rx(divisor):
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(24)] + [0x00, 0xFF, 0x55]
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    got = []

    async def source(ctx):
        for byte in data:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)
            await _idle(ctx, rng.choice([0, 0, 3]))

    async def sink(ctx):
        async for _, _, valid, payload in ctx.tick().sample(rx.o.valid, rx.o.payload):
            if valid:
                got.append(payload)
            if len(got) == len(data):
                return

    _sim(m, source, sink)
    assert got == data


def test_uart_rx_drops_a_frame_with_a_low_stop_bit():
    dut = UARTRx(6)
    got = []

    async def bench(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(10)
        await _uart_put(ctx, dut.rx, 0xA5, 6, stop=0)
        await ctx.tick().repeat(30)
        await _uart_put(ctx, dut.rx, 0x3C, 6)
        await ctx.tick().repeat(20)
        assert ctx.get(dut.errors) == 1

    async def sink(ctx):
        async for _, _, valid, payload in ctx.tick().sample(dut.o.valid, dut.o.payload):
            if valid:
                got.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(sink, background=True)
    sim.run()
    assert got == [0x3C]


def test_uart_divisor_checks_the_rate():
    assert uart_divisor(48e6, 115200) == 417
    with pytest.raises(ValueError, match="at most clock/4"):
        uart_divisor(1e6, 1_000_000)
    with pytest.raises(ValueError, match="UART baud rate 2600000 is 7.7% off at a 12 MHz clock"):
        uart_divisor(12e6, 2_600_000)
    with pytest.raises(ValueError, match="UART divisor must be an integer of at least 4, not 3"):
        UARTRx(3)


# --- the bridge -------------------------------------------------------------------------------

class SimLink:
    """Byte pipe between a :class:`BridgeProtocol` and a simulated bridge.

    ``read`` advances the simulation until enough bytes came back, so the host
    code runs unmodified against the RTL. With ``divisor`` the bytes travel over
    the UART pins ``rx_pin``/``tx_pin``; without, over the bridge's byte streams.
    """

    def __init__(self, dut, bridge, *, divisor=None, rx_pin=None, tx_pin=None, gap=(0, 2),
                 ready=1.0, seed=0, max_cycles=2_000_000):
        self.to_dut, self.from_dut = deque(), deque()
        self.cycles = 0
        self.max_cycles = max_cycles
        rng = random.Random(seed)
        self.sim = Simulator(dut)
        self.sim.add_clock(1e-6)

        async def clock(ctx):
            async for _ in ctx.tick():
                self.cycles += 1

        if divisor is None:
            async def driver(ctx):
                while True:
                    if self.to_dut:
                        ctx.set(bridge.rx.payload, self.to_dut.popleft())
                        ctx.set(bridge.rx.valid, 1)
                        await ctx.tick()
                        ctx.set(bridge.rx.valid, 0)
                        await _idle(ctx, rng.randint(*gap))
                    else:
                        await ctx.tick()

            async def monitor(ctx):
                while True:
                    ready = rng.random() < ready_p
                    ctx.set(bridge.tx.ready, ready)
                    _, _, valid, payload = await ctx.tick().sample(bridge.tx.valid,
                                                                   bridge.tx.payload)
                    if valid and ready:
                        self.from_dut.append(payload)
        else:
            async def driver(ctx):
                ctx.set(rx_pin, 1)
                while True:
                    if self.to_dut:
                        await _uart_put(ctx, rx_pin, self.to_dut.popleft(), divisor)
                        await _idle(ctx, rng.randint(*gap))
                    else:
                        await ctx.tick()

            async def monitor(ctx):
                while True:
                    self.from_dut.append(await _uart_get(ctx, tx_pin, divisor))

        ready_p = ready
        for bench in (clock, driver, monitor):
            self.sim.add_testbench(bench, background=True)

    def write(self, data):
        self.to_dut.extend(data)

    def read(self, n):
        start = self.cycles
        while len(self.from_dut) < n:
            self.sim.advance()
            if self.cycles - start > self.max_cycles:
                raise TimeoutError(f"no answer from the bridge in {self.max_cycles} cycles")
        return bytes(self.from_dut.popleft() for _ in range(n))

    def run(self, cycles):
        end = self.cycles + cycles
        while self.cycles < end:
            self.sim.advance()


def _loopback(sb=32, depth=8, timeout=200):
    """A bridge whose output stream comes back to its input through a FIFO
    (``hold`` stops the return path: the accelerator side stalls)."""
    m = Module()
    m.submodules.bridge = bridge = UARTBridge(8, sb, fifo_depth=depth, timeout=timeout)
    m.submodules.ret = ret = SyncFIFOBuffered(width=sb + 1, depth=4)
    hold = Signal()
    m.d.comb += [
        ret.w_data.eq(bridge.m_axis_tdata | (bridge.m_axis_tlast << sb)),
        ret.w_en.eq(bridge.m_axis_tvalid & ~hold), bridge.m_axis_tready.eq(ret.w_rdy & ~hold),
        bridge.s_axis_tdata.eq(ret.r_data[:sb]), bridge.s_axis_tlast.eq(ret.r_data[sb]),
        bridge.s_axis_tvalid.eq(ret.r_rdy), ret.r_en.eq(bridge.s_axis_tready),
    ]
    # CSR side: a one-register slave that answers OKAY at 0x10 and SLVERR elsewhere.
    reg = Signal(32, init=0x1234)
    bvalid, rvalid, resp, rdata = Signal(), Signal(), Signal(2), Signal(32)
    m.d.comb += [bridge.m_axil_awready.eq(bridge.m_axil_awvalid & bridge.m_axil_wvalid & ~bvalid),
                 bridge.m_axil_wready.eq(bridge.m_axil_awready),
                 bridge.m_axil_bvalid.eq(bvalid), bridge.m_axil_bresp.eq(resp),
                 bridge.m_axil_arready.eq(~rvalid),
                 bridge.m_axil_rvalid.eq(rvalid), bridge.m_axil_rresp.eq(resp),
                 bridge.m_axil_rdata.eq(rdata)]
    with m.If(bridge.m_axil_awready):
        m.d.sync += [bvalid.eq(1), resp.eq(Mux(bridge.m_axil_awaddr == 0x10, 0, 2))]
        with m.If(bridge.m_axil_awaddr == 0x10):
            m.d.sync += reg.eq(bridge.m_axil_wdata)
    with m.If(bvalid & bridge.m_axil_bready):
        m.d.sync += bvalid.eq(0)
    with m.If(bridge.m_axil_arvalid & bridge.m_axil_arready):
        m.d.sync += [rvalid.eq(1), rdata.eq(reg), resp.eq(Mux(bridge.m_axil_araddr == 0x10, 0, 2))]
    with m.If(rvalid & bridge.m_axil_rready):
        m.d.sync += rvalid.eq(0)
    return m, bridge, hold


def test_bridge_info_csr_status_and_unknown_opcodes():
    m, bridge, _ = _loopback()
    link = SimLink(m, bridge, ready=0.7, seed=1)
    host = BridgeProtocol(link.write, link.read)
    info = host.info()
    assert (info.version, info.stream_bytes, info.fifo_depth) == (1, 4, 8)
    assert host.csr_read(0x10) == (0x1234, 0)
    assert host.csr_write(0x10, 0xDEADBEEF) == 0
    assert host.csr_read(0x10) == (0xDEADBEEF, 0)
    assert host.csr_write(0x14, 1) == 2              # SLVERR passes through
    assert host.csr_read(0x14)[1] == 2
    free, flags = host.status()
    assert free == 8 and flags == {"overflow": False, "output_waiting": False,
                                   "framing_error": False}
    link.write(b"\x77")
    assert link.read(1) == b"\xee"
    assert host.info().version == 1                    # still in sync


def test_bridge_stream_round_trip_with_credits():
    m, bridge, hold = _loopback(sb=32, depth=8)
    link = SimLink(m, bridge, gap=(0, 3), ready=0.5, seed=2)
    host = BridgeProtocol(link.write, link.read)
    rng = random.Random(3)
    for beats in (1, 3, 8, 2):
        data = bytes(rng.randrange(256) for _ in range(4 * beats))
        free = host.send(data, last=True)
        assert 0 <= free <= 8
        got, last = b"", False
        while not last:
            chunk, last = host.recv(max_beats=rng.choice([1, 2, 256]))
            got += chunk
        assert got == data
    assert host.recv() == (b"", False)                # nothing waiting: just the terminator
    # A frame in two SEND commands: TLAST only on the second one's last beat.
    host.send(bytes(range(8)), last=False)
    host.send(bytes(range(8, 12)), last=True)
    got, last = host.recv(max_beats=2)
    assert (got, last) == (bytes(range(8)), False)
    assert host.recv() == (bytes(range(8, 12)), True)


def test_bridge_reports_overflow_and_credit():
    m, bridge, hold = _loopback(sb=32, depth=8)
    link = SimLink(m, bridge, seed=4)
    host = BridgeProtocol(link.write, link.read)

    async def stall(ctx):
        ctx.set(hold, 1)

    link.sim.add_testbench(stall)
    assert host.send(bytes(4 * 6)) == 2               # 6 of 8 beats used, nothing drains
    free, flags = host.status()
    assert (free, flags["overflow"]) == (2, False)
    host.send(bytes(4 * 4))                           # 2 beats too many
    free, flags = host.status()
    assert (free, flags["overflow"]) == (0, True)
    assert host.status()[1]["overflow"] is False      # cleared by the read


def test_bridge_drops_an_incomplete_command_after_the_timeout():
    m, bridge, _ = _loopback(timeout=100)
    link = SimLink(m, bridge, seed=5)
    host = BridgeProtocol(link.write, link.read)
    link.write(bytes([OP["WRITE"], 0x10, 0x00]))      # 4 bytes short
    link.run(150)
    assert host.info().fifo_depth == 8                # parsed as a new command
    assert host.csr_read(0x10) == (0x1234, 0)         # the partial write did nothing


def test_bridge_protocol_rejects_bad_requests():
    host = BridgeProtocol(lambda b: None, lambda n: b"", stream_bytes=4)
    with pytest.raises(ValueError, match="SEND data must be 1..256 whole beats of 4 bytes, not 6"):
        host.send(bytes(6))
    with pytest.raises(ValueError, match="RECV beat count must be in 1..256, not 0"):
        host.recv(0)
    with pytest.raises(ValueError, match="UART bridge stream_bits must be a multiple of 8"):
        UARTBridge(8, 12)


def test_loopback_stand_in_behind_the_bridge():
    from accelgen.boards.loopback import LOOPBACK_ID, LoopbackConfig, LoopbackDevice
    from accelgen.boards.top import connect_bridge
    m = Module()
    m.submodules.dev = dev = LoopbackDevice(LoopbackConfig(stream_bits=32, depth=4))
    m.submodules.bridge = bridge = UARTBridge(dev.addr_width, 32, fifo_depth=8)
    connect_bridge(m, bridge, dev)
    link = SimLink(m, bridge, ready=0.8, seed=9)
    host = BridgeProtocol(link.write, link.read)
    assert host.csr_read(0x00) == (LOOPBACK_ID, 0)
    assert host.csr_write(0x00, 1) == 2                    # ID is read-only
    assert host.csr_write(0x08, 0xCAFE) == 0
    assert host.csr_read(0x08) == (0xCAFE, 0)
    assert host.csr_read(0x10) == (0, 2) and host.csr_read(0x06)[1] == 2
    data = bytes(range(4 * 6))
    host.send(data)
    got, last = b"", False
    while not last:
        chunk, last = host.recv()
        got += chunk
    assert got == data


def _run_program(host, ops, fifo_depth, nbytes):
    """Execute a driver program (see accelgen.sim.device) over the bridge."""
    results, free = [], fifo_depth
    for op in ops:
        if op[0] == "write":
            assert host.csr_write(op[1], op[2]) == 0
        elif op[0] == "read":
            value, resp = host.csr_read(op[1])
            assert resp == 0
            results.append(value)
        elif op[0] == "send":
            data = op[1]
            beats = [data[i:i + nbytes] for i in range(0, len(data), nbytes)]
            while beats:
                while free == 0:
                    free = host.status()[0]
                take = min(free, 256, len(beats))
                chunk, beats = b"".join(beats[:take]), beats[take:]
                free = host.send(chunk, last=not beats)
        elif op[0] == "recv":
            got, last = b"", False
            while not last:
                chunk, last = host.recv()
                got += chunk
            assert len(got) == op[1]
            results.append(got)
        elif op[0] == "wait":
            while host.csr_read(op[1])[0] & op[2] != op[3]:
                pass
    return results


def test_gemm_job_through_the_uart_pins():
    """The whole path a host uses on a board: UART pins, bridge, accelerator."""
    from accelgen.host.plan import build_plan

    cfg = GemmConfig(rows=2, cols=2, stream_bits=32, a_spad_kib=1, b_spad_kib=1, acc_kib=1)
    divisor = 4
    m = Module()
    m.submodules.acc = acc = GemmTop(cfg, own_domain=False)
    m.submodules.bridge = bridge = UARTBridge(acc.regmap.addr_width, cfg.stream_bits,
                                              fifo_depth=16)
    m.submodules.rx = rx = UARTRx(divisor)
    m.submodules.tx = tx = UARTTx(divisor)
    from accelgen.boards.top import connect_bridge
    connect_bridge(m, bridge, acc)
    rx_pin, tx_pin = Signal(init=1), Signal(init=1)
    m.d.comb += [rx.rx.eq(rx_pin), tx_pin.eq(tx.tx),
                 bridge.rx.payload.eq(rx.o.payload), bridge.rx.valid.eq(rx.o.valid),
                 tx.i.payload.eq(bridge.tx.payload), tx.i.valid.eq(bridge.tx.valid),
                 bridge.tx.ready.eq(tx.i.ready)]
    link = SimLink(m, bridge, divisor=divisor, rx_pin=rx_pin, tx_pin=tx_pin)
    host = BridgeProtocol(link.write, link.read)
    info = host.info()
    rmap = acc.regmap
    assert host.csr_read(rmap.offset("ID")) == (rmap["ID"].reset, 0)
    assert host.csr_read(0xFC)[1] == 2                # unmapped: SLVERR
    rng = np.random.default_rng(7)
    A = rng.integers(-128, 128, (3, 5)).astype(np.int8)
    B = rng.integers(-128, 128, (5, 2)).astype(np.int8)
    plan = build_plan(cfg, A, B)
    results = _run_program(host, plan.ops, info.fifo_depth, info.stream_bytes)
    plan.check(results)
    np.testing.assert_array_equal(plan.assemble(results), A.astype(np.int64) @ B)


# --- real tool runs (CI: small configs, minutes at most) --------------------------------------

SMALL = dict(stream_bits=32, a_spad_kib=1, b_spad_kib=1, acc_kib=1, requant=False)


@pytest.mark.slow
@pytest.mark.synth
def test_ecp5_out_of_context_run_fits_and_reports(tmp_path, monkeypatch, need_tool):
    """One small out-of-context ECP5 run, from a fresh cache, then the cached result."""
    from accelgen.boards.flow import run_ooc
    from accelgen.boards.table import cached_result
    need_tool("nextpnr-ecp5")
    monkeypatch.setenv("ACCELGEN_CACHE", str(tmp_path))
    cfg = GemmConfig(rows=2, cols=2, **SMALL)
    stages = set()
    assert cached_result(cfg, "LFE5U-25F-6BG256C", 50) is None     # nothing cached, nothing ran
    assert not list(tmp_path.glob("*/result.json"))
    result = run_ooc(cfg, "LFE5U-25F-6BG256C", target_mhz=50,
                     progress=lambda stage, status: stages.add(stage))
    assert {"elaborate", "yosys", "nextpnr"} <= stages
    assert result["cached"] is False and result["status"] in ("ok", "timing-not-met")
    assert result["device"] == "LFE5U-25F-6BG256C" and result["target_mhz"] == 50
    assert result["fmax_mhz"] > 20
    util = result["utilization"]
    assert {"LUT4", "FF", "MULT18X18D", "EBR"} <= set(util)
    for name, entry in util.items():
        assert 0 <= entry["used"] <= entry["available"], name
    assert util["LUT4"]["used"] > 100 and util["FF"]["used"] > 100
    assert result["dsp"]["array"] == 4 and result["dsp"]["per_pe"] == 1
    assert result["critical_paths"] and result["top_paths"]
    assert result["top_paths"][0]["delay_ns"] == pytest.approx(1000 / result["fmax_mhz"],
                                                               rel=0.02)
    assert Path(result["logs"]["nextpnr"]).is_file()
    assert not list(Path(result["build_dir"]).glob("*.sdf"))      # bulky files removed
    again = run_ooc(cfg, "LFE5U-25F-6BG256C", target_mhz=50)
    assert again["cached"] is True and again["fmax_mhz"] == result["fmax_mhz"]
    only = cached_result(cfg, "LFE5U-25F-6BG256C", 50)
    assert only["cached"] is True and only["cache_key"] == result["cache_key"]
    fmax, note = cache.cached_fmax(cfg)
    assert fmax == result["fmax_mhz"] and "LFE5U-25F-6BG256C" in note
    # a seed sweep: seed 1 from the cache, seed 2 placed and routed; the best is kept and
    # every seed's figure listed; the table's cache lookup needs both seeds
    from accelgen.boards.flow import run_ooc_seeds
    part_cached = cached_result(cfg, "LFE5U-25F-6BG256C", 50, seeds=(1, 2))
    assert part_cached["seed"] == 1 and part_cached["missing_seeds"] == [2]
    swept = run_ooc_seeds(cfg, "LFE5U-25F-6BG256C", seeds=(1, 2), target_mhz=50)
    each = {s["seed"]: s for s in swept["seeds"]}
    assert list(each) == [1, 2] and each[1]["cached"] and not each[2]["cached"]
    # two uncached seeds at a time, in worker processes; the order of `seeds` is kept
    done = []
    par = run_ooc_seeds(cfg, "LFE5U-25F-6BG256C", seeds=(4, 2, 3), jobs=2, target_mhz=50,
                        progress=lambda stage, status: done.append(status))
    assert [s["seed"] for s in par["seeds"]] == [4, 2, 3]
    assert [s["cached"] for s in par["seeds"]] == [False, True, False]
    assert par["seeds"][1]["fmax_mhz"] == each[2]["fmax_mhz"]
    assert sum("seeds done" in status for status in done) == 2
    assert par["fmax_mhz"] == max(s["fmax_mhz"] for s in par["seeds"])
    assert each[1]["fmax_mhz"] == result["fmax_mhz"]
    assert swept["fmax_mhz"] == max(s["fmax_mhz"] for s in swept["seeds"])
    assert each[swept["seed"]]["fmax_mhz"] == swept["fmax_mhz"]
    assert swept["material"]["seed"] == swept["seed"]
    both = cached_result(cfg, "LFE5U-25F-6BG256C", 50, seeds=(1, 2))
    assert both["cache_key"] == swept["cache_key"] and both["seeds"][1]["cached"]
    assert both["missing_seeds"] == []


@pytest.mark.slow
@pytest.mark.synth
def test_icebreaker_bitstream_build(tmp_path, monkeypatch, need_tool):
    """One iCE40 board build: PLL, UART bridge and the loopback stand-in on the iCEBreaker.

    An accelerator with the full-size setup and CSRs does not fit the iCE40UP5K (a 1x1
    array needs about 98% of its logic cells, and nextpnr's placer grinds for tens of
    minutes before it gives up), so the board flow is exercised with the bring-up
    stand-in, and a misfit must be reported plainly, as does-not-fit with its log: a
    4x4 array (6,606 flip-flops for the part's 5,280) is refused from Yosys's cell
    counts, before place and route.
    (The small-FPGA options of ``boards.table.ice40_config`` fit out of context up to
    2x2.)
    """
    from accelgen.boards.build import run_board
    from accelgen.boards.loopback import LoopbackConfig
    from accelgen.boards.runner import SynthError
    need_tool("nextpnr-ice40", "icepack")
    monkeypatch.setenv("ACCELGEN_CACHE", str(tmp_path))
    result = run_board(LoopbackConfig(), "icebreaker", target_mhz=24)
    assert result["board"] == "ICEBreakerPlatform" and result["device"] == "iCE40UP5K-SG48"
    assert result["clock_hz_actual"] == 24e6 and result["pll"]["primitive"] == "SB_PLL40_PAD"
    bitstream = Path(result["bitstream"])
    assert bitstream.suffix == ".bin" and bitstream.stat().st_size > 100_000
    util = result["utilization"]
    assert {"LUT4", "FF", "LC", "SB_MAC16", "EBR", "SPRAM", "PLL"} <= set(util)
    for name, entry in util.items():
        assert 0 <= entry["used"] <= entry["available"], name
    assert util["PLL"]["used"] == 1 and util["IO"]["used"] >= 3    # clock, UART rx/tx
    assert result["timing_met"] and result["fmax_mhz"] > 24
    cfg = GemmConfig(rows=4, cols=4, **SMALL)
    with pytest.raises(SynthError) as info:
        run_board(cfg, "icebreaker", target_mhz=24, dsp="all")
    error = info.value
    assert error.kind == "does-not-fit", error
    assert "does not fit" in str(error) and "iCE40UP5K-SG48" in str(error)
    assert "needs" in str(error) and "(has 5280)" in str(error)
    assert error.log is not None and error.log.is_file()


# --- command line -----------------------------------------------------------------------------

@pytest.mark.parametrize("argv,message", [
    (["synth"], "say where to synthesize: --part CODE, --board NAME, --asic or --table"),
    (["synth", "--part", "LFE5U-85F-9BG381C"], "Speed grade of LFE5U-85F must be one of 6, 7, 8"),
    (["synth", "--board", "nosuchboard"], "Board must be an alias"),
    (["synth", "--loopback", "--part", "iCE40UP5K-SG48"], "--loopback is a board build"),
    (["synth", "--cached-only", "--part", "iCE40UP5K-SG48"], "--cached-only goes with --table"),
    (["synth", "--table", "--cached-only", "--no-cache"],
     "--cached-only reads the cache; it cannot go with --no-cache"),
    (["synth", "--board", "icebreaker", "--seeds", "1,2"], "--seeds goes with --part or --table"),
    (["synth", "--part", "iCE40UP5K-SG48", "--seeds", "3-1"],
     "--seeds: seeds are non-negative and ranges ascending, not '3-1'"),
    (["synth", "--table", "--seeds", "1,x"], "--seeds: seeds are integers or ranges like 1-4"),
    (["synth", "--table", "--jobs", "0"], "--jobs must be at least 1, not 0"),
])
def test_synth_command_usage_errors(argv, message, capsys):
    from accelgen.host.cli import main
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_synth_command_lists_boards(capsys):
    from accelgen.host.cli import main
    assert main(["synth", "--list-boards"]) == 0
    out = capsys.readouterr().out
    assert "icebreaker" in out and "ULX3S_85F_Platform" in out


def test_synth_command_reports_a_missing_tool(tmp_path, monkeypatch, capsys):
    from accelgen.host.cli import main
    monkeypatch.setenv("ACCELGEN_CACHE", str(tmp_path))
    monkeypatch.setenv("ACCELGEN_NEXTPNR_ICE40", str(tmp_path / "no-such-nextpnr"))
    assert main(["synth", "--rows", "1", "--cols", "1", "--part", "iCE40UP5K-SG48"]) == 1
    err = capsys.readouterr().err
    assert "accelgen synth: tool missing: nextpnr-ice40 not found" in err


@pytest.mark.icarus
@pytest.mark.parametrize("width,depth", [(20, 1000), (12, 2000), (5, 4000), (3, 8000), (2, 16000)])
def test_ecp5_ram_on_a_dp16kd_model(tmp_path, width, depth, need_tool):
    """The DP16KD instances of ECP5RAM (every aspect ratio, two read ports, output
    registers) hold and return words with the PipelinedRAM contract: a word read at
    cycle t arrives at t + 2. Simulated with Icarus against tests/data/dp16kd_model.v."""
    import subprocess
    from amaranth.back import verilog
    from accelgen import toolchain
    from accelgen.boards.primitives import ECP5RAM, dp16kd_mode
    need_tool("iverilog")
    ram = ECP5RAM(width, depth, read_ports=2)
    assert ram.blocks == 2 * -(-width // dp16kd_mode(depth))
    ports = [ram.w_addr, ram.w_data, ram.w_en, ram.r_addr.as_value(), ram.r_data.as_value()]
    (tmp_path / "ram.v").write_text(verilog.convert(ram, name="ram", ports=ports))
    rng = np.random.default_rng(width)
    aw = len(ram.w_addr)
    addrs = rng.choice(depth, size=24, replace=False)
    words = rng.integers(0, 1 << width, size=24)
    lines = []
    for a, w in zip(addrs, words):          # writes, one per cycle
        lines.append(f"w_addr = {a}; w_data = {w}; w_en = 1; r_addr = 0; @(posedge clk); #1;")
    lines.append("w_en = 0;")
    reads = list(zip(addrs, addrs[::-1]))   # two ports, different addresses
    for a0, a1 in reads:
        lines.append(f"r_addr = {{{aw}'d{a1}, {aw}'d{a0}}}; @(posedge clk); #1; "
                     "$display(\"%0d\", r_data);")
    lines += ["@(posedge clk); #1; $display(\"%0d\", r_data);"] * 2
    (tmp_path / "tb.v").write_text(f"""
module tb;
  reg clk = 0, rst = 0, w_en = 0;
  reg [{aw - 1}:0] w_addr = 0; reg [{width - 1}:0] w_data = 0; reg [{2 * aw - 1}:0] r_addr = 0;
  wire [{2 * width - 1}:0] r_data;
  ram dut(.clk(clk), .rst(rst), .w_addr(w_addr), .w_data(w_data), .w_en(w_en),
          .r_addr(r_addr), .r_data(r_data));
  always #5 clk = ~clk;
  initial begin
    #1;
    {chr(10).join('    ' + l for l in lines)}
    $finish;
  end
endmodule
""")
    model = Path(__file__).parent / "data" / "dp16kd_model.v"
    iverilog = toolchain.find("iverilog").path
    subprocess.run([str(iverilog), "-g2005", "-o", "sim", "tb.v", "ram.v", str(model)],
                   cwd=tmp_path, check=True)
    vvp = Path(str(iverilog)).with_name("vvp")
    out = subprocess.run([str(vvp), "-n", "sim"], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout.split()
    got = [int(v) for v in out if v.isdigit()]
    mem = dict(zip(addrs.tolist(), words.tolist()))
    mask = (1 << width) - 1
    # the display after the read of cycle t shows the word of cycle t - 1 (t + 2 counted
    # from the address edge): two cycles of latency
    for i, (a0, a1) in enumerate(reads):
        value = got[i + 1]
        assert value & mask == mem[a0] and value >> width == mem[a1], (i, a0, a1)


def test_fill_mode_hands_out_the_parts_dsp_blocks_and_leaves_the_rest_logic():
    """``dsp="fill"``: a 6x6 array on a 25F (28 MULT18X18D) gets 28 registered DSP
    multipliers; the other multipliers (PEs' and the job setup's) are logic (Amaranth's
    ``*``, -nodsp)."""
    from accelgen.boards.flow import ooc_rtlil, primitives_for
    from accelgen.boards.primitives import ECP5Primitives
    part = parse_part("LFE5U-25F-6BG256C")
    assert part.resources["MULT18X18D"] == 28
    hooks = primitives_for(part, "fill")
    assert hooks.budget == 28 and primitives_for(part, "all").budget is None
    cfg = GemmConfig(rows=6, cols=6, **SMALL)
    text = ooc_rtlil(cfg, part, "fill")
    every = ooc_rtlil(cfg, part, "all")
    wanted = every.count("cell \\MULT18X18D ")       # the PEs' and the job setup's
    assert wanted > 36 and text.count("cell \\MULT18X18D ") == 28
    assert text.count("cell $mul ") - every.count("cell $mul ") == wanted - 28
    with pytest.raises(ValueError, match="DSP budget must be a non-negative integer"):
        ECP5Primitives(budget=-1)


def test_seed_lists_parse_and_bad_ones_are_refused():
    from accelgen.boards.flow import parse_seeds, run_ooc_seeds
    assert parse_seeds("1-4") == (1, 2, 3, 4)
    assert parse_seeds("5, 1-2,2") == (5, 1, 2)
    for bad in ("", "a", "4-1", "-3", "1.5"):
        with pytest.raises(ValueError):
            parse_seeds(bad)
    for bad in ((), (1, 1), (-1,), (True,), ("1",)):
        with pytest.raises(ValueError, match="seeds must be distinct non-negative integers"):
            run_ooc_seeds(GemmConfig(rows=2, cols=2), "LFE5U-25F-6BG256C", seeds=bad)
    from accelgen.boards.flow import best_of_seeds
    tie = best_of_seeds([(5, {"fmax_mhz": 90.0}), (2, {"fmax_mhz": 99.5}),
                         (7, {"fmax_mhz": 99.5, "cached": True})])
    assert tie["seed"] == 2 and [s["seed"] for s in tie["seeds"]] == [5, 2, 7]
    assert [s["cached"] for s in tie["seeds"]] == [False, False, True]
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        run_ooc_seeds(GemmConfig(rows=2, cols=2), "LFE5U-25F-6BG256C", seeds=(1, 2), jobs=0)


def test_synth_errors_survive_a_worker_process():
    import pickle
    from accelgen.boards.runner import SynthError
    error = pickle.loads(pickle.dumps(SynthError("does-not-fit", "too big", Path("/x/log"))))
    assert error.kind == "does-not-fit" and error.log == Path("/x/log")
    assert str(error) == "too big (log: /x/log)"


def test_table_document_lists_every_seed_of_a_swept_row():
    from accelgen.boards.table import (_missing, ecp5_configs, render_markdown, ECP5_PART)
    gemm = ecp5_configs(quick=True)[0]
    row = {**_missing(gemm, ECP5_PART, 150.0, None, None), "fmax_mhz": 131.2, "seed": 3,
           "seeds": [{"seed": 1, "fmax_mhz": 120.5, "cached": True},
                     {"seed": 2, "fmax_mhz": 118.0, "cached": False},
                     {"seed": 3, "fmax_mhz": 131.2, "cached": False}]}
    data = {"ecp5": [row], "sparse": [], "ice40": [], "ice40_largest": None,
            "ice40_largest_known": False, "asic": [], "seeds": [1, 2, 3]}
    text = render_markdown(data)
    assert f"- {gemm.describe()}: 1: 120.5, 2: 118.0, 3: 131.2 (kept) MHz" in text
    assert "seeds 1, 2, 3" in text


def test_table_document_has_the_sparse_row_and_names_missing_results():
    from accelgen.boards.table import (_missing, ecp5_configs, render_markdown, sparse_configs,
                                       ECP5_PART)
    from accelgen.hdl import SparseConfig
    assert sparse_configs(quick=True) == [] and sparse_configs() == [SparseConfig(lanes=8)]
    gemm, sparse = ecp5_configs(quick=True)[0], sparse_configs()[0]
    data = {"ecp5": [_missing(gemm, ECP5_PART, 150.0, "not-cached", "no result")],
            "sparse": [_missing(sparse, ECP5_PART, 150.0, "not-cached", "no result either")],
            "ice40": [], "ice40_largest": None, "ice40_largest_known": False, "asic": []}
    text = render_markdown(data)
    assert "Sparse engine, same part and target" in text
    assert f"| {sparse.describe()} | {ECP5_PART} | 150 | not-cached |" in text
    assert f"- {sparse.describe()}: no result either" in text
    assert "largest that fits: **unknown" in text


def test_cached_result_follows_a_remembered_dsp_shortfall(monkeypatch):
    """A remembered "too few DSP blocks" in one mode moves on to the next mode's cached
    result; a miss (the run would start with elaborate) is None; tools never run. On
    ECP5 an array with more PEs than DSP blocks skips "all" and "array" (each PE takes a
    block of its own through the hook)."""
    from accelgen.boards import flow
    from accelgen.boards.runner import SynthError
    from accelgen.boards.table import cached_result
    cached = {("array", 1): {"fmax_mhz": 40.0, "multipliers": "array", "cached": True},
              ("fill", 1): {"fmax_mhz": 50.0, "multipliers": "fill", "cached": True},
              ("fill", 3): {"fmax_mhz": 55.0, "multipliers": "fill", "cached": True}}
    tried = []

    def fake(config, part, target, found, seed, dsp, progress, use_cache, keep_files):
        tried.append((config.rows, dsp))
        if dsp == "all":
            raise SynthError("does-not-fit", f"{config.describe()} does not fit {part.code}: "
                             "needs 183 MULT18X18D (has 156) (remembered; --no-cache reruns)")
        if (dsp, seed) in cached:
            return cached[dsp, seed]
        progress("elaborate", "would run")
        raise AssertionError("a refused run went on")

    monkeypatch.setattr(flow, "_cached_run", fake)
    monkeypatch.setattr(flow, "select_tools", lambda names, tools: {n: None for n in names})
    # 12x12: 144 PEs fit the 156 blocks, the other multipliers do not
    found = cached_result(GemmConfig(rows=12, cols=12), "LFE5U-85F-6BG381C", 150)
    assert tried == [(12, "all"), (12, "array")] and found["multipliers"] == "array"
    # 16x16: straight to fill
    tried.clear()
    cfg = GemmConfig(rows=16, cols=16)
    found = cached_result(cfg, "LFE5U-85F-6BG381C", 150)
    assert tried == [(16, "fill")]
    assert found["fmax_mhz"] == 50.0 and found["multipliers"] == "fill"
    assert found["seeds"] == [{"seed": 1, "fmax_mhz": 50.0, "cached": True}]
    # of seeds 1-3, two are cached: their best, and the missing one named
    found = cached_result(cfg, "LFE5U-85F-6BG381C", 150, seeds=(1, 2, 3))
    assert found["fmax_mhz"] == 55.0 and found["seed"] == 3 and found["missing_seeds"] == [2]
    assert [s["seed"] for s in found["seeds"]] == [1, 3]
    cached.clear()
    assert cached_result(cfg, "LFE5U-85F-6BG381C", 150) is None
    assert cached_result(cfg, "LFE5U-85F-6BG381C", 150, seeds=(1, 2)) is None
