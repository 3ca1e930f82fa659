"""``accelgen synth``: area and post-route Fmax from Yosys and nextpnr.

Out of context on a part (the accelerator alone, every port registered)::

    accelgen synth --config cfg.json --part LFE5U-85F-6BG381C --target-mhz 150

A bitstream for a board (PLL at the target clock, UART bridge to the AXI ports)::

    accelgen synth --config cfg.json --board icebreaker --target-mhz 30

The ASIC-style estimate (generic gates, CMOS transistors; no part needed)::

    accelgen synth --config cfg.json --asic

The full area/Fmax table (ECP5-85F: 4x4, 8x8, 16x16 x int8, int16 and the sparse
engine, each the best of nextpnr seeds 1-3; the largest int8 array that fits an
iCE40UP5K)::

    accelgen synth --table --out results/synth

A seed sweep on one part (placement alone moves Fmax by about 10%; every seed's
figure is printed, the best kept)::

    accelgen synth --config cfg.json --part LFE5U-85F-6BG381C --seeds 1-4 --jobs 2

Results are cached by config, sources, part/board, target and tool versions; a
rerun prints the cached figures at once (``--no-cache`` reruns the tools). Exit
status: 0 when the run met its target, 1 when timing was not met, the design does
not fit or a tool failed (the message names the log), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .cliutil import CliError, add_config_args, load_config

__all__ = ["add_parser", "run", "summary_markdown"]


def add_parser(subparsers):
    p = subparsers.add_parser("synth", help="synthesize, place and route: area and Fmax",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--part", metavar="CODE",
                       help="Lattice ordering code for an out-of-context run, e.g. "
                            "LFE5U-85F-6BG381C, LFE5U-25F-6BG256C, iCE40UP5K-SG48")
    where.add_argument("--board", metavar="NAME",
                       help="build a bitstream for an amaranth-boards platform, e.g. ulx3s-85f, "
                            "icebreaker (--list-boards shows all)")
    where.add_argument("--table", action="store_true",
                       help="run the benchmark set and write the full area/Fmax table")
    where.add_argument("--list-boards", action="store_true", help="list the board names")
    p.add_argument("--target-mhz", type=float, metavar="F",
                   help="clock target (default: 150 on ECP5, 30 on iCE40)")
    p.add_argument("--asic", action="store_true",
                   help="also (or, without --part/--board, only) run the ASIC-style estimate")
    p.add_argument("--tools", choices=("yowasp", "system"),
                   help="force YoWASP (PyPI) or system tools (default: YoWASP, then system)")
    p.add_argument("--seeds", metavar="LIST",
                   help="nextpnr placement seeds, e.g. 1,2,3 or 1-4: each is placed and routed "
                        "(and cached) on its own and the best Fmax is reported, every seed "
                        "listed (default: 1 for --part; 1-3 for --table's ECP5 rows)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="with --seeds or --table: place and route N seeds at a time, each in "
                        "a process of its own (default 1; the tools use one core each)")
    p.add_argument("--dsp", choices=("auto", "all", "array", "fill", "none"), default="auto",
                   help="multipliers on DSP blocks: all, only the PE array's, as many as the "
                        "part has with the rest in logic (fill, ECP5), none; auto (default) "
                        "tries them in that order until the design fits")
    p.add_argument("--loopback", action="store_true",
                   help="with --board: build the bring-up stand-in (scratch registers, stream "
                        "loopback) behind the UART bridge instead of the accelerator")
    p.add_argument("--json", metavar="PATH", help="write the result as JSON here "
                   "(and a markdown table next to it, .md)")
    p.add_argument("--out", default="results/synth", metavar="DIR",
                   help="output directory of --table (default: results/synth)")
    p.add_argument("--quick", action="store_true",
                   help="with --table: only the 4x4 int8 row on each family (a smoke test)")
    p.add_argument("--max-side", type=int, default=16, metavar="N",
                   help="with --table: leave out ECP5 arrays larger than NxN (16x16 runs "
                        "without DSP blocks take hours); the rows say they were not run")
    p.add_argument("--no-cache", action="store_true", help="rerun the tools even if cached")
    p.add_argument("--cached-only", action="store_true",
                   help="with --table: run no place and route, only collect cached results "
                        "(rows without one say not-cached)")
    p.add_argument("--keep", action="store_true",
                   help="keep the RTLIL and synthesized netlist of an out-of-context run")
    p.add_argument("--allow-timing-fail", action="store_true",
                   help="exit 0 even when post-route Fmax is below the target")
    return p


class _Progress:
    """A one-line live status (stage, what the tool is doing, elapsed time) on stderr."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        self.console = Console(stderr=True)
        self._bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[stage]:<9}"),
                             TimeElapsedColumn(), TextColumn("{task.description}"),
                             console=self.console, transient=True)
        self._task = None
        self._stage = None
        self._t0 = time.monotonic()

    def __enter__(self):
        self._bar.__enter__()
        self._task = self._bar.add_task("", stage="", total=None)
        return self

    def __exit__(self, *exc):
        self._bar.__exit__(*exc)
        if self._stage is not None and exc[0] is None and not self.console.is_terminal:
            self.console.print(f"{self._stage} done ({time.monotonic() - self._t0:.0f} s)")

    def __call__(self, stage: str, status: str) -> None:
        if stage != self._stage:
            if self._stage is not None and not self.console.is_terminal:
                self.console.print(f"{self._stage} done ({time.monotonic() - self._t0:.0f} s)")
            self._stage, self._t0 = stage, time.monotonic()
            self._bar.reset(self._task, stage=stage)
        width = max(20, self.console.width - 30)
        self._bar.update(self._task, description=status[:width], stage=stage)


