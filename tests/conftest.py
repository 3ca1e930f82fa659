"""Shared fixtures and tool-availability helpers for the accelgen test suite.

Tests that need an external tool say so in one of two ways, and are skipped
with a reason that says how to get the tool (``pytest -ra`` prints it):

* the category markers ``verilator``, ``icarus`` and ``synth`` skip automatically
  when their tools are missing (see :data:`MARKER_TOOLS`);
* ``@requires_tool("nextpnr-ecp5")`` (importable from ``conftest``) for any tool
  :func:`accelgen.toolchain.find` knows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from accelgen import toolchain

#: Tools each category marker needs; a marked test is skipped if one is missing.
MARKER_TOOLS: dict[str, tuple[str, ...]] = {
    "verilator": ("verilator", "g++", "make", "perl"),
    "icarus": ("iverilog",),
    "synth": ("yosys",),
}


def tool_problem(*names: str) -> str | None:
    """Why the named tools cannot be used, or ``None`` if all of them can."""
    problems = [p for p in (toolchain.find(name).problem for name in names) if p]
    return "; ".join(problems) or None


def requires_tool(*names: str) -> pytest.MarkDecorator:
    """Skip the test (or module, via ``pytestmark``) unless every named tool is usable.

    Parameters
    ----------
    *names : str
        Tool names as in :func:`accelgen.toolchain.find`, e.g. ``"iverilog"``.

    Returns
    -------
    pytest.MarkDecorator
        A ``skipif`` mark whose reason reads like ``"iverilog not found: install
        Debian package iverilog; needed for cocotb on Icarus, the second simulator"``.
    """
    problem = tool_problem(*names)
    return pytest.mark.skipif(problem is not None, reason=problem or "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems: dict[str, str | None] = {}
    for item in items:
        for marker, names in MARKER_TOOLS.items():
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in problems:
                problems[marker] = tool_problem(*names)
            if problems[marker]:
                item.add_marker(pytest.mark.skip(reason=problems[marker]))


@pytest.fixture
def need_tool() -> Callable[..., None]:
    """Call with tool names to skip the running test unless they are all usable."""
    def need(*names: str) -> None:
        problem = tool_problem(*names)
        if problem:
            pytest.skip(problem)
    return need


@pytest.fixture
def verilator_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Put :func:`accelgen.toolchain.verilator_env` into :data:`os.environ` for one test.

    cocotb's runner copies :data:`os.environ` when it builds, so cocotb tests on
    Verilator use this fixture. Skips the test if Verilator is not usable.
    """
    problem = tool_problem(*MARKER_TOOLS["verilator"])
    if problem:
        pytest.skip(problem)
    env = toolchain.verilator_env()
    for key, value in env.items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    yield env


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Repeat the cocotb runners' one-line results (``cocotb[verilator, os2x2]: 67
    passed, ...``) at the end: under pytest-xdist (``PYTEST_ARGS="-n 2"``) the
    workers' own prints are not shown, but test report properties travel back."""
    lines = []
    for kind in ("passed", "failed"):
        for report in terminalreporter.stats.get(kind, []):
            if getattr(report, "when", "call") != "call":
                continue
            lines += [v for k, v in getattr(report, "user_properties", []) if k == "cocotb"]
    if lines:
        terminalreporter.section("cocotb")
        for line in lines:
            terminalreporter.write_line(line)
