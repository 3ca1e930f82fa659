"""``accelgen bench``: benchmark figures, printed and saved (never timed tests).

``accelgen bench [--quick] [--out DIR] [--workloads NAME...] [--tags TAG...]`` runs
the workload suite (:mod:`accelgen.host.bench`): per workload and hardware config,
the hardware counters (measured on the RTL, or predicted by the analytic model for
shapes too large to simulate, said per row), the model's error, the SCALE-Sim
anchor and the lower bound, utilization, projected wall time, software baselines
measured on this machine and speedups, the roofline and Amdahl's law over three
links; the sparse engine on the sparse suite. It writes ``bench.json``,
``report.md`` and PNG figures into ``--out``. ``--quick`` (CI) simulates only the
small workloads and predicts the rest.

``accelgen bench targets`` measures the foundation's targets: compute cycles
against the SCALE-Sim anchor and job cycles against the lower bound (8x8 int8,
128^3 and 256^3, both dataflows), the Verilator backend's simulation speed against
the Amaranth backend and against a bare Verilator loop, and the time to generate
Verilog for a 32x32 array.
"""

import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["add_parser", "run", "run_workloads", "run_targets", "gemm_targets"]


def add_parser(subparsers):
    import argparse
    p = subparsers.add_parser("bench", help="measure benchmark figures and save them",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", nargs="?", choices=("workloads", "targets"), default="workloads",
                   help="workloads (default): the workload suite against software baselines; "
                        "targets: the foundation's targets")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="directory for the results (default: results/bench, or results for "
                        "targets)")
    p.add_argument("--quick", action="store_true",
                   help="CI mode: simulate the small workloads, model the large ones, fewer "
                        "repetitions (targets: smaller problems)")
    p.add_argument("--workloads", nargs="+", default=[], metavar="NAME",
                   help="workloads by name, dense or sparse (see --list)")
    p.add_argument("--tags", nargs="+", default=[], metavar="TAG",
                   help="workloads by tag (e.g. square, layer, bert, resnet50, sparse, nm)")
    p.add_argument("--configs", nargs="+", default=None, metavar="KEY",
                   help="hardware configs to run (default: all of os, ws, os_2of4, sparse, "
                        "sparse_banked that apply)")
    p.add_argument("--rtl-max-macs", type=int, default=None, metavar="N",
                   help="predict with the model, instead of simulating, calls above N MACs "
                        "(default: none in a full run, %d with --quick)" % 4_000_000)
    p.add_argument("--no-sparse", action="store_true", help="skip the sparse engine")
    p.add_argument("--no-design-space", action="store_true",
                   help="skip the model-only design-space table")
    p.add_argument("--seed", type=int, default=0, help="operand seed (default: 0)")
    p.add_argument("--list", action="store_true", help="list workloads and tags, then exit")
    p.add_argument("--rederive", metavar="BENCH.json", default=None,
                   help="measure nothing: recompute a saved run's wall times, speedups and "
                        "Amdahl figures with the clocks cached now (e.g. after accelgen synth), "
                        "and rewrite its report and figures into --out")
    p.add_argument("--update-readme", metavar="README.md", default=None,
                   help="replace that file's '## Benchmarks' section with this run's headline "
                        "tables and figures (linked relative to it)")
    return p


def _operands(cfg, m, k, n, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(cfg.a.min, cfg.a.max + 1, (m, k)),
            rng.integers(cfg.b.min, cfg.b.max + 1, (k, n)))