def _fmt_util(util) -> str:
    return ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in util.items())


def summary_markdown(result: dict) -> str:
    """Markdown of one result: the table row, DSP use, the critical path."""
    from accelgen.boards import report
    if result.get("flow") == "asic":
        lines = [f"## ASIC-style estimate: {result['design']}", "",
                 "| Gates | Flip-flops | Transistors (logic + flops) | NAND2 eq. | "
                 "Memory bits | Memory transistors | Total transistors |",
                 "|---|---|---|---|---|---|---|",
                 f"| {result['gates']} | {result['flops']} | "
                 f"{result['transistors']['logic'] + result['transistors']['flops']} | "
                 f"{result['nand2_equivalents']} | {result['memory_bits']} | "
                 f"{result['transistors']['memory']} | {result['transistors']['total']} |", ""]
        for mem in result["memories"]:
            lines.append(f"- memory `{mem['name']}`: {mem['depth']} x {mem['width']} bits, "
                         f"{mem['read_ports']}R/{mem['write_ports']}W")
        return "\n".join(lines) + "\n"
    where = _where(result)
    lines = [f"## {result['design']} on {where}", "", report.markdown_table([result])]
    if len(result.get("seeds") or ()) > 1:
        lines.append(f"Fmax at each nextpnr seed: {report.seed_fmax(result)}.")
    dsp = result.get("dsp") or {}
    if dsp.get("cell"):
        lines.append(f"DSP blocks: {dsp['total']} {dsp['cell']}, {dsp['array']} in the array "
                     f"({dsp['per_pe']:g} per PE).")
    if result.get("multipliers") == "array":
        lines.append("Only the PE multipliers use DSP blocks; the others are logic (the part "
                     "has too few DSP blocks for all).")
    elif result.get("multipliers") == "fill":
        lines.append("As many multipliers use DSP blocks as the part has; the others are "
                     "logic.")
    elif result.get("multipliers") == "none":
        lines.append("All multipliers are logic (the part has too few DSP blocks).")
    top = result.get("top_paths") or []
    if top:
        lines += ["", "Worst register groups (post-route, worst path into each):", "",
                  "| Delay ns | Fmax MHz | Register group | From | Cells on the path |",
                  "|---|---|---|---|---|"]
        for p in top:
            kinds = _cell_kinds(p["cells"])
            lines.append(f"| {p['delay_ns']:.2f} | {p['fmax_mhz']:.1f} | `{p['group']}` | "
                         f"`{p['start']}` | {kinds} |")
    paths = result.get("critical_paths") or []
    if paths:
        lines += ["", "Critical path (nextpnr):", "", "```", report.format_path(paths[0]), "```"]
    return "\n".join(lines) + "\n"


def _cell_kinds(cells) -> str:
    # "DP16KD > MULT18X18D > 30 TRELLIS_COMB > TRELLIS_FF": runs of one type folded.
    runs = []
    for c in cells:
        if runs and runs[-1][0] == c["type"]:
            runs[-1][1] += 1
        else:
            runs.append([c["type"], 1])
    return " > ".join(f"{n} {t}" if n > 1 else t for t, n in runs)


def _where(result: dict) -> str:
    if result["flow"] == "ooc":
        return result["device"]
    return f"{result['board']} ({result['device']})"


