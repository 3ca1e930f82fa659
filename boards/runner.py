"""Running the synthesis tools: tool selection, logs, progress and plain failures.

YoWASP tools run in a WebAssembly sandbox that sees only the current working
directory tree, so every tool runs with ``cwd`` set to the build directory and
relative paths. Output (stdout and stderr) goes to one log per tool in the build
directory; while a tool runs, each line that says what the tool is doing (a Yosys
pass header, a nextpnr ``Info:`` line) is passed to a progress callback.

Failures raise :class:`SynthError` with a ``kind`` a program can test
(``"tool-missing"``, ``"does-not-fit"``, ``"timing"``, ``"tool-failed"``), a one-line
plain message and the path of the log to read.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from accelgen import toolchain

__all__ = ["SynthError", "Progress", "TOOL_SETS", "forced_tools", "select_tools", "run_tool",
           "first_error"]

#: ``(stage, detail)``: stage is e.g. ``"yosys"``, detail a short status line.
Progress = Callable[[str, str], None]

#: Accepted values of ``--tools``; ``None`` means toolchain's default order
#: (YoWASP first, then the system; environment overrides win).
TOOL_SETS = ("yowasp", "system")

# Override variable toolchain reads first for each tool; see accelgen.toolchain.
_OVERRIDE = {
    "yosys": "ACCELGEN_YOSYS",
    "nextpnr-ecp5": "ACCELGEN_NEXTPNR_ECP5",
    "ecppack": "ACCELGEN_ECPPACK",
    "nextpnr-ice40": "ACCELGEN_NEXTPNR_ICE40",
    "icepack": "ACCELGEN_ICEPACK",
}


class SynthError(RuntimeError):
    """A synthesis or place-and-route run that did not produce a usable result.

    Members
    -------
    kind : str
        ``"tool-missing"``, ``"does-not-fit"``, ``"timing"`` (post-route Fmax below
        the target and the caller asked to fail on it) or ``"tool-failed"``.
    log : Path or None
        The log that explains it.
    """

    def __init__(self, kind: str, message: str, log: Path | None = None):
        self.kind = kind
        self.log = Path(log) if log is not None else None
        self._message = message
        super().__init__(message + (f" (log: {self.log})" if self.log is not None else ""))

    def __reduce__(self):
        # raised in a worker process of a parallel seed sweep, re-raised in the caller's
        return (type(self), (self.kind, self._message, self.log))


@contextmanager
def forced_tools(names, tools: str | None) -> Iterator[None]:
    """Within the block, toolchain lookups of ``names`` find the ``tools`` source.

    ``"yowasp"`` or ``"system"`` set toolchain's ``ACCELGEN_<TOOL>`` overrides to
    ``yowasp-<tool>`` or ``<tool>`` (restored afterwards), so that
    :func:`accelgen.toolchain.find` and :func:`accelgen.toolchain.amaranth_build_env`
    agree; ``None`` changes nothing.

    Raises
    ------
    ValueError
        If ``tools`` is not one of :data:`TOOL_SETS` or ``None``.
    """
    if tools is None:
        yield
        return
    if tools not in TOOL_SETS:
        raise ValueError(f"Tool set must be one of {', '.join(map(repr, TOOL_SETS))} or None, "
                         f"not {tools!r}")
    prefix = "yowasp-" if tools == "yowasp" else ""
    variables = [_OVERRIDE[n] for n in names]
    saved = {var: os.environ.get(var) for var in variables}
    try:
        for name, var in zip(names, variables):
            os.environ[var] = prefix + name
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def select_tools(names, tools: str | None = None) -> dict[str, toolchain.Tool]:
    """Find the named tools, from YoWASP, the system, or toolchain's default order.

    Parameters
    ----------
    names : iterable of str
        Tool names known to :func:`accelgen.toolchain.find`, e.g. ``"yosys"``.
    tools : str or None
        ``"yowasp"`` or ``"system"`` to force a source (see :func:`forced_tools`);
        ``None`` for the default order.

    Returns
    -------
    dict of str to Tool

    Raises
    ------
    ValueError
        If ``tools`` is not one of :data:`TOOL_SETS` or ``None``.
    SynthError
        ``kind="tool-missing"`` if a tool is not available; the message says how
        to get it.
    """
    names = list(names)
    with forced_tools(names, tools):
        found = {n: toolchain.find(n) for n in names}
    missing = [t.problem for t in found.values() if not t.found]
    if missing and tools == "system":
        missing = [f"{n} not found on PATH (--tools system asks for system tools; by default "
                   f"accelgen uses the YoWASP builds from PyPI)" for n, t in found.items()
                   if not t.found]
    if missing:
        raise SynthError("tool-missing", "; ".join(missing))
    return found


# Lines worth showing while a tool runs.
_YOSYS_STEP = re.compile(r"^\d+(?:\.\d+)*\. (Executing .*?)(?: \(.*)?\.?$")
_NEXTPNR_STEP = re.compile(r"^Info: (.+)$")


def _status_line(line: str) -> str | None:
    m = _YOSYS_STEP.match(line)
    if m:
        return m[1].rstrip(".")
    m = _NEXTPNR_STEP.match(line)
    if m:
        text = m[1].strip()
        return text if text and not text.startswith("Logic utilisation") else None
    return None


def run_tool(tool: toolchain.Tool | str, args: list[str], *, cwd: Path, log: Path, stage: str,
             progress: Progress | None = None, env: dict | None = None,
             retries: int = 1) -> float:
    """Run one tool to completion with its output in ``log``.

    Parameters
    ----------
    tool : Tool or str
        The tool, or a command (e.g. ``"sh"`` for an Amaranth build script).
    args : list of str
        Arguments; file names relative to ``cwd``.
    cwd : Path
        Build directory (YoWASP tools see only this tree).
    log : Path
        Log file (overwritten).
    stage : str
        Stage name for progress, e.g. ``"yosys"``, ``"nextpnr"``, ``"ecppack"``.
    progress : callable, optional
        Called as ``progress(stage, status_line)``.
    env : dict, optional
        Environment for the tool.
    retries : int
        Reruns after a failure that left no ``ERROR`` line: YoWASP tools have been
        seen to exit with status 1 and no message mid-run (e.g. inside ABC9) when
        several run at once; the same run then succeeds. The failed attempt's log
        is kept as ``<log>.<n>``.

    Returns
    -------
    float
        Seconds the tool ran.

    Raises
    ------
    SynthError
        ``kind="tool-failed"`` with the tool's first ``ERROR`` line on a non-zero
        exit (the caller may reclassify, e.g. as ``"does-not-fit"``).
    """
    t0 = time.monotonic()
    command = tool.path if isinstance(tool, toolchain.Tool) else tool
    if progress:
        progress(stage, f"starting {Path(command).name}")
    with open(log, "w") as f:
        f.write("$ " + " ".join([command, *args]) + f"\n# cwd: {cwd}\n")
    # The tool writes straight into the log file: through a pipe, YoWASP tools
    # buffer their output until they exit. The log is followed for progress.
    with open(log, "a") as out, open(log, errors="replace") as follow:
        proc = subprocess.Popen([command, *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            partial = ""
            while True:
                rc = proc.poll()
                chunk = follow.read()
                if chunk:
                    lines = (partial + chunk).split("\n")
                    partial = lines.pop()
                    if progress:
                        status = next((st for st in map(_status_line, reversed(lines)) if st),
                                      None)
                        if status:
                            progress(stage, status)
                if rc is not None:
                    break
                time.sleep(0.5)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    seconds = time.monotonic() - t0
    if rc != 0:
        why = first_error(log)
        if why is None and retries > 0 and rc > 0:
            attempt = 1
            while log.with_name(f"{log.name}.{attempt}").exists():
                attempt += 1
            log.rename(log.with_name(f"{log.name}.{attempt}"))
            if progress:
                progress(stage, f"exited with status {rc} and no message; running it again")
            return seconds + run_tool(tool, args, cwd=cwd, log=log, stage=stage,
                                      progress=progress, env=env, retries=retries - 1)
        raise SynthError("tool-failed",
                         f"{stage} failed (exit status {rc}): {why or 'no ERROR line'}", log)
    return seconds


def first_error(log: Path) -> str | None:
    """The first ``ERROR:`` line of a Yosys or nextpnr log, without the prefix."""
    try:
        with open(log, errors="replace") as f:
            for line in f:
                if line.startswith("ERROR:"):
                    return line[6:].strip()
    except OSError:
        return None
    return None
