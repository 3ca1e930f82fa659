"""The benchmark table: area and post-route Fmax of a fixed set of configs.

``accelgen synth --table`` runs, out of context:

* on the LFE5U-85F-6BG381C (ULX3S 85F part) at a 150 MHz target: 4x4, 8x8 and
  16x16 arrays of int8 and of int16 (output-stationary, the other fields at
  their defaults), and the sparse engine with 8 lanes. Each is placed and routed
  at every seed of :data:`TABLE_SEEDS` (placement alone moves Fmax by 10-20%); a
  row reports the best seed's result and lists every seed's Fmax. A design with
  more multipliers than the part's 156 MULT18X18D blocks is rerun with only the PE
  multipliers on DSPs, then with every DSP block used and the other multipliers in
  logic, then with none (``dsp="auto"`` of :func:`.flow.run_ooc`), and the row
  says so;
* on the iCE40UP5K-SG48 at a 30 MHz target: square int8 arrays of growing size
  until one does not fit, reporting the largest that does (at the first seed only:
  these rows are about fit). These use the small memories the part can hold
  (:func:`ice40_config`);
* the ASIC-style estimate (:mod:`.asic`) of each ECP5 config.

Runs go one at a time (each place-and-route keeps a core busy for minutes) and
come from the cache when nothing changed. The results are written as
``table.json`` (every result) and ``table.md`` (the tables, DSP blocks per PE, run
times, tool versions).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .flow import SEED, best_of_seeds, cached_ooc, run_ooc_seeds
from .report import markdown_table, seed_fmax
from .runner import SynthError

__all__ = ["ECP5_PART", "ICE40_PART", "TABLE_SEEDS", "ecp5_configs", "sparse_configs",
           "ice40_config", "run_table", "cached_result", "render_markdown"]

ECP5_PART = "LFE5U-85F-6BG381C"
ECP5_TARGET_MHZ = 150.0
ICE40_PART = "iCE40UP5K-SG48"
ICE40_TARGET_MHZ = 30.0
ICE40_MAX_SIDE = 8
#: nextpnr seeds of the ECP5 and sparse rows (``accelgen synth --table --seeds``).
TABLE_SEEDS = (1, 2, 3)


def ecp5_configs(quick: bool = False):
    from accelgen.hdl import GemmConfig
    sides = (4,) if quick else (4, 8, 16)
    dtypes = ("int8",) if quick else ("int8", "int16")
    return [GemmConfig(rows=n, cols=n, a_dtype=dt, b_dtype=dt) for dt in dtypes for n in sides]


def sparse_configs(quick: bool = False):
    """The sparse engine rows: L = 8 lanes at the defaults (the issue's target config)."""
    from accelgen.hdl import SparseConfig
    return [] if quick else [SparseConfig(lanes=8)]


def ice40_config(side: int, counter_bits: int = 24, dataflow: str = "ws"):
    """An int8 ``side`` x ``side`` array sized for the iCE40UP5K.

    1 KiB operand scratchpads, 2 KiB of accumulators, a 32-bit stream and no
    requantizer (its per-lane multipliers would compete with the array for the
    eight SB_MAC16 blocks): the array itself is what grows. The fixed cost is cut
    for the part's 5,280 logic cells (with the full-size setup and CSRs even a 1x1
    array needed 8,346 LUT4s):

    * ``serial_setup``: the job setup's products run one after another on one
      shift-add multiplier (about 100 cycles per job) instead of taking seven
      SB_MAC16 blocks, or thousands of LUT4s as logic;
    * ``counter_bits``: 24-bit performance counters instead of 64 (a job's cycle
      count wraps after 0.56 s at 30 MHz);
    * ``csr_fields_only``: the read-write CSRs keep only their fields' bits.

    Weight-stationary by default: its sequencer and output engine take about 800
    LUT4s fewer than output-stationary's, which decides the 2x2 fit (OS 2x2 needs
    about 5,300 logic cells).
    """
    from accelgen.hdl import GemmConfig
    return GemmConfig(rows=side, cols=side, dataflow=dataflow, stream_bits=32, a_spad_kib=1,
                      b_spad_kib=1, acc_kib=2, requant=False, counter_bits=counter_bits,
                      serial_setup=True, csr_fields_only=True)


def _missing(config, part, target, status, error, seconds=None) -> dict:
    """A table row without a result: not run, not cached, or a tool's failure."""
    return {"flow": "ooc", "design": config.describe(), "config": config.to_dict(),
            "config_hash": config.config_hash, "device": part, "target_mhz": target,
            "fmax_mhz": None, "status": status, "error": error, "utilization": {},
            "seconds": seconds or {}}


def cached_result(config, part, target_mhz, *, tools=None, dsp="auto",
                  seeds=(SEED,)) -> dict | None:
    """The cached out-of-context result :func:`.flow.run_ooc_seeds` would return, from
    the seeds that have one; ``None`` when none has. The tools never run. Seeds without
    a cached result are listed in ``missing_seeds`` (empty when all have one). A cached
    misfit raises :class:`SynthError` as :func:`.flow.run_ooc` does."""
    found, missing = [], []
    for seed in seeds:
        hit = cached_ooc(config, part, seed=seed, target_mhz=target_mhz, tools=tools, dsp=dsp)
        if hit is None:
            missing.append(seed)
        else:
            found.append((seed, hit))
    if not found:
        return None
    return {**best_of_seeds(found), "missing_seeds": missing}


def _run(config, part, target, tools, progress, use_cache, log, cached_only=False,
         seeds=(SEED,), jobs=1) -> dict:
    """One row; multipliers leave the DSP blocks only as far as needed to fit."""
    t0 = time.monotonic()
    try:
        if cached_only:
            result = cached_result(config, part, target, tools=tools, seeds=seeds)
            if result is None:
                log(f"{config.describe()} on {part}: no cached result")
                return _missing(config, part, target, "not-cached",
                                "not run: no cached result for this netlist and these tools "
                                f"at seeds {_seed_list(seeds)} (--cached-only)")
        else:
            result = run_ooc_seeds(config, part, seeds=seeds, jobs=jobs, target_mhz=target,
                                   tools=tools, dsp="auto", progress=progress,
                                   use_cache=use_cache)
    except SynthError as error:
        log(f"{config.describe()} on {part}: {error.kind}: {error}")
        return _missing(config, part, target, error.kind, str(error),
                        {"total": round(time.monotonic() - t0, 1)})
    each = ""
    if len(result.get("seeds") or ()) > 1 or result.get("missing_seeds"):
        each = f" (best of seeds {seed_fmax(result)})"
    log(f"{config.describe()} on {part}: {result['fmax_mhz']} MHz{each}, multipliers on DSPs: "
        f"{result['multipliers']}{' (cached)' if result.get('cached') else ''}")
    return result


def _seed_list(seeds) -> str:
    return ", ".join(str(s) for s in seeds)



def _asic(config, tools, progress, use_cache, log) -> dict:
    from .asic import run_asic
    try:
        result = run_asic(config, tools=tools, progress=progress, use_cache=use_cache)
    except SynthError as error:
        log(f"ASIC estimate of {config.describe()}: {error.kind}: {error}")
        return {"flow": "asic", "design": config.describe(), "status": error.kind,
                "error": str(error)}
    log(f"ASIC estimate of {config.describe()}: {result['transistors']['total'] / 1e6:.2f} M "
        f"transistors{' (cached)' if result.get('cached') else ''}")
    return result


def _not_run(config, part, target, max_side) -> dict:
    return _missing(config, part, target, "not-run", f"not run: larger than --max-side {max_side}")


def run_table(out: Path, *, tools=None, quick=False, max_side=16, progress=None,
              use_cache=True, log=print, cached_only=False, seeds=TABLE_SEEDS,
              jobs=1) -> dict:
    """Run the benchmark set and write ``table.json`` and ``table.md`` into ``out``.

    ``max_side`` leaves out (and marks as not run) the ECP5 arrays larger than that.
    ``cached_only`` runs no place and route: rows without a cached result for the
    current netlist and tools say "not-cached" (the ASIC estimates, Yosys only, run).
    ``seeds``: the nextpnr seeds of the ECP5 and sparse rows (the best is reported,
    every one listed); the iCE40 rows run at the first. ``jobs``: seeds placed and
    routed at a time (one process each).

    Returns
    -------
    dict
        ``{"ecp5": [results], "sparse": [results], "ice40": [results],
        "ice40_largest": side or None,
        "json": path, "markdown": path}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not isinstance(max_side, int) or max_side < 1:
        raise ValueError(f"max_side must be a positive integer, not {max_side!r}")
    if cached_only and not use_cache:
        raise ValueError("cached_only needs use_cache")
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one nextpnr seed")
    ecp5 = [_run(cfg, ECP5_PART, ECP5_TARGET_MHZ, tools, progress, use_cache, log, cached_only,
                 seeds, jobs)
            if cfg.rows <= max_side else _not_run(cfg, ECP5_PART, ECP5_TARGET_MHZ, max_side)
            for cfg in ecp5_configs(quick)]
    sparse = [_run(cfg, ECP5_PART, ECP5_TARGET_MHZ, tools, progress, use_cache, log, cached_only,
                   seeds, jobs)
              for cfg in sparse_configs(quick)]
    ice40, largest, largest_known = [], None, True
    for side in range(1, 2 if quick else ICE40_MAX_SIDE + 1):
        r = _run(ice40_config(side), ICE40_PART, ICE40_TARGET_MHZ, tools, progress, use_cache,
                 log, cached_only, seeds[:1])
        ice40.append(r)
        if r.get("status") == "not-cached":
            largest_known = False
            break
        if r.get("fmax_mhz") is None:
            break
        largest = side
    asic = [_asic(cfg, tools, progress, use_cache, log) for cfg in ecp5_configs(quick)
            if cfg.rows <= max_side]
    data = {"ecp5": ecp5, "sparse": sparse, "ice40": ice40, "ice40_largest": largest,
            "ice40_largest_known": largest_known, "asic": asic, "seeds": list(seeds)}
    json_path, md_path = out / "table.json", out / "table.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path.write_text(render_markdown(data))
    return {**data, "json": str(json_path), "markdown": str(md_path)}


def _largest(side, known: bool) -> str:
    text = f"{side}x{side}" if side else "none"
    return text if known else (f"at least {text}" if side else "unknown") + \
        " (the next size has no cached result)"


def _seconds(r) -> str:
    s = r.get("seconds") or {}
    if r.get("status") in ("not-run", "not-cached") or not s:
        return "-"
    total = sum(v for v in s.values() if isinstance(v, (int, float)))
    if r.get("fmax_mhz") is None and "remembered" in (r.get("error") or ""):
        return "-"          # a misfit from the cache: no tool ran
    return f"{total / 60:.1f} min" if total >= 60 else f"{total:.0f} s"


def _rows(results):
    rows = []
    for r in results:
        dsp = r.get("dsp") or {}
        note = {"array": " (only PE multipliers on DSPs)",
                "fill": f" ({dsp.get('array', '?')} of {_pe_count(r)} PE multipliers on DSPs, "
                        "the rest logic)",
                "none": " (no DSPs)"}.get(r.get("multipliers"), "")
        rows.append({**r, "design": r["design"] + note})
    return rows


def _pe_count(r) -> str:
    config = r.get("config") or {}
    rows, cols = config.get("rows"), config.get("cols")
    return str(rows * cols) if rows and cols else "?"


def _errors(results) -> list[str]:
    notes = [f"- {r['design']}: {r['error']}" for r in results if r.get("error")]
    return [*notes, ""] if notes else []


def render_markdown(data: dict) -> str:
    """The table document: ECP5 rows, the sparse engine, iCE40 rows, DSP use and run times."""
    sparse = data.get("sparse") or []
    lines = [f"### ECP5: {ECP5_PART}, out of context, {ECP5_TARGET_MHZ:g} MHz target", "",
             markdown_table(_rows(data["ecp5"])), *_errors(data["ecp5"])]
    if sparse:
        lines += ["Sparse engine, same part and target:", "", markdown_table(_rows(sparse)),
                  *_errors(sparse)]
    swept = [r for r in data["ecp5"] + sparse
             if len(r.get("seeds") or ()) > 1 or r.get("missing_seeds")]
    if swept:
        lines += [f"Fmax at each nextpnr placement seed (a row above reports the kept, best "
                  f"one; seeds {_seed_list(data.get('seeds') or ())}):", "",
                  *(f"- {r['design']}: {seed_fmax(r)}" for r in swept), ""]
    extra = ["| Config | DSP blocks | per PE | Yosys + nextpnr time (kept seed's run) |",
             "|---|---|---|---|"]
    for r in data["ecp5"] + sparse + data["ice40"]:
        dsp = r.get("dsp") or {}
        per_pe = dsp.get("per_pe")
        extra.append(f"| {r['design']} on {r['device']} | {dsp.get('total', '-')} | "
                     f"{'-' if per_pe is None else per_pe} | {_seconds(r)} |")
    largest = data.get("ice40_largest")
    lines += [f"### iCE40: {ICE40_PART}, out of context, {ICE40_TARGET_MHZ:g} MHz target", "",
              "Square int8 weight-stationary arrays (1 KiB scratchpads, 2 KiB accumulators, "
              "32-bit stream, no requantizer, serial setup products, 24-bit counters, "
              "read-write CSRs of their fields only), growing until one does not fit; largest "
              "that fits: "
              f"**{_largest(largest, data.get('ice40_largest_known', True))}**.", "",
              markdown_table(_rows(data["ice40"])), *_errors(data["ice40"]),
              "### DSP blocks and run times", "", *extra, ""]
    asic = data.get("asic") or []
    if asic:
        lines += ["### ASIC-style estimate (generic gates, static CMOS transistor count)", "",
                  "| Config | Gates | Flip-flops | Logic + flop transistors | NAND2 eq. | "
                  "Memory bits | Total transistors |", "|---|---|---|---|---|---|---|"]
        for r in asic:
            if r.get("status"):
                lines.append(f"| {r['design']} | {r['status']} | | | | | |")
                continue
            t = r["transistors"]
            lines.append(f"| {r['design']} | {r['gates']:,} | {r['flops']:,} | "
                         f"{(t['logic'] + t['flops']) / 1e6:.2f} M | {r['nand2_equivalents']:,} | "
                         f"{r['memory_bits']:,} | {t['total'] / 1e6:.2f} M |")
        lines.append("")
    placed = data["ecp5"] + sparse + data["ice40"]
    tools = next((r.get("tools") for r in placed if r.get("tools")), None)
    if tools:
        lines.append("Tools: " + ", ".join(f"{k} {v}" for k, v in tools.items()) + ".")
    digests = sorted({r["source_digest"] for r in placed if r.get("source_digest")})
    if digests:
        lines.append("Results are cached by the netlist each config elaborates to, so a row "
                     "stays valid until that netlist changes; these rows were placed and routed "
                     "from HDL and flow source digests " + ", ".join(f"`{d}`" for d in digests)
                     + ".")
    return "\n".join(lines) + "\n"