def _print_result(console, result: dict) -> None:
    if result.get("flow") == "asic":
        t = result["transistors"]
        console.print(f"[bold]{result['design']}[/]: {result['gates']} gates, "
                      f"{result['flops']} flip-flops, {result['memory_bits']} memory bits; "
                      f"~{t['total'] / 1e6:.2f} M transistors "
                      f"(logic {t['logic']}, flops {t['flops']}, memory {t['memory']})"
                      f"{' (cached)' if result.get('cached') else ''}")
        return
    fmax, target = result["fmax_mhz"], result["target_mhz"]
    mark = "[green]met[/]" if result["timing_met"] else "[red]NOT met[/]"
    where = _where(result)
    console.print(f"[bold]{result['design']}[/] on {where}: Fmax {fmax} MHz, target "
                  f"{target:g} MHz {mark}{' (cached)' if result.get('cached') else ''}")
    if len(result.get("seeds") or ()) > 1:
        from accelgen.boards.report import seed_fmax
        console.print(f"  Fmax at each nextpnr seed: {seed_fmax(result)}")
    console.print("  " + _fmt_util(result["utilization"]))
    dsp = result.get("dsp") or {}
    if dsp.get("cell"):
        console.print(f"  {dsp['cell']}: {dsp['total']} total, {dsp['per_pe']:g} per PE")
    if result.get("bitstream"):
        console.print(f"  bitstream: {result['bitstream']}")
    if not result["timing_met"]:
        from accelgen.boards import report
        for p in (result.get("top_paths") or [])[:5]:
            console.print(f"  {p['delay_ns']:6.2f} ns ({p['fmax_mhz']:6.1f} MHz)  {p['group']}  "
                          f"from {p['start']}  [{_cell_kinds(p['cells'])}]", highlight=False,
                          markup=False)
        if result.get("critical_paths"):
            console.print("  critical path: " + report.format_path(result["critical_paths"][0])
                          .replace("\n", "\n  "), highlight=False, markup=False)
        console.print(f"  timing not met: {fmax} MHz < {target:g} MHz; see "
                      f"{result['logs'].get('nextpnr')}")


def _write(path: Path, results: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = results[0] if len(results) == 1 else results
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.with_suffix(".md").write_text("".join(summary_markdown(r) + "\n" for r in results))


def run(args) -> int:
    from rich.console import Console
    from accelgen.boards.runner import SynthError
    console = Console()
    if args.list_boards:
        from accelgen.boards.targets import ALIASES, list_boards
        console.print("aliases: " + ", ".join(sorted(ALIASES)))
        console.print("amaranth-boards platforms (ECP5, iCE40): " + ", ".join(list_boards()))
        return 0
    if args.cached_only and not args.table:
        raise CliError("--cached-only goes with --table")
    if args.cached_only and args.no_cache:
        raise CliError("--cached-only reads the cache; it cannot go with --no-cache")
    seeds = None
    if args.jobs < 1:
        raise CliError(f"--jobs must be at least 1, not {args.jobs}")
    if args.seeds is not None:
        if not (args.part or args.table):
            raise CliError("--seeds goes with --part or --table")
        from accelgen.boards.flow import parse_seeds
        try:
            seeds = parse_seeds(args.seeds)
        except ValueError as e:
            raise CliError(f"--seeds: {e}") from None
    if args.table:
        from accelgen.boards.table import TABLE_SEEDS, run_table
        with _Progress() as progress:
            table = run_table(Path(args.out), tools=args.tools, quick=args.quick,
                              max_side=args.max_side, progress=progress,
                              use_cache=not args.no_cache, log=progress.console.print,
                              cached_only=args.cached_only, seeds=seeds or TABLE_SEEDS,
                              jobs=args.jobs)
        console.print(f"wrote {table['json']} and {table['markdown']}")
        return 0
    if not (args.part or args.board or args.asic):
        raise CliError("say where to synthesize: --part CODE, --board NAME, --asic or --table")
    cfg = load_config(args)
    if args.loopback:
        if not args.board:
            raise CliError("--loopback is a board build: give --board NAME")
        from accelgen.boards.loopback import LoopbackConfig
        cfg = LoopbackConfig()
    results, status = [], 0
    try:
        with _Progress() as progress:
            if args.part:
                from accelgen.boards.flow import SEED, run_ooc_seeds
                try:
                    results.append(run_ooc_seeds(cfg, args.part, seeds=seeds or (SEED,),
                                                 jobs=args.jobs,
                                                 target_mhz=args.target_mhz, tools=args.tools,
                                                 dsp=args.dsp, progress=progress,
                                                 use_cache=not args.no_cache,
                                                 keep_files=args.keep))
                except ValueError as e:      # a bad part code or target
                    raise CliError(str(e)) from None
            elif args.board:
                from accelgen.boards.build import run_board
                try:
                    results.append(run_board(cfg, args.board, target_mhz=args.target_mhz,
                                             tools=args.tools, dsp=args.dsp, progress=progress,
                                             use_cache=not args.no_cache))
                except ValueError as e:
                    raise CliError(str(e)) from None
            if args.asic:
                from accelgen.boards.asic import run_asic
                results.append(run_asic(cfg, tools=args.tools, progress=progress,
                                        use_cache=not args.no_cache))
    except SynthError as e:
        kind = {"tool-missing": "tool missing", "does-not-fit": "does not fit",
                "tool-failed": "tool failed", "timing": "timing not met"}.get(e.kind, e.kind)
        print(f"accelgen synth: {kind}: {e}", file=sys.stderr)
        return 1
    for r in results:
        _print_result(console, r)
        if r.get("flow") != "asic" and not r["timing_met"] and not args.allow_timing_fail:
            status = 1
    if args.json:
        _write(Path(args.json), results)
        console.print(f"wrote {args.json} and {Path(args.json).with_suffix('.md')}")
    return status
