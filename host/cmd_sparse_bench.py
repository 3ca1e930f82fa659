"""``accelgen sparse_bench``: the sparse engine's benchmark, printed and saved.

Lane utilization of SpMV on the default sparse engine (8 lanes) per matrix family
against the targets, the replicated-versus-banked dense-buffer ablation, and the
density below which the sparse engine beats the dense 8x8 int8 array. See
:mod:`accelgen.host.sparse_bench`. Writes ``sparse_bench.json`` and
``sparse_bench.md`` into ``--out``.
"""

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    import argparse
    p = subparsers.add_parser("sparse_bench", help="sparse engine: lane utilization, dense-buffer "
                              "ablation, crossover against the dense array",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/sparse", metavar="DIR",
                   help="directory for the results (default: results/sparse)")
    p.add_argument("--quick", action="store_true",
                   help="512x512-class matrices and the cycle model for the banked variants")
    return p


def run(args) -> int:
    import sys
    from .sparse_bench import run_sparse_bench
    res = run_sparse_bench(args.out, quick=args.quick,
                           progress=lambda s: print(s, file=sys.stderr, flush=True))
    missed = [f for f, u in res["utilization"].items() if u["met"] is False]
    return 1 if missed else 0