def gemm_targets(progress, quick=False) -> dict:
    from accelgen.hdl import GemmConfig
    from accelgen.hdl.generate import verilog_text
    from accelgen.host import Accelerator, reference_matmul
    out = {"machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                       "processor": platform.processor()}}

    # 1. cycles against the anchors
    sizes = (32, 64) if quick else (128, 256)
    rows = []
    for df in ("os", "ws"):
        cfg = GemmConfig(dataflow=df)
        acc = Accelerator(cfg, backend="verilator")
        for s in sizes:
            progress(f"8x8 int8 {df.upper()} {s}^3 on Verilator")
            A, B = _operands(cfg, s, s, s, seed=s)
            C, rep = acc.matmul(A, B)
            rows.append({"dataflow": df, "size": s, "correct": bool(np.array_equal(
                C, reference_matmul(cfg, A, B))), "jobs": len(rep.jobs),
                "tiling": list(rep.tiling), "job_cycles": rep.job_cycles,
                "compute_cycles": rep.compute_cycles, "scalesim_cycles": rep.scalesim_cycles,
                "scalesim_cycles_per_job_sum": sum(
                    _scalesim(cfg, j["m"], j["k"], j["n"]) for j in rep.jobs),
                "lower_bound_cycles": rep.lower_bound_cycles,
                "mac_bound_cycles": -(-s ** 3 // 64),
                "compute_to_scalesim": rep.compute_to_scalesim,
                "job_to_lower_bound": rep.ratio_to_lower_bound,
                "utilization": rep.utilization, "model_error": rep.model_error})
        acc.close()
    out["anchors"] = rows

    # N:M structured sparsity against the dense job on the same 8x8 array
    from accelgen.host import prune_nm
    nm_rows = []
    dense = Accelerator(GemmConfig(), backend="verilator")
    sparse_accs = {sp: Accelerator(GemmConfig(sparsity=sp), backend="verilator")
                   for sp in ("2:4", "1:4")}
    for s in sizes:
        A, B = _operands(GemmConfig(), s, s, s, seed=3 * s)
        progress(f"dense 8x8 {s}^3 for the N:M comparison")
        _, rep_d = dense.matmul(A, B)
        for sp, acc in sparse_accs.items():
            progress(f"{sp} sparse 8x8 {s}^3 on Verilator")
            Bp = prune_nm(B, *acc.config.nm)
            C, rep = acc.matmul(A, Bp)
            nm_rows.append({"sparsity": sp, "size": s, "correct": bool(np.array_equal(C, A @ Bp)),
                            "job_cycles": rep.job_cycles, "dense_job_cycles": rep_d.job_cycles,
                            "ratio": rep.job_cycles / rep_d.job_cycles,
                            "target": 0.53 if sp == "2:4" else 0.28,
                            "model_error": rep.model_error})
    for acc in (dense, *sparse_accs.values()):
        acc.close()
    out["nm"] = nm_rows

    # 2. simulation speed: the same job on both backends, and a bare Verilator loop
    cfg = GemmConfig()
    # big enough that per-call overhead (a few dozen CSR and stream operations) does not
    # dominate the Verilator figure; the Amaranth simulator takes minutes on it
    s = 32 if quick else 128
    A, B = _operands(cfg, s, s, s, seed=1)
    progress(f"Amaranth simulator, 8x8 {s}^3")
    am = Accelerator(cfg, backend="amaranth")
    _, rep_a = am.matmul(A, B)
    am.close()
    progress(f"Verilator, 8x8 {s}^3 (repeated)")
    vl = Accelerator(cfg, backend="verilator")
    rates = []
    for _ in range(5):
        _, rep_v = vl.matmul(A, B)
        rates.append(rep_v.simulated_cycles_per_second)
    assert rep_v.jobs == rep_a.jobs, "backends disagree on counters"
    big = 128 if quick else 256
    progress(f"Verilator, 8x8 {big}^3 job vs bare loop")
    A2, B2 = _operands(cfg, big, big, big, seed=2)
    job_rates = []
    for _ in range(3):
        _, rep_big = vl.matmul(A2, B2)
        job_rates.append(rep_big.simulated_cycles_per_second)
    dev = vl.device
    bare = []
    for _ in range(3):
        n = rep_big.device_cycles
        t = time.perf_counter()
        dev.run_idle(n)
        bare.append(n / (time.perf_counter() - t))
    vl.close()
    out["speed"] = {
        "job": f"8x8 int8 OS {s}^3", "amaranth_cycles_per_s": rep_a.simulated_cycles_per_second,
        "verilator_cycles_per_s": statistics.median(rates),
        "verilator_over_amaranth": statistics.median(rates) / rep_a.simulated_cycles_per_second,
        "big_job": f"8x8 int8 OS {big}^3",
        "verilator_job_cycles_per_s": statistics.median(job_rates),
        "bare_loop_cycles_per_s": statistics.median(bare),
        "job_over_bare_loop": statistics.median(job_rates) / statistics.median(bare)}

    # 3. Verilog generation time of a 32x32 array
    progress("Verilog for a 32x32 array")
    t = time.perf_counter()
    text = verilog_text(GemmConfig(rows=32, cols=32))
    out["verilog_32x32"] = {"seconds": time.perf_counter() - t, "bytes": len(text)}
    return out


def _scalesim(cfg, m, k, n):
    from accelgen.host.model import scalesim_cycles
    return scalesim_cycles(cfg, m, k, n)


def _markdown(res) -> str:
    lines = ["# accelgen bench targets", "",
             "| dataflow | shape | jobs | job cycles | compute cycles | SCALE-Sim | compute / SCALE-Sim"
             " | MAC bound | lower bound | job / lower bound | utilization | exact |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["anchors"]:
        lines.append(f"| {r['dataflow']} | {r['size']}^3 | {r['jobs']} | {r['job_cycles']:,} | "
                     f"{r['compute_cycles']:,} | {r['scalesim_cycles']:,} | "
                     f"{r['compute_to_scalesim']:.3f} | {r['mac_bound_cycles']:,} | "
                     f"{r['lower_bound_cycles']:,} | {r['job_to_lower_bound']:.3f} | "
                     f"{r['utilization']:.1%} | {'yes' if r['correct'] else 'NO'} |")
    if res.get("nm"):
        lines += ["", "| sparsity | shape | job cycles | dense job cycles | ratio | target | exact |",
                  "|---|---|---|---|---|---|---|"]
        for r in res["nm"]:
            lines.append(f"| {r['sparsity']} | {r['size']}^3 | {r['job_cycles']:,} | "
                         f"{r['dense_job_cycles']:,} | {r['ratio']:.3f} | <= {r['target']} | "
                         f"{'yes' if r['correct'] else 'NO'} |")
    sp = res["speed"]
    lines += ["", f"Simulation speed ({sp['job']}): Amaranth {sp['amaranth_cycles_per_s']:,.0f} "
                  f"cycles/s, Verilator {sp['verilator_cycles_per_s']:,.0f} cycles/s "
                  f"(x{sp['verilator_over_amaranth']:,.0f}).",
              f"Verilator on {sp['big_job']}: {sp['verilator_job_cycles_per_s']:,.0f} cycles/s "
              f"against a bare loop of {sp['bare_loop_cycles_per_s']:,.0f} cycles/s "
              f"({sp['job_over_bare_loop']:.0%}).",
              f"Verilog for a 32x32 array: {res['verilog_32x32']['seconds']:.1f} s "
              f"({res['verilog_32x32']['bytes'] / 1e6:.1f} MB)."]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    if args.suite == "targets":
        return run_targets(args)
    return run_workloads(args)


def _list() -> int:
    from accelgen.host.workloads import WORKLOADS, SPARSE_WORKLOADS, all_tags
    for w in WORKLOADS:
        print(f"{w.name:24s} {w.m}x{w.k}x{w.n:<6} {','.join(w.tags):32s} {w.description}")
    for w in SPARSE_WORKLOADS:
        print(f"{w.name:24s} {w.family:18s} {','.join(w.tags):32s} {w.description}")
    print("tags: " + ", ".join(all_tags()))
    return 0


class _RichProgress:
    """The bench's progress protocol on a rich progress bar."""

    def __init__(self, progress):
        self.progress = progress
        self.task = None

    def start(self, total):
        self.task = self.progress.add_task("benchmark", total=total)

    def step(self, message, advance=1):
        self.progress.update(self.task, description=message, advance=advance)

    def note(self, message):
        self.progress.update(self.task, description=message)


def run_workloads(args) -> int:
    from rich.console import Console
    from rich.progress import (Progress, BarColumn, MofNCompleteColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from accelgen.host import bench, benchreport, plots
    from accelgen.host.workloads import select, select_sparse
    from .cliutil import CliError
    if args.list:
        return _list()
    if args.rederive:
        return _rederive(args)
    try:
        dense = select(args.workloads, args.tags)
        sparse = [] if args.no_sparse else select_sparse(args.workloads, args.tags)
    except ValueError as e:
        raise CliError(str(e)) from None
    if not dense and not sparse:
        raise CliError("No workload matches --workloads/--tags (see accelgen bench --list)")
    configs = bench.default_configs()
    sparse_cfgs = bench.default_sparse_configs(args.quick)
    if args.configs:
        known = [c.key for c in configs] + [k for k, _ in bench.default_sparse_configs(False)]
        bad = [k for k in args.configs if k not in known]
        if bad:
            raise CliError(f"Unknown config(s) {', '.join(bad)}; known: {', '.join(known)}")
        configs = [c for c in configs if c.key in args.configs]
        sparse_cfgs = [(k, c) for k, c in bench.default_sparse_configs(False)
                       if k in args.configs]
    opts = bench.Options(quick=args.quick, workloads=dense, sparse_workloads=sparse,
                         configs=configs, sparse_configs=sparse_cfgs,
                         design_space=False if args.no_design_space else None,
                         seed=args.seed, rtl_max_macs=args.rtl_max_macs)
    command = "accelgen bench " + " ".join(_argv_echo(args))
    out = Path(args.out or "results/bench")
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                  transient=False) as progress:
        res = bench.run(opts, _RichProgress(progress), command=command.strip())
    return _write(res, out, args)


def _rederive(args) -> int:
    from accelgen.host import bench
    from .cliutil import CliError
    src = Path(args.rederive)
    try:
        res = json.loads(src.read_text())
    except (OSError, ValueError) as e:
        raise CliError(f"Cannot read {src}: {e}") from None
    bench.apply_clocks(res)
    res["summary"] = bench.summarize(res)
    res.setdefault("rederived", []).append(
        datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return _write(res, Path(args.out or src.parent), args)


def _write(res, out: Path, args) -> int:
    from accelgen.host import benchreport, plots
    out.mkdir(parents=True, exist_ok=True)
    res["figures"] = figures = plots.write_all(res, out)
    (out / "bench.json").write_text(json.dumps(res, indent=1, default=_json_default))
    (out / "report.md").write_text(benchreport.report(res, figures))
    if args.update_readme:
        import os
        readme = Path(args.update_readme)
        rel = os.path.relpath(out.resolve(), readme.resolve().parent)
        benchreport.update_readme(readme, benchreport.readme_section(res, rel))
        print(f"updated the Benchmarks section of {readme}")
    print(benchreport.headline(res))
    for n in res["notes"]:
        print(f"note: {n}")
    print(f"{res['elapsed_s']:.0f} s; saved {out / 'bench.json'}, {out / 'report.md'} and "
          f"{len(figures)} figures in {out}")
    return 0


def _argv_echo(args) -> list:
    parts = []
    if args.quick:
        parts.append("--quick")
    if args.out:
        parts += ["--out", args.out]
    if args.workloads:
        parts += ["--workloads", *args.workloads]
    if args.tags:
        parts += ["--tags", *args.tags]
    if args.configs:
        parts += ["--configs", *args.configs]
    if args.rtl_max_macs is not None:
        parts += ["--rtl-max-macs", str(args.rtl_max_macs)]
    if args.no_sparse:
        parts.append("--no-sparse")
    if args.no_design_space:
        parts.append("--no-design-space")
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.update_readme:
        parts += ["--update-readme", args.update_readme]
    return parts


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def run_targets(args) -> int:
    from rich.console import Console
    console = Console(stderr=True)
    out = Path(args.out or "results")
    out.mkdir(parents=True, exist_ok=True)
    with console.status("starting") as status:
        res = gemm_targets(lambda msg: status.update(msg), quick=args.quick)
    res["command"] = "accelgen bench targets" + (" --quick" if args.quick else "")
    (out / "targets.json").write_text(json.dumps(res, indent=2))
    md = _markdown(res)
    (out / "targets.md").write_text(md)
    print(md)
    print(f"saved {out / 'targets.json'} and {out / 'targets.md'}")
    return 0
