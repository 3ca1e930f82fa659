"""Reading tool reports: nextpnr's ``--report`` JSON and Yosys ``stat -json``.

:func:`utilization` turns nextpnr's per-BEL-type counts into the resource names
users know, with ``used`` and ``available`` for each:

==============  ==================  ===================================================
resource        ECP5 BEL            iCE40 BEL
==============  ==================  ===================================================
``LUT4``        ``TRELLIS_COMB``    ``SB_LUT4`` cells (Yosys), of ``ICESTORM_LC``
``FF``          ``TRELLIS_FF``      ``SB_DFF*`` cells (Yosys), of ``ICESTORM_LC``
``LC``          --                  ``ICESTORM_LC`` (a logic cell: LUT4 + FF + carry)
``MULT18X18D``  ``MULT18X18D``      --
``SB_MAC16``    --                  ``ICESTORM_DSP``
``EBR``         ``DP16KD`` (18 Kb)  ``ICESTORM_RAM`` (4 Kb)
``SPRAM``       --                  ``ICESTORM_SPRAM`` (256 Kb)
``LUTRAM``      ``TRELLIS_RAMW``    --
``IO``          ``TRELLIS_IO``      ``SB_IO``
``PLL``         ``EHXPLLL``         ``ICESTORM_PLL``
==============  ==================  ===================================================

On ECP5 a ``TRELLIS_COMB`` is one LUT4 with its share of the carry chain: a
``CCU2C`` adder cell takes two. Post-route Fmax is nextpnr's ``fmax`` entry of
the accelerator's clock: the same figure as the last "Max frequency for clock"
line of its log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["BEL_RESOURCES", "utilization", "fmax", "critical_paths", "format_path",
           "yosys_cells", "markdown_table", "fmax_from_log", "seed_fmax"]

#: Resource name -> nextpnr BEL type, per family.
BEL_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "ecp5": {"LUT4": "TRELLIS_COMB", "FF": "TRELLIS_FF", "MULT18X18D": "MULT18X18D",
             "EBR": "DP16KD", "LUTRAM": "TRELLIS_RAMW", "IO": "TRELLIS_IO",
             "PLL": "EHXPLLL"},
    "ice40": {"LC": "ICESTORM_LC", "SB_MAC16": "ICESTORM_DSP", "EBR": "ICESTORM_RAM",
              "SPRAM": "ICESTORM_SPRAM", "IO": "SB_IO", "PLL": "ICESTORM_PLL"},
}

#: Resources always listed, even when unused, so tables line up.
ALWAYS = {"ecp5": ("LUT4", "FF", "MULT18X18D", "EBR"),
          "ice40": ("LUT4", "FF", "LC", "SB_MAC16", "EBR", "SPRAM")}


def _load(report) -> dict:
    if isinstance(report, Mapping):
        return dict(report)
    return json.loads(Path(report).read_text())


def yosys_cells(stat) -> dict[str, int]:
    """Cell counts by type from Yosys ``stat -json`` output (a path, text or dict)."""
    if isinstance(stat, (str, Path)) and not str(stat).lstrip().startswith("{"):
        stat = json.loads(Path(stat).read_text())
    elif isinstance(stat, str):
        stat = json.loads(stat)
    design = stat.get("design", {})
    cells = design.get("num_cells_by_type")
    if cells is None:       # older Yosys: per-module only
        cells = {}
        for mod in stat.get("modules", {}).values():
            for k, v in mod.get("num_cells_by_type", {}).items():
                cells[k] = cells.get(k, 0) + v
    return {k: int(v) for k, v in cells.items() if not k.startswith("$scopeinfo")}


def utilization(report, family: str, cells: Mapping[str, int] | None = None
                ) -> dict[str, dict[str, int]]:
    """Resource use of a placed design.

    Parameters
    ----------
    report : path, str or dict
        nextpnr ``--report`` JSON.
    family : str
        ``"ecp5"`` or ``"ice40"``.
    cells : mapping, optional
        Yosys cell counts (:func:`yosys_cells`); on iCE40 they split logic cells
        into ``LUT4`` and ``FF``.

    Returns
    -------
    dict
        ``{resource: {"used": int, "available": int}}`` for every resource in
        :data:`ALWAYS` and every other one that is used.
    """
    if family not in BEL_RESOURCES:
        raise ValueError(f"Family must be one of {', '.join(map(repr, BEL_RESOURCES))}, "
                         f"not {family!r}")
    bels = _load(report).get("utilization", {})
    out: dict[str, dict[str, int]] = {}
    for name, bel in BEL_RESOURCES[family].items():
        if bel in bels:
            entry = {"used": int(bels[bel]["used"]), "available": int(bels[bel]["available"])}
            if entry["used"] or name in ALWAYS[family]:
                out[name] = entry
    if family == "ice40":
        lc = out.get("LC", {"used": 0, "available": 0})
        cells = cells or {}
        luts = sum(v for k, v in cells.items() if k == "SB_LUT4")
        ffs = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
        out = {"LUT4": {"used": luts, "available": lc["available"]},
               "FF": {"used": ffs, "available": lc["available"]}, **out}
    return out


def fmax(report, clock: str | None = None) -> tuple[float | None, str | None]:
    """Post-route Fmax in MHz of one clock.

    Parameters
    ----------
    report : path, str or dict
        nextpnr ``--report`` JSON.
    clock : str, optional
        A substring of the clock net name to pick (e.g. ``"sync"``); by default
        the slowest clock.

    Returns
    -------
    (fmax_mhz, clock_name)
        ``(None, None)`` if the report has no clocks (a design with no registers).
    """
    clocks = _load(report).get("fmax", {})
    if not clocks:
        return None, None
    if clock is not None:
        named = {k: v for k, v in clocks.items() if clock in k}
        if named:
            clocks = named
    name = min(clocks, key=lambda k: clocks[k]["achieved"])
    return float(clocks[name]["achieved"]), name


def fmax_from_log(log) -> float | None:
    """Post-route Fmax from a nextpnr log: the last "Max frequency for clock" line."""
    found = None
    for line in Path(log).read_text(errors="replace").splitlines():
        m = re.search(r"Max frequency for clock '([^']*)': ([0-9.]+) MHz", line)
        if m:
            found = float(m[2])
    return found


def _cell_module(cell: str) -> str:
    # Flattened names keep the hierarchy: "design.core.array.pe_1_2.prod_TRELLIS_FF_Q".
    parts = cell.split(".")
    return ".".join(parts[:-1]) if len(parts) > 1 else "(top)"


def critical_paths(report) -> list[dict]:
    """Summaries of the critical paths in a nextpnr report, worst first.

    Returns
    -------
    list of dict
        Each with ``from_clock``, ``to_clock``, ``delay_ns`` (total),
        ``logic_ns``, ``routing_ns``, ``start`` and ``end`` (cell names),
        ``start_module``/``end_module`` (hierarchy of those cells), ``nets`` (in
        order) and ``steps`` (``type``, ``delay_ns``, ``from``, ``to``, ``net``).
    """
    out = []
    for p in _load(report).get("critical_paths", []):
        steps = []
        for s in p.get("path", []):
            steps.append({"type": s.get("type"), "delay_ns": round(float(s.get("delay", 0)), 3),
                          "from": f"{s['from']['cell']}.{s['from']['port']}",
                          "to": f"{s['to']['cell']}.{s['to']['port']}",
                          "net": s.get("net")})
        if not steps:
            continue
        total = sum(s["delay_ns"] for s in steps)
        logic = sum(s["delay_ns"] for s in steps if s["type"] != "routing")
        start = p["path"][0]["from"]["cell"]
        end = p["path"][-1]["to"]["cell"]
        out.append({"from_clock": p.get("from"), "to_clock": p.get("to"),
                    "delay_ns": round(total, 3), "logic_ns": round(logic, 3),
                    "routing_ns": round(total - logic, 3),
                    "start": start, "end": end,
                    "start_module": _cell_module(start), "end_module": _cell_module(end),
                    "nets": [s["net"] for s in steps if s["net"]], "steps": steps})
    out.sort(key=lambda p: -p["delay_ns"])
    return out


def _is_carry(step: Mapping) -> bool:
    # Steps inside a carry chain: FCI/FCO (ECP5 CCU2C), CIN/COUT (iCE40 SB_CARRY).
    ends = (".FCO", ".FCI", ".CIN", ".COUT", ".CI", ".CO")
    return step["to"].endswith(ends) or (step["type"] == "routing" and step["delay_ns"] == 0
                                         and bool(step["net"]) and "CIN" in step["net"])


def _short(name: str, width: int = 72) -> str:
    return name if len(name) <= width else name[:width // 2 - 2] + "..." + name[-width // 2 + 1:]


def format_path(path: Mapping) -> str:
    """A critical path as text, one step per line; carry chains folded into one line."""
    lines = [f"{path['delay_ns']:.2f} ns ({path['logic_ns']:.2f} logic, "
             f"{path['routing_ns']:.2f} routing): {_short(path['start'], 60)} -> "
             f"{_short(path['end'], 60)}"]
    steps = list(path["steps"])
    i = 0
    while i < len(steps):
        if _is_carry(steps[i]):
            j = i
            while j < len(steps) and _is_carry(steps[j]):
                j += 1
            cells = sum(1 for s in steps[i:j] if s["type"] == "logic")
            delay = sum(s["delay_ns"] for s in steps[i:j])
            lines.append(f"  {delay:6.3f}  carry     {cells} carry-chain steps")
            i = j
            continue
        s = steps[i]
        what = f"net {s['net']}" if s["net"] else s["to"]
        lines.append(f"  {s['delay_ns']:6.3f}  {s['type']:<9} {_short(what)}")
        i += 1
    return "\n".join(lines)


def _fmt_util(entry: Mapping) -> str:
    used, avail = entry["used"], entry["available"]
    pct = f" ({100 * used / avail:.1f}%)" if avail else ""
    return f"{used} / {avail}{pct}"


def markdown_table(results: list[Mapping]) -> str:
    """A markdown table of synthesis results (dicts as written by the flow).

    One row per result: design, device, target and achieved Fmax, then one
    column per resource that any result uses.
    """
    resources: list[str] = []
    for r in results:
        for name in r.get("utilization", {}):
            if name not in resources and name not in ("IO",):
                resources.append(name)
    head = ["Config", "Device", "Target MHz", "Fmax MHz", *resources]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in results:
        fm = r.get("fmax_mhz")
        fm_text = "-" if fm is None else f"{fm:.1f}"
        if fm is not None and r.get("target_mhz") and fm < r["target_mhz"]:
            fm_text += " (miss)"
        if r.get("status") not in (None, "ok", "timing-not-met"):
            fm_text = r["status"]
        util = r.get("utilization", {})
        row = [r.get("design", r.get("config_summary", "?")), r.get("device", "?"),
               f"{r['target_mhz']:g}" if r.get("target_mhz") else "-", fm_text,
               *(_fmt_util(util[n]) if n in util else "-" for n in resources)]
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def seed_fmax(result: dict) -> str:
    """Every seed's Fmax of a seed sweep's result (:func:`.flow.run_ooc_seeds`):
    ``"1: 118.2, 2: 122.4 (kept), 3: 120.0 MHz"``, and the seeds without a cached
    result, if any (:func:`.table.cached_result`)."""
    text = ", ".join(f"{s['seed']}: {s['fmax_mhz']}" + (" (kept)" if s["seed"] == result["seed"]
                                                         else "")
                     for s in result.get("seeds") or ()) + " MHz"
    if result.get("missing_seeds"):
        text += (f"; seeds {', '.join(map(str, result['missing_seeds']))} not run "
                 "(no cached result)")
    return text
