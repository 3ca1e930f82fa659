"""``accelgen bench``: benchmark figures, printed and saved (never timed tests).

``accelgen bench targets`` measures the foundation's targets: compute cycles
against the SCALE-Sim anchor and job cycles against the lower bound (8x8 int8,
128^3 and 256^3, both dataflows), the Verilator backend's simulation speed against
the Amaranth backend and against a bare Verilator loop, and the time to generate
Verilog for a 32x32 array.
"""

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["add_parser", "run", "gemm_targets"]


def add_parser(subparsers):
    p = subparsers.add_parser("bench", help="measure benchmark figures and save them",
                              description=__doc__)
    p.add_argument("suite", choices=("targets",), help="what to measure")
    p.add_argument("--out", default="results", metavar="DIR",
                   help="directory for the JSON and markdown results (default: results)")
    p.add_argument("--quick", action="store_true",
                   help="smaller problems (CI); the figures are then not the targets' shapes")
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

    # 2. simulation speed: the same job on both backends, and a bare Verilator loop
    cfg = GemmConfig()
    s = 32 if quick else 64
    A, B = _operands(cfg, s, s, s, seed=1)
    progress(f"Amaranth simulator, 8x8 {s}^3")
    am = Accelerator(cfg, backend="amaranth")
    _, rep_a = am.matmul(A, B)
    am.close()
    progress(f"Verilator, 8x8 {s}^3 (repeated)")
    vl = Accelerator(cfg, backend="verilator")
    rates = []
    for _ in range(20):
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
    from rich.console import Console
    console = Console(stderr=True)
    out = Path(args.out)
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
