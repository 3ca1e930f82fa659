"""``accelgen demo``: the main job of the README.

Generates the default 8x8 int8 accelerator, runs GEMMs of real layer shapes on the
Verilator backend, checks each against numpy and prints hardware cycles,
utilization, the ratios to the SCALE-Sim anchor and to the lower bound, and the
time numpy takes for the same product on this machine.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from .cliutil import add_config_args, load_config

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("demo", help="generate an 8x8 int8 accelerator and run real "
                              "layer shapes on its RTL", description=__doc__)
    add_config_args(p)
    p.add_argument("--backend", choices=("verilator", "amaranth"), default="verilator")
    p.add_argument("--workloads", nargs="+", metavar="NAME",
                   help="workload names (default: a handful of layer shapes)")
    p.add_argument("--out", default="build/demo", metavar="DIR",
                   help="where the Verilog, manifest and results go (default build/demo)")
    p.add_argument("--seed", type=int, default=0)
    return p


def _numpy_time(fn, reps=5):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.progress import Progress, SpinnerColumn, BarColumn, TextColumn, TimeElapsedColumn
    from accelgen.hdl.generate import generate
    from accelgen.host import Accelerator, reference_matmul
    from accelgen.host.workloads import DEMO, by_name

    # a log file or CI gets the whole table, not one squeezed to 80 columns
    console = Console(width=None if sys.stdout.isatty() else 170)
    cfg = load_config(args)
    out = Path(args.out)
    names = args.workloads or list(DEMO)
    workloads = [by_name(n) for n in names]
    console.print(f"[bold]accelgen demo[/bold]: {cfg.describe()}, backend {args.backend}")
    rows = []
    failures = 0
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("generating Verilog", total=len(workloads) + 2)
        d = generate(cfg, out / "rtl")
        progress.advance(task)
        progress.update(task, description=f"building the {args.backend} model")
        acc = Accelerator(cfg, backend=args.backend)
        acc.device                                   # build (cached) before timing anything
        progress.advance(task)
        rng = np.random.default_rng(args.seed)
        for w in workloads:
            progress.update(task, description=f"running {w.name} ({w.m}x{w.k}x{w.n})")
            A = rng.integers(cfg.a.min, cfg.a.max + 1, (w.m, w.k)).astype(np.int8 if cfg.a.bits == 8 and cfg.a.signed else np.int64)
            B = rng.integers(cfg.b.min, cfg.b.max + 1, (w.k, w.n)).astype(np.int8 if cfg.b.bits == 8 and cfg.b.signed else np.int64)
            C, rep = acc.matmul(A, B)
            ok = bool(np.array_equal(C, reference_matmul(cfg, A, B)))
            failures += not ok
            Af, Bf = A.astype(np.float32), B.astype(np.float32)
            Ai, Bi = A.astype(np.int32), B.astype(np.int32)
            t_f32 = _numpy_time(lambda: Af @ Bf)
            t_int = _numpy_time(lambda: Ai @ Bi, reps=3)
            rows.append({"workload": w.name, "shape": [w.m, w.k, w.n], "correct": ok,
                         "numpy_f32_s": t_f32, "numpy_int32_s": t_int, **rep.to_dict()})
            progress.advance(task)
        acc.close()

    t = Table(title=f"{cfg.describe()} — hardware counters from the RTL ({args.backend})")
    for col in ("workload", "M x K x N", "jobs", "hw cycles", "util", "compute / SCALE-Sim",
                "job / lower bound", "model err", "numpy f32", "numpy int32", "exact"):
        t.add_column(col, justify="right" if col not in ("workload",) else "left")
    for r in rows:
        t.add_row(r["workload"], "x".join(map(str, r["shape"])), str(len(r["jobs"])),
                  f"{r['job_cycles']:,}", f"{r['utilization']:.1%}",
                  f"{r['compute_to_scalesim']:.3f}", f"{r['ratio_to_lower_bound']:.3f}",
                  f"{r['model_error']:+.2%}", f"{r['numpy_f32_s'] * 1e3:.2f} ms",
                  f"{r['numpy_int32_s'] * 1e3:.1f} ms", "yes" if r["correct"] else "[red]NO[/red]")
    console.print(t)
    fm = rows[0]["fmax_mhz"] if rows else None
    if fm:
        console.print(f"Projected wall time at the synthesized {fm:.1f} MHz is in "
                      f"{out / 'demo.json'}.")
    else:
        console.print(f"Wall time on an FPGA: unknown — {rows[0]['fmax_note'] if rows else ''}")
    (out / "demo.json").write_text(json.dumps({"config": cfg.to_dict(), "rows": rows},
                                              indent=2, default=str))
    console.print(f"Verilog and manifest: {d.out_dir}; results: {out / 'demo.json'}")
    if failures:
        console.print(f"[red]{failures} workload(s) did not match numpy[/red]")
        return 1
    return 0
