"""The synthesis result cache, and the Fmax lookup the driver's reports use.

Results live in ``$ACCELGEN_CACHE/synth/<key>/result.json`` (``$ACCELGEN_CACHE``
defaults to ``~/.cache/accelgen``), next to the tool logs and reports of the run.
The key hashes everything the result depends on:

* the config hash (the config's canonical JSON);
* for out-of-context runs and ASIC estimates, the digest of the elaborated netlist
  (:func:`netlist_digest`: the RTLIL Yosys reads, without its source-location
  attributes) and of the tool scripts. An edit of the Python sources that leaves a
  config's netlist as it was (a comment, a refactor, a change to another engine)
  keeps its results valid; any change to the netlist invalidates them;
* for board builds, a digest of the HDL sources (``accelgen.hdl``) and of the
  modules of ``accelgen.boards`` that shape a netlist (:data:`NETLIST_MODULES`):
  the board flow hands the design to amaranth-boards, which elaborates it itself;
* the flow (out-of-context, board build, ASIC estimate), the part or board and
  the target clock (nextpnr's placement is timing driven), the seed;
* the versions of Amaranth, Yosys and nextpnr.

Elaborating a large array takes seconds, so the netlist digest of a config under
the current sources is remembered in ``netlists/`` (keyed by the source digest):
looking a result up again does not elaborate again.

An entry is complete when its ``result.json`` exists; it is written last, and the
entry directory is renamed into place only when the run has finished, so readers
never see half an entry. Runs that failed keep their logs in
``$ACCELGEN_CACHE/synth/failed/<key>/``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

__all__ = ["DEFAULT_PART", "NETLIST_MODULES", "cache_dir", "source_digest", "netlist_digest",
           "remembered_digest", "Netlist", "entry_key", "lookup", "store_dir", "iter_results",
           "cached_fmax", "locked", "discard", "raise_known_misfit"]

#: The part whose Fmax the driver's reports quote by default.
DEFAULT_PART = "LFE5U-85F-6BG381C"

_FORMAT = 1       # layout of a cache entry; bump to invalidate every entry


def cache_dir() -> Path:
    """Root of the synthesis cache: ``$ACCELGEN_CACHE/synth``.

    ``$ACCELGEN_CACHE`` defaults to ``~/.cache/accelgen``.
    """
    root = os.environ.get("ACCELGEN_CACHE") or os.path.join(Path.home(), ".cache", "accelgen")
    return Path(root) / "synth"


#: Modules of :mod:`accelgen.boards` that shape a netlist (harness, synthesis scripts,
#: board top, UART, bridge, stand-in, vendor primitives). Editing reports, caching or the CLI keeps
#: cached results valid.
NETLIST_MODULES = ("harness.py", "flow.py", "build.py", "top.py", "uart.py", "bridge.py",
                   "loopback.py", "asic.py", "primitives.py")


@lru_cache(maxsize=None)
def _files_digest(folder: str, names: tuple[str, ...] | None) -> str:
    h = hashlib.sha256()
    paths = sorted(Path(folder).glob("*.py")) if names is None else \
        [Path(folder) / n for n in sorted(names)]
    for path in paths:
        if path.is_file():
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def source_digest() -> str:
    """Digest of the sources a netlist depends on (16 hex digits).

    Every module of ``accelgen.hdl`` and the :data:`NETLIST_MODULES` of
    ``accelgen.boards``: a change to them can change the netlist of a config whose
    config hash stays the same. Computed once per process.
    """
    from accelgen import hdl
    here = Path(__file__).parent
    hdl_dir = Path(hdl.__file__).parent
    return hashlib.sha256((_files_digest(str(hdl_dir), None)
                           + _files_digest(str(here), NETLIST_MODULES)).encode()
                          ).hexdigest()[:16]


_SRC_ATTRIBUTE = re.compile(r"^\s*attribute \\src .*\n?", re.MULTILINE)


def netlist_digest(rtlil_text: str) -> str:
    """Digest (16 hex digits) of an RTLIL netlist, without its ``src`` attributes.

    The ``src`` attributes name the Python file and line each cell came from; they
    change when an unrelated line moves, and with the checkout's path, while the
    netlist does not.
    """
    return hashlib.sha256(_SRC_ATTRIBUTE.sub("", rtlil_text).encode()).hexdigest()[:16]


def remembered_digest(material: Mapping, compute) -> str:
    """``compute()`` (a netlist digest), remembered per ``material``, source digest and
    Amaranth version.

    The digest is stored in ``netlists/<key>`` of the cache; a change of the sources
    (:func:`source_digest`) or of Amaranth makes a new key, so a stale digest is never
    returned.
    """
    import amaranth
    path = cache_dir() / "netlists" / entry_key({"source_digest": source_digest(),
                                                 "amaranth": amaranth.__version__, **material})
    try:
        digest = path.read_text().strip()
        if re.fullmatch(r"[0-9a-f]{16}", digest):
            return digest
    except OSError:
        pass
    digest = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(digest + "\n")
    os.replace(tmp, path)
    return digest


class Netlist:
    """A config's netlist for one flow: its digest (the cache key's part), remembered
    per source version, and the elaborated text, made at most once.

    ``elaborate()`` returns ``(rtlil_text, extra)``; ``extra`` is whatever else the
    flow wants from the elaboration. :meth:`elaborated` gives both, and fails when the
    text no longer has the remembered digest (sources edited during the run).
    """

    def __init__(self, material: Mapping, elaborate):
        self._elaborate = elaborate
        self._made = None
        self._checked = False
        self.digest = remembered_digest(material, self._fresh_digest)

    def _fresh_digest(self) -> str:
        self._made = self._elaborate()
        self._checked = True        # the digest is this text's
        return netlist_digest(self._made[0])

    def elaborated(self) -> tuple:
        if self._made is None:
            self._made = self._elaborate()
        if not self._checked and netlist_digest(self._made[0]) != self.digest:
            from .runner import SynthError
            raise SynthError("tool-failed", "the elaborated netlist differs from the one "
                             "remembered for these sources (edited during the run?); "
                             f"remove {cache_dir() / 'netlists'} and run again")
        self._checked = True
        return self._made


def entry_key(material: Mapping) -> str:
    """Cache key (24 hex digits) of a run described by ``material`` (JSON-able)."""
    text = json.dumps({"format": _FORMAT, **material}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def lookup(key: str) -> dict | None:
    """The stored result of ``key``, or ``None`` if absent or damaged."""
    try:
        return json.loads((cache_dir() / key / "result.json").read_text())
    except (OSError, ValueError):
        return None


def store_dir(key: str) -> Path:
    return cache_dir() / key


@contextmanager
def locked(key: str, what: str) -> Iterator[None]:
    """Hold the cache lock of ``key`` (another process running the same job waits).

    Work directories ``.work/<key>-*`` left by a run that died are removed.
    """
    locks = cache_dir() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{key}.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"accelgen: waiting for another process running {what}", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        # With the lock held, work directories of this key are leftovers of a
        # run that died (killed, out of time): remove them.
        for stale in (cache_dir() / ".work").glob(f"{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def discard(path: Path) -> None:
    """Remove a directory tree so that it is never visible half-deleted."""
    if not path.exists():
        return
    trash = path.parent / f".trash-{path.name}-{os.getpid()}-{time.monotonic_ns()}"
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def raise_known_misfit(key: str) -> None:
    """Raise the remembered does-not-fit error of ``key``, if its last run had one."""
    from .runner import SynthError
    failed = cache_dir() / "failed" / key
    try:
        info = json.loads((failed / "misfit.json").read_text())
    except (OSError, ValueError):
        return
    log = info.get("log")
    raise SynthError("does-not-fit", info["message"] + " (remembered; --no-cache reruns)",
                     Path(log) if log and log != "None" else None)


def iter_results() -> Iterator[dict]:
    """Every complete result in the cache (any config, flow, tools)."""
    root = cache_dir()
    if not root.is_dir():
        return
    for path in root.glob("*/result.json"):
        try:
            yield json.loads(path.read_text())
        except (OSError, ValueError):
            continue


def cached_fmax(config) -> tuple[float | None, str]:
    """Post-route Fmax of ``config`` from a cached synthesis result, if any.

    Only results whose netlist is the one the config elaborates to now count (board
    builds: of the current sources). The default part
    (:data:`DEFAULT_PART`, out of context) is preferred, then any other
    out-of-context ECP5 result, then anything else; among equals the highest Fmax
    (the best placement seed of a sweep), then the latest.

    Parameters
    ----------
    config : ConfigBase

    Returns
    -------
    (fmax_mhz, note)
        ``fmax_mhz`` is ``None`` when nothing is cached; ``note`` says where the
        figure comes from, or how to get one.
    """
    digest = source_digest()
    netlists: dict = {}

    def current(r) -> bool:
        # Out-of-context results name their netlist: they count while the config
        # elaborates to it. Board builds are keyed by the sources.
        if r.get("flow") == "ooc" and r.get("netlist_digest"):
            from .flow import ooc_netlist_digest
            from .parts import parse_part
            how = (r.get("device"), r.get("multipliers"))
            if how not in netlists:
                try:
                    netlists[how] = ooc_netlist_digest(config, parse_part(how[0]), how[1])
                except (ValueError, KeyError, TypeError):
                    netlists[how] = None
            return netlists[how] == r["netlist_digest"]
        return r.get("source_digest") == digest

    best = None
    for r in iter_results():
        if r.get("config_hash") != config.config_hash:
            continue
        if r.get("flow") not in ("ooc", "board") or not r.get("fmax_mhz") or not current(r):
            continue
        rank = (r.get("device") == DEFAULT_PART and r.get("flow") == "ooc",
                r.get("family") == "ecp5" and r.get("flow") == "ooc",
                float(r["fmax_mhz"]), r.get("created", ""))
        if best is None or rank > best[0]:
            best = (rank, r)
    if best is None:
        return None, (f"no synthesis result cached for this config; run accelgen synth "
                      f"--config CFG.json --part {DEFAULT_PART}")
    r = best[1]
    where = r["device"] if r["flow"] == "ooc" else f"{r['board']} ({r['device']})"
    ctx = "out of context" if r["flow"] == "ooc" else "board build"
    seed = (r.get("material") or {}).get("seed")
    return float(r["fmax_mhz"]), (f"post-route Fmax on {where} ({ctx}, target "
                                  f"{r.get('target_mhz')} MHz"
                                  + (f", nextpnr seed {seed}" if seed is not None else "")
                                  + ") from accelgen synth (cached)")
