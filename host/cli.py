"""The ``accelgen`` command line.

Each subcommand ``NAME`` is a module ``accelgen.host.cmd_NAME`` with two functions:

``add_parser(subparsers)``
    Register its parser: ``subparsers.add_parser("NAME", help=..., ...)``.
``run(args) -> int``
    Do the work; the return value is the exit status.

To add a subcommand, write the module and append its name to :data:`COMMANDS`.
Only the selected subcommand's module is imported, so a cheap command stays fast
however heavy the others are.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from accelgen import __version__

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommand names, in the order ``accelgen --help`` lists them.
COMMANDS: list[str] = [
    "demo",
    "generate",
    "run",
    "bench",
    "sparse_bench",
    "synth",
    "doctor",
]


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"accelgen.host.cmd_{name}")


def _selected(argv: Sequence[str]) -> str | None:
    # The first positional argument names the subcommand (the top-level parser
    # has no options that take a value).
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] = ()) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """Build the argument parser, importing only the subcommand ``argv`` selects.

    Parameters
    ----------
    argv : sequence of str
        Command-line arguments without the program name. If they select no known
        subcommand (``--help``, a typo), every subcommand is loaded so that help
        and error messages list them all.

    Returns
    -------
    parser : argparse.ArgumentParser
    modules : dict of str to module
        The subcommand modules that were loaded, by name.
    """
    parser = argparse.ArgumentParser(
        prog="accelgen",
        description="Generate, verify and synthesize ML accelerators (Amaranth HDL).",
    )
    parser.add_argument("--version", action="version", version=f"accelgen {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    selected = _selected(argv)
    names = [selected] if selected in COMMANDS else COMMANDS
    modules = {name: _load(name) for name in names}
    for module in modules.values():
        module.add_parser(subparsers)
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``accelgen`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, modules = build_parser(argv)
    args = parser.parse_args(argv)
    from .cliutil import CliError
    try:
        return int(modules[args.command].run(args))
    except CliError as e:
        print(f"accelgen {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"accelgen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
