"""``accelgen run gemm``: one GEMM on the RTL, checked against numpy."""

import json
import sys

import numpy as np

from .cliutil import add_config_args, load_config, CliError

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("run", help="run a workload on the RTL and print its counters",
                              description="Run one GEMM with random operands on a backend, "
                                          "check it bit-exactly against numpy, print the report.")
    sub = p.add_subparsers(dest="workload", metavar="WORKLOAD", required=True)
    g = sub.add_parser("gemm", help="C = A . B with random operands of the config's types")
    g.add_argument("--m", type=int, required=True)
    g.add_argument("--k", type=int, required=True)
    g.add_argument("--n", type=int, required=True)
    add_config_args(g)
    g.add_argument("--backend", choices=("verilator", "amaranth"), default="verilator")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def run(args) -> int:
    from accelgen.host import Accelerator, reference_matmul
    cfg = load_config(args)
    for d in ("m", "k", "n"):
        if getattr(args, d) < 1:
            raise CliError(f"--{d} must be a positive integer, not {getattr(args, d)}")
    rng = np.random.default_rng(args.seed)
    A = rng.integers(cfg.a.min, cfg.a.max + 1, (args.m, args.k))
    B = rng.integers(cfg.b.min, cfg.b.max + 1, (args.k, args.n))
    from rich.console import Console
    with Console(stderr=True).status(f"building the {args.backend} model of {cfg.describe()}") \
            as status, Accelerator(cfg, backend=args.backend) as acc:
        acc.device
        status.update(f"running {args.m}x{args.k}x{args.n} on the {args.backend} backend")
        C, rep = acc.matmul(A, B)
    ok = np.array_equal(C, reference_matmul(cfg, A, B))
    if args.json:
        print(json.dumps({"correct": ok, **rep.to_dict()}, indent=2, default=str))
    else:
        print(f"{cfg.describe()} on {args.backend}: C[{args.m}x{args.n}] = A[{args.m}x{args.k}]"
              f" . B[{args.k}x{args.n}] in {len(rep.jobs)} job(s), tiles {rep.tiling}")
        print(f"  bit-exact vs numpy : {'yes' if ok else 'NO'}")
        print(f"  job cycles         : {rep.job_cycles}  (lower bound {rep.lower_bound_cycles}, "
              f"x{rep.ratio_to_lower_bound:.3f})")
        print(f"  compute cycles     : {rep.compute_cycles}  (SCALE-Sim {rep.scalesim_cycles}, "
              f"x{rep.compute_to_scalesim:.3f})")
        print(f"  stalls in / out    : {rep.input_stall_cycles} / {rep.output_stall_cycles}")
        print(f"  utilization        : {rep.utilization:.1%}")
        print(f"  model job cycles   : {rep.model_job_cycles}  (error {rep.model_error:+.2%})")
        if rep.projected_seconds:
            print(f"  wall time @ {rep.fmax_mhz:.1f} MHz : {rep.projected_seconds * 1e6:.1f} us")
        else:
            print(f"  wall time          : unknown ({rep.fmax_note})")
        print(f"  simulation         : {rep.device_cycles} cycles in {rep.device_seconds:.2f} s "
              f"({rep.simulated_cycles_per_second:,.0f} cycles/s)")
    return 0 if ok else 1
