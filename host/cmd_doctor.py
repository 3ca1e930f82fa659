"""``accelgen doctor``: which tools are installed, and what each one enables."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import asdict
from typing import Any

from accelgen import __version__, toolchain

__all__ = ["add_parser", "report", "run"]

_PACKAGES = ("amaranth", "amaranth-boards", "cocotb", "cocotbext-axi", "numpy")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``doctor`` with the CLI's subparsers."""
    parser = subparsers.add_parser(
        "doctor",
        help="show which external tools are found and what each enables",
        description="Report every external tool accelgen can use: where it was found "
                    "(PyPI wheel, YoWASP, system PATH, environment override), its version, "
                    "and what it enables. Missing optional tools are not an error.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of a table")
    return parser


def report() -> dict[str, Any]:
    """The doctor report as JSON-ready data.

    Returns
    -------
    dict
        ``accelgen``, ``python`` and ``packages`` versions, and ``tools``: one dict
        per tool with the :class:`~accelgen.toolchain.Tool` fields plus ``found``
        and ``problem``.
    """
    versions = toolchain.tool_versions()
    tools = []
    for tool in toolchain.all_tools():
        entry = asdict(tool)
        entry["found"] = tool.found
        entry["problem"] = tool.problem
        tools.append(entry)
    return {
        "accelgen": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "packages": {name: versions[name] for name in _PACKAGES if name in versions},
        "tools": tools,
    }


def _print_table(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    packages = ", ".join(f"{name} {version}" for name, version in data["packages"].items())
    table = Table(
        title=f"accelgen {data['accelgen']} toolchain",
        caption=f"Python {data['python']} ({data['executable']}); {packages}",
    )
    table.add_column("tool", style="bold", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("path", overflow="fold")
    table.add_column("enables")
    for tool in data["tools"]:
        if not tool["found"]:
            status = "[red]missing[/red]"
        elif tool["note"]:
            status = "[yellow]found[/yellow]"
        else:
            status = "[green]found[/green]"
        table.add_row(
            tool["name"], status, tool["version"] or "", tool["source"] or "",
            tool["path"] or "", tool["enables"],
        )
    # Logs and CI capture output through a pipe, where rich assumes 80 columns
    # and would fold every path; give the table room there.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(table)
    for tool in data["tools"]:
        if tool["problem"]:
            console.print(f"[yellow]note:[/yellow] {tool['problem']}", highlight=False)


def run(args: argparse.Namespace) -> int:
    """Print the report; exit status 0 even when optional tools are missing."""
    data = report()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _print_table(data)
    return 0
