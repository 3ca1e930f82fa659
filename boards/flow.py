"""Out-of-context synthesis and place-and-route of one config on one part.

:func:`run_ooc` elaborates the accelerator inside the registered-I/O harness
(:mod:`.harness`), synthesizes it with Yosys (``synth_ecp5 -abc9`` or
``synth_ice40 -dsp``), places and routes it with nextpnr at the target clock, and
returns a result dict (see :func:`run_ooc`) that is also stored in the cache
(:mod:`.cache`): the same config, part, target, sources and tool versions are
never run twice.

Before nextpnr runs, the Yosys cell counts are checked against the part's
resources, so a design that cannot fit fails in seconds, not minutes.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from . import cache, report
from .parts import Part, parse_part
from .runner import Progress, SynthError, run_tool, select_tools

__all__ = ["DEFAULT_TARGET_MHZ", "SEED", "DSP_MODES", "PE_SOURCE", "RESULT_SCHEMA", "run_ooc",
           "synth_script", "synth_options", "dsp_prelude", "dsp_modes", "dsp_shortfall",
           "fit_problems", "dsp_breakdown", "summarize", "classify_nextpnr_error",
           "run_ooc_seeds", "parse_seeds", "best_of_seeds", "cached_ooc"]

#: Target clock when none is given: the issue's goal on ECP5; a typical iCE40 clock.
DEFAULT_TARGET_MHZ = {"ecp5": 150.0, "ice40": 30.0}

#: nextpnr placement seed: fixed, so a run is reproducible.
SEED = 1

#: Version of the result dict layout.
RESULT_SCHEMA = 1

OOC_TOP = "accelgen_ooc"

# Files too large to keep once the figures are extracted (tens of MB for 8x8).
_BULKY = ("ooc.il", "synth.json", "routed.sdf")

#: How many end-point groups :func:`.sta.top_paths` reports.
TOP_PATHS = 10


#: How multipliers are mapped: every one to DSP blocks, only the PE array's (the
#: others become Booth-encoded logic), as many registered multipliers (in elaboration
#: order: the job setup's, PEs' and requantizer's) as the part has DSP blocks, the rest in
#: logic ("fill", ECP5: an array larger than the DSP count), or none (all logic).
DSP_MODES = ("all", "array", "fill", "none")

#: Source file of the processing elements: its multipliers are the array's.
PE_SOURCE = "pe.py"


def dsp_prelude(dsp: str, top: str) -> list[str]:
    """Yosys commands, run before ``synth_*``, that keep some multipliers off the DSPs.

    For ``dsp="array"``, every ``$mul`` whose source is not :data:`PE_SOURCE` is
    turned into logic with ``booth`` before the DSP mapper sees it.
    """
    if dsp not in DSP_MODES:
        raise ValueError(f"DSP mode must be one of {', '.join(map(repr, DSP_MODES))}, "
                         f"not {dsp!r}")
    if dsp != "array":
        return []
    return [f"hierarchy -top {top}", "proc", f"booth t:$mul a:src=*{PE_SOURCE}* %d"]


def primitives_for(part: Part, dsp: str):
    """The platform hooks of a run (see :mod:`.primitives`), or ``None``.

    On ECP5 the scratchpads become DP16KD blocks with their output registers on, and
    the array's multipliers MULT18X18D blocks with their input and output registers
    on when they may use DSP blocks (``dsp`` ``"all"`` or ``"array"``; ``"fill"``:
    only as many as the part has, the later ones stay logic).
    """
    if part.family == "ecp5":
        from .primitives import ECP5Primitives
        budget = part.resources.get("MULT18X18D", 0) if dsp == "fill" else None
        return ECP5Primitives(multipliers=dsp in ("all", "array", "fill"), budget=budget)
    return None


def synth_options(part: Part, dsp: str) -> str:
    """Options of ``synth_ecp5``/``synth_ice40`` for a DSP mode."""
    if part.family == "ecp5":
        # -abc9 is the default since Yosys 0.3x; kept for older system Yosys.
        # "fill": the DSP blocks are the hook's instances; every other $mul is logic
        return "-abc9" + (" -nodsp" if dsp in ("none", "fill") else "")
    opts = "" if dsp == "none" else "-dsp"
    if part.resources.get("SPRAM"):
        opts += " -spram"
    return opts.strip()


def synth_script(part: Part, top: str, source: str = "ooc.il", netlist: str = "synth.json", *,
                 dsp: str = "all") -> str:
    """The Yosys script of an out-of-context run (relative paths).

    ``dsp`` is one of :data:`DSP_MODES`: ``"array"``, ``"fill"`` or ``"none"`` for
    arrays with more multipliers than the part has DSP blocks.
    """
    synth = f"synth_{part.family} {synth_options(part, dsp)} -top {top} -json {netlist}"
    read = "read_rtlil" if source.endswith(".il") else "read_verilog"
    return "\n".join([
        f"{read} {source}",
        *dsp_prelude(dsp, top),
        synth.replace("  ", " "),
        "tee -q -o stat.json stat -json",
        "tee -q -o stat.txt stat",
    ]) + "\n"


def dsp_shortfall(error: SynthError) -> bool:
    """Whether a does-not-fit error is about DSP blocks only."""
    if error.kind != "does-not-fit":
        return False
    needs = str(error).split("needs", 1)[-1]
    return ("MULT18X18D" in needs or "SB_MAC16" in needs) and not any(
        r in needs for r in ("LUT4", "FF ", "EBR", "SPRAM"))


def dsp_modes(dsp: str, family: str = "ecp5") -> tuple[str, ...]:
    """The modes ``dsp`` tries in order: ``"auto"`` means all, array, fill, then none.
    Off ECP5 there is no hook to budget, so "fill" is left out (alone, it is "all")."""
    if dsp == "auto":
        modes = DSP_MODES
    elif dsp not in DSP_MODES:
        raise ValueError(f"DSP mode must be 'auto' or one of {', '.join(map(repr, DSP_MODES))}, "
                         f"not {dsp!r}")
    else:
        modes = (dsp,)
    if family != "ecp5":
        modes = tuple(m for m in modes if m != "fill") or ("all",)
    return modes


def fit_problems(cells: dict[str, int], part: Part) -> list[str]:
    """Resources the synthesized netlist needs beyond what ``part`` has.

    Conservative: only counts that cannot fit whatever the packer does.
    """
    res = part.resources
    if part.family == "ecp5":
        need = {
            "LUT4": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
                    + 2 * cells.get("TRELLIS_DPR16X4", 0),
            "FF": cells.get("TRELLIS_FF", 0),
            "MULT18X18D": cells.get("MULT18X18D", 0),
            "EBR": cells.get("DP16KD", 0),
        }
    else:
        need = {
            "LUT4": cells.get("SB_LUT4", 0),
            "FF": sum(v for k, v in cells.items() if k.startswith("SB_DFF")),
            "SB_MAC16": cells.get("SB_MAC16", 0),
            "EBR": cells.get("SB_RAM40_4K", 0),
            "SPRAM": cells.get("SB_SPRAM256KA", 0),
        }
    return [f"{n} {k} (has {res.get(k, 0)})" for k, n in need.items() if n > res.get(k, 0)]


def _pes(config) -> int | None:
    """Processing elements of a systolic-array config; ``None`` for other designs (the
    sparse engine's lane multipliers are not an array)."""
    rows, cols = getattr(config, "rows", None), getattr(config, "cols", None)
    return rows * cols if rows and cols else None


def dsp_breakdown(netlist: Path, config) -> dict:
    """Where the DSP blocks of a synthesized netlist went.

    Returns
    -------
    dict
        ``{"cell": "MULT18X18D", "total": n, "array": n_pe, "per_pe": n_pe / (R*C),
        "by_module": {module: n}}``; modules are the cell's hierarchy with PE
        indices folded (``core.array.pe_*``).
    """
    data = json.loads(Path(netlist).read_text())
    counts: Counter = Counter()
    kind = None
    for mod in data.get("modules", {}).values():
        for name, cell in mod.get("cells", {}).items():
            if cell.get("type") in ("MULT18X18D", "SB_MAC16", "ALU54B"):
                if cell["type"] != "ALU54B":
                    kind = cell["type"]
                where = ".".join(name.split(".")[:-1]) or "(top)"
                where = re.sub(r"^design\.", "", where)
                where = re.sub(r"\.pe_\d+_\d+", ".pe_*", where)
                counts[(cell["type"], where)] += 1
    total = sum(n for (t, _), n in counts.items() if t == kind)
    array = sum(n for (t, w), n in counts.items() if t == kind and ".pe_*" in w)
    pes = _pes(config)
    return {"cell": kind, "total": total, "array": array,
            "per_pe": round(array / pes, 3) if pes else None,
            "by_module": {f"{w} ({t})" if t != kind else w: n
                          for (t, w), n in sorted(counts.items(), key=lambda x: -x[1])}}


def _tool_info(tools) -> dict:
    import amaranth
    return {"amaranth": amaranth.__version__,
            **{name: f"{t.version or 'unknown'} ({t.source})" for name, t in tools.items()}}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _fail(work: Path, key: str, error: SynthError) -> SynthError:
    # Keep the logs of a failed run where the user can read them.
    failed = cache.cache_dir() / "failed" / key
    failed.parent.mkdir(parents=True, exist_ok=True)
    cache.discard(failed)
    for name in _BULKY:
        (work / name).unlink(missing_ok=True)
    os.rename(work, failed)
    log = failed / error.log.name if error.log is not None else None
    message = str(error).split(" (log: ")[0]
    if error.kind == "does-not-fit":
        # Remembered, so that "auto" DSP modes and the table skip it next time.
        (failed / "misfit.json").write_text(json.dumps({"kind": error.kind, "message": message,
                                                        "log": str(log)}) + "\n")
    return SynthError(error.kind, message, log)


def run_ooc(config, part, *, target_mhz: float | None = None, tools: str | None = None,
            seed: int = SEED, dsp: str = "auto", progress: Progress | None = None,
            use_cache: bool = True, keep_files: bool = False) -> dict:
    """Synthesize, place and route ``config`` out of context on ``part``.

    Parameters
    ----------
    config : ConfigBase
        The accelerator config.
    part : Part or str
        A part or a Lattice ordering code (see :func:`.parts.parse_part`).
    target_mhz : float, optional
        Clock constraint for nextpnr; :data:`DEFAULT_TARGET_MHZ` of the family by
        default.
    tools : {"yowasp", "system"} or None
        Force YoWASP or system tools; default: toolchain's order.
    seed : int
        nextpnr placement seed.
    dsp : str
        ``"all"`` multipliers on DSP blocks, only the ``"array"``'s, as many as fit
        (``"fill"``, ECP5), or ``"none"``; ``"auto"`` (default) tries them in that
        order until the design fits.
    progress : callable, optional
        ``progress(stage, status)`` while tools run.
    use_cache : bool
        Return a cached result when there is one (a new result is always stored).
    keep_files : bool
        Keep the RTLIL and the synthesized netlist in the cache entry.

    Returns
    -------
    dict
        ``flow`` ("ooc"), ``status`` ("ok" or "timing-not-met"), ``design``,
        ``config``, ``config_hash``, ``netlist_digest`` (the cache key's netlist),
        ``source_digest`` (of the sources that produced it), ``device``, ``family``,
        ``target_mhz``, ``fmax_mhz``, ``timing_met``, ``clock``,
        ``utilization`` ({resource: {used, available}}), ``bels``,
        ``yosys_cells``, ``dsp``, ``harness_overhead``, ``critical_paths`` (nextpnr's
        worst path), ``top_paths`` (the worst path into each of the
        :data:`TOP_PATHS` worst register groups, from :mod:`.sta`),
        ``seconds`` (per stage), ``tools``, ``created``, ``cache_key``,
        ``build_dir``, ``logs``, ``cached``.

    Raises
    ------
    SynthError
        Tool missing, design does not fit, or a tool failed; the message carries
        the log path.
    """
    if isinstance(part, str):
        part = parse_part(part)
    if not isinstance(part, Part):
        raise TypeError(f"Part must be a Part or an ordering code string, not {part!r}")
    target = float(target_mhz if target_mhz is not None else DEFAULT_TARGET_MHZ[part.family])
    if not target > 0:
        raise ValueError(f"Target clock must be a positive frequency in MHz, not {target_mhz!r}")
    modes = dsp_modes(dsp, part.family)
    dsp_blocks = part.resources.get("MULT18X18D", part.resources.get("SB_MAC16", 0))
    if dsp == "auto" and (_pes(config) or 0) > dsp_blocks:
        # The array alone is too many for "array"; on ECP5, where each PE takes a
        # MULT18X18D of its own through the hook, for "all" too (no Yosys run needed).
        drop = ("all", "array") if part.family == "ecp5" else ("array",)
        modes = tuple(m for m in modes if m not in drop)
    found = select_tools(["yosys", part.nextpnr_tool], tools)
    for mode in modes:
        try:
            return _cached_run(config, part, target, found, seed, mode, progress, use_cache,
                               keep_files)
        except SynthError as error:
            if mode == modes[-1] or not dsp_shortfall(error):
                raise
            if progress:
                progress("yosys", f"too few DSP blocks with dsp={mode!r}; trying the next mode")
    raise AssertionError("unreachable")


def parse_seeds(text: str) -> tuple[int, ...]:
    """Placement seeds from ``"1,2,5"`` or ``"1-4"`` (or a mix): distinct, in order."""
    seeds: list[int] = []
    for item in str(text).split(","):
        item = item.strip()
        lo, sep, hi = item.partition("-")
        try:
            span = range(int(lo), int(hi) + 1) if sep else (int(item),)
        except ValueError:
            raise ValueError(f"seeds are integers or ranges like 1-4, not {item!r}") from None
        if not span or min(span) < 0:
            raise ValueError(f"seeds are non-negative and ranges ascending, not {item!r}")
        seeds += [s for s in span if s not in seeds]
    return tuple(seeds)


def run_ooc_seeds(config, part, *, seeds=(SEED,), jobs: int = 1,
                  progress: Progress | None = None, **kwargs) -> dict:
    """:func:`run_ooc` at each nextpnr placement seed; the result with the best Fmax.

    Placement alone moves post-route Fmax by about 10% either way on the larger
    designs, so a sweep over seeds is what a user closing timing would do. Every
    seed's figure is kept: the result carries ``seed`` (the chosen one, the first
    on a tie) and ``seeds`` (``[{"seed", "fmax_mhz", "cached"}]`` in ``seeds``'
    order). Each seed's run is cached on its own. A failure (the design does not
    fit, a tool error) raises.

    ``jobs`` > 1 runs the seeds without a cached result that many at a time, each
    in a process of its own (the tools are single-threaded: one job per core);
    ``progress`` then hears of each seed as it finishes, not of the tools' steps.
    Other keyword arguments go to :func:`run_ooc`.
    """
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, not {seeds!r}")
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, not {jobs!r}")

    def tagged(i, seed):
        def report(stage, status):
            if progress:
                progress(stage, f"seed {seed} ({i + 1}/{len(seeds)}): {status}"
                         if len(seeds) > 1 else status)
        return report

    done: dict[int, dict] = {}
    pending = list(seeds)
    if jobs > 1 and len(seeds) > 1:
        # the cached seeds first, here (a lookup refuses to run the tools) ...
        for seed in seeds:
            if (hit := cached_ooc(config, part, seed=seed, **kwargs)) is not None:
                done[seed] = hit
        pending = [s for s in seeds if s not in done]
        if len(pending) > 1:
            # ... the others in worker processes
            from concurrent.futures import ProcessPoolExecutor, as_completed
            if progress:
                progress("nextpnr", f"{len(pending)} seeds ({', '.join(map(str, pending))}), "
                                    f"{min(jobs, len(pending))} at a time")
            import multiprocessing
            # spawned, not forked: the caller may be running threads (a progress display)
            with ProcessPoolExecutor(max_workers=min(jobs, len(pending)),
                                     mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(_seed_run, config, part, seed, kwargs): seed
                           for seed in pending}
                for future in as_completed(futures):
                    seed = futures[future]
                    done[seed] = future.result()
                    if progress:
                        progress("nextpnr", f"seed {seed}: {done[seed]['fmax_mhz']} MHz "
                                            f"({len(done)}/{len(seeds)} seeds done)")
            pending = []
    for i, seed in enumerate(seeds):
        if seed in pending:
            done[seed] = run_ooc(config, part, seed=seed, progress=tagged(i, seed), **kwargs)
    return best_of_seeds([(seed, done[seed]) for seed in seeds])


def best_of_seeds(runs) -> dict:
    """The result of ``runs`` (``[(seed, result)]``) with the best Fmax (the first on a
    tie), with ``seed`` and every run's ``seeds`` entry (see :func:`run_ooc_seeds`)."""
    best_seed, best = max(runs, key=lambda run: run[1]["fmax_mhz"] or 0.0)   # first of ties
    return {**best, "seed": best_seed,
            "seeds": [{"seed": seed, "fmax_mhz": r["fmax_mhz"], "cached": bool(r.get("cached"))}
                      for seed, r in runs]}


class _CacheMiss(Exception):
    pass


def _refuse_run(stage, status):
    # a run on a cache miss reports "elaborate" before any tool starts; other reports (a
    # remembered DSP shortfall moving on to the next DSP mode) pass
    if stage == "elaborate":
        raise _CacheMiss(stage)


def cached_ooc(config, part, *, seed: int = SEED, **kwargs) -> dict | None:
    """The cached result :func:`run_ooc` would return at ``seed``, or ``None``; the
    tools never run. A cached misfit raises :class:`SynthError` as :func:`run_ooc` does."""
    try:
        return run_ooc(config, part, seed=seed, progress=_refuse_run, **kwargs)
    except _CacheMiss:
        return None


def _seed_run(config, part, seed, kwargs):
    """One seed of a parallel sweep, in a worker process."""
    return run_ooc(config, part, seed=seed, **kwargs)


def ooc_rtlil(config, part: Part, dsp: str) -> str:
    """The RTLIL Yosys reads in an out-of-context run: the accelerator in the
    registered-I/O harness, with the part's primitive hooks for DSP mode ``dsp``."""
    return _elaborate(config, part, dsp)[0]


def _elaborate(config, part: Part, dsp: str) -> tuple[str, dict]:
    from amaranth.back import rtlil
    from accelgen.hdl.generate import build_top
    from .harness import OutOfContext
    harness = OutOfContext(build_top(config, own_domain=False))
    text = rtlil.convert(harness, name=OOC_TOP, platform=primitives_for(part, dsp))
    return text, harness.overhead()


def ooc_netlist_digest(config, part: Part, dsp: str) -> str:
    """:func:`.cache.netlist_digest` of :func:`ooc_rtlil`, remembered per source digest."""
    return cache.remembered_digest(_digest_material(config, part, dsp),
                                   lambda: cache.netlist_digest(ooc_rtlil(config, part, dsp)))


def _digest_material(config, part: Part, dsp: str) -> dict:
    return {"flow": "ooc", "config_hash": config.config_hash, "family": part.family, "dsp": dsp}


def nextpnr_args(part: Part, target: float, seed: int) -> list[str]:
    """nextpnr's arguments in an out-of-context run (paths relative to the run)."""
    unconstrained = ("--lpf-allow-unconstrained" if part.family == "ecp5"
                     else "--pcf-allow-unconstrained")
    return [*part.nextpnr_args(), "--json", "synth.json", "--freq", f"{target:g}",
            "--report", "report.json", "--sdf", "routed.sdf", "--seed", str(seed),
            "--timing-allow-fail", unconstrained]


def _cached_run(config, part, target, found, seed, dsp, progress, use_cache, keep_files):
    tool_info = _tool_info(found)
    t0 = time.monotonic()
    # The key names the netlist, not the Python sources: elaborating is needed once
    # per source version to learn its digest (remembered by the cache).
    netlist = cache.Netlist(_digest_material(config, part, dsp),
                            lambda: _elaborate(config, part, dsp))
    scripts = hashlib.sha256((synth_script(part, OOC_TOP, dsp=dsp) + "\0"
                              + " ".join(nextpnr_args(part, target, seed))).encode()
                             ).hexdigest()[:16]
    material = {"flow": "ooc", "config_hash": config.config_hash, "netlist": netlist.digest,
                "scripts": scripts, "device": part.code, "target_mhz": target, "seed": seed,
                "dsp": dsp, "tools": tool_info}
    key = cache.entry_key(material)
    if use_cache and (hit := cache.lookup(key)) is not None:
        return {**hit, "cached": True}
    if use_cache:
        cache.raise_known_misfit(key)
    root = cache.cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    # Reported before the lock: a caller that only wants cached results refuses here,
    # without waiting for another process running the same job.
    if progress:
        progress("elaborate", f"{config.describe()} in the out-of-context harness")
    with cache.locked(key, f"synthesis of {config.top_name} on {part.code}"):
        if use_cache and (hit := cache.lookup(key)) is not None:
            return {**hit, "cached": True}
        (root / ".work").mkdir(exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=root / ".work"))
        try:
            elaborated, overhead = netlist.elaborated()
            (work / "ooc.il").write_text(elaborated)
            result = _run_ooc(config, part, target, found, seed, dsp, work, progress,
                              keep_files, round(time.monotonic() - t0, 1), overhead)
        except SynthError as error:
            raise _fail(work, key, error) from None
        except BaseException:
            cache.discard(work)
            raise
        entry = cache.store_dir(key)
        result.update(material=material, cache_key=key, build_dir=str(entry),
                      netlist_digest=netlist.digest,
                      logs={k: str(entry / v) for k, v in result["logs"].items()})
        (work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        cache.discard(entry)
        os.rename(work, entry)
    return {**result, "cached": False}


def _run_ooc(config, part, target, found, seed, dsp, work: Path, progress, keep_files,
             elaborate_s: float, overhead: dict) -> dict:
    """Yosys and nextpnr on ``work/ooc.il`` (written by the caller)."""
    seconds = {"elaborate": elaborate_s}
    (work / "synth.ys").write_text(synth_script(part, OOC_TOP, dsp=dsp))
    seconds["yosys"] = round(run_tool(found["yosys"], ["-s", "synth.ys"], cwd=work,
                                      log=work / "yosys.log", stage="yosys",
                                      progress=progress), 1)
    cells = report.yosys_cells(work / "stat.json")
    problems = fit_problems(cells, part)
    if problems:
        raise SynthError("does-not-fit", f"{config.describe()} does not fit {part.code}: "
                         f"needs {', '.join(problems)}", work / "yosys.log")
    dsp_info = dsp_breakdown(work / "synth.json", config)

    args = nextpnr_args(part, target, seed)
    try:
        seconds["nextpnr"] = round(run_tool(found[part.nextpnr_tool], args, cwd=work,
                                            log=work / "nextpnr.log", stage="nextpnr",
                                            progress=progress), 1)
    except SynthError as error:
        raise classify_nextpnr_error(error, config, part) from None
    result = summarize(work / "report.json", part, target, cells)
    result["top_paths"] = _top_paths(work / "routed.sdf")
    result.update({
        "schema": RESULT_SCHEMA, "flow": "ooc", "design": config.describe(),
        "config": config.to_dict(), "config_hash": config.config_hash,
        "top": config.top_name, "source_digest": cache.source_digest(),
        "device": part.code, "family": part.family, "board": None,
        "multipliers": dsp, "dsp": dsp_info,
        "harness_overhead": overhead,
        "seconds": seconds, "tools": _tool_info(found), "created": _now(),
        "logs": {"yosys": "yosys.log", "nextpnr": "nextpnr.log", "report": "report.json"},
    })
    if not keep_files:
        for name in _BULKY:
            (work / name).unlink(missing_ok=True)
    return result


def _top_paths(sdf: Path) -> list[dict]:
    from .sta import parse_sdf, top_paths
    try:
        data = parse_sdf(sdf)
    except OSError:
        return []
    out = []
    for p in top_paths(data, TOP_PATHS):
        cells = []
        for pin in p["path"]:
            inst = pin["pin"].rsplit("/", 1)[0]
            if not cells or cells[-1]["cell"] != inst:
                cells.append({"cell": inst, "type": data["types"].get(inst, "?"),
                              "arrival_ns": pin["arrival_ns"]})
        out.append({"delay_ns": p["delay_ns"], "fmax_mhz": round(1000 / p["delay_ns"], 1),
                    "group": p["group"], "start": p["start"], "end": p["end"], "cells": cells})
    return out


# nextpnr's words for a full device; "Failed to expand region" is the analytic placer
# finding no room to legalize a region (a nearly full part, as the iCE40UP5K gets).
_NO_FIT = re.compile(r"no BELs remaining|Unable to place cell|failed to place|"
                     r"Failed to expand region|"
                     r"not enough|utili[sz]ation|exceeds|too many", re.IGNORECASE)


def classify_nextpnr_error(error: SynthError, config, part: Part) -> SynthError:
    """Turn a nextpnr failure caused by a full device into ``kind="does-not-fit"``."""
    text = str(error)
    if _NO_FIT.search(text):
        return SynthError("does-not-fit", f"{config.describe()} does not fit {part.code}: "
                          f"{text.split(': ', 1)[-1].split(' (log: ')[0]}", error.log)
    return error


def summarize(report_json: Path, part: Part, target: float, cells: dict, clock=None) -> dict:
    """The figures of a placed-and-routed design: Fmax, utilization, critical paths."""
    fmax, clock_name = report.fmax(report_json, clock)
    util = report.utilization(report_json, part.family, cells)
    raw = json.loads(Path(report_json).read_text()).get("utilization", {})
    bels = {k: v for k, v in raw.items() if v.get("used")}
    met = fmax is not None and fmax >= target
    return {"status": "ok" if met else "timing-not-met",
            "target_mhz": target, "fmax_mhz": round(fmax, 2) if fmax is not None else None,
            "timing_met": met, "clock": clock_name, "utilization": util, "bels": bels,
            "yosys_cells": cells, "critical_paths": report.critical_paths(report_json)}
