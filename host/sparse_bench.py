"""The sparse engine's benchmark: lane utilization, dense-buffer ablation, crossover.

``run_sparse_bench(out_dir, quick=False)`` measures, printing as it goes and saving
``sparse_bench.json`` and ``sparse_bench.md`` into ``out_dir``:

1. Lane utilization U = nnz / (L x job cycles) of SpMV with the default
   ``SparseConfig()`` (8 lanes, replicated dense buffer) on the Verilator backend,
   on 2048 x 2048-class matrices (512 with ``quick``) of three families with
   targets: uniform and banded (rows of more than 8 nonzeros; geomean >= 93%),
   power-law graphs (Barabasi-Albert; >= 75%), rows of 8 or fewer nonzeros
   (>= 60%); plus block-diagonal matrices, reported without a target. Every
   result is checked against scipy.sparse and every job's counters against the
   cycle model.
2. The dense-buffer ablation: the same matrices on banked buffers (8, 16 and 32
   banks, one copy) against the replicated one: memory bits against U and the
   bank-conflict stalls. Measured on Verilator (the exact cycle model with
   ``quick``).
3. The crossover density per family: the density below which the sparse engine
   finishes ``A @ X`` in fewer job cycles than the dense 8x8 int8 array
   (``GemmConfig()``, job cycles from :func:`accelgen.host.model.predict` over the
   driver's tiling) for SpMV, for SpMM with 8 columns on the default engine (8
   passes over A), and for SpMM with 8 columns on an 8-column engine
   (``dense_cols=8``, one pass). Found by bisection on the family's density with
   the exact cycle model; the two bracketing points are run on Verilator and must
   agree with it.
"""

import json
import math
import time
from pathlib import Path

import numpy as np

from accelgen.hdl import GemmConfig, SparseConfig

from . import sparse_matrices as smx

__all__ = ["run_sparse_bench", "TARGETS", "families", "dense_job_cycles"]

#: Geomean lane-utilization targets per family (issue 4).
TARGETS = {"uniform_banded": 0.93, "power_law": 0.75, "short_rows": 0.60}

BANKS = (8, 16, 32)


def families(n: int, seed: int = 0) -> dict:
    """Benchmark matrices per family: {family: [(name, csr), ...]} at size about n x n."""
    k = int(round(math.sqrt(n)))
    return {
        "uniform_banded": [
            (f"uniform {d:.1%}", smx.uniform(n, n, d, seed)) for d in (0.005, 0.01, 0.02, 0.05)
        ] + [(f"banded hb={b}", smx.banded(n, b, seed)) for b in (8, 16, 32, 64)],
        "power_law": [(f"barabasi-albert m={m}", smx.barabasi_albert(n, m, seed))
                      for m in (2, 4, 8)],
        "short_rows": [
            (f"poisson2d {k}x{k}", smx.poisson2d(k, seed)),
            ("1..8 per row", smx.short_rows(n, n, 1, 8, seed)),
            ("uniform 0.1%", smx.uniform(n, n, 0.001, seed)),
            ("tridiagonal", smx.banded(n, 1, seed)),
        ],
        "block_diagonal": [(f"block-diagonal {b}x{b} 50%", smx.block_diagonal(n, b, 0.5, seed))
                           for b in (16, 64)],
    }


#: Family generators by density, for the crossover search: (parameter range, build).
def _by_density(n: int, seed: int = 0) -> dict:
    return {
        "uniform": (lambda d: smx.uniform(n, n, d, seed)),
        "banded": (lambda d: smx.banded(n, max(0, int(round((d * n - 1) / 2))), seed)),
        "power_law": (lambda d: smx.barabasi_albert(n, max(1, min(n - 1, int(round(d * n / 2)))),
                                                    seed)),
        "block_diagonal": (lambda d: smx.block_diagonal(n, max(1, int(round(d * n))), 1.0,
                                                        seed)),
    }


def dense_job_cycles(cfg: GemmConfig, m: int, k: int, n: int) -> int:
    """Job cycles of ``C[m x n] = A[m x k] B[k x n]`` on the dense array: the analytic
    model over the driver's tiling (K chunks but the last emit no output)."""
    from .plan import choose_tiling
    from .model import predict
    mt, kt, nt = choose_tiling(cfg, m, k, n)
    cache = {}
    total = 0
    for m0 in range(0, m, mt):
        for n0 in range(0, n, nt):
            for k0 in range(0, k, kt):
                key = (min(mt, m - m0), min(kt, k - k0), min(nt, n - n0), k0 + kt < k)
                if key not in cache:
                    cache[key] = predict(cfg, key[0], key[1], key[2], no_output=key[3]).job_cycles
                total += cache[key]
    return total


def _geomean(xs):
    return float(math.exp(sum(math.log(x) for x in xs) / len(xs)))


def _row_stats(A) -> dict:
    lengths = np.diff(A.indptr)
    return {"rows": int(A.shape[0]), "cols": int(A.shape[1]), "nnz": int(A.nnz),
            "density": A.nnz / (A.shape[0] * A.shape[1]), "mean_row": float(lengths.mean()),
            "max_row": int(lengths.max()), "empty_rows": int((lengths == 0).sum()),
            "rows_le_8": float((lengths <= 8).mean())}


def _x_for(A, p, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 127, (A.shape[1], p), endpoint=True)


def _measure(acc, A, seed):
    """SpMV on ``acc``: result checked against scipy, counters against the model."""
    from .sparse import reference_spmm
    x = _x_for(A, 1, seed)[:, 0]
    y, rep = acc.spmv(A, x)
    correct = bool(np.array_equal(y, reference_spmm(acc.config, A, x)))
    return rep, correct


def run_sparse_bench(out_dir, quick: bool = False, progress=print) -> dict:
    """Run the benchmark, print the tables, save JSON and markdown; returns the results."""
    from . import Accelerator
    from .sparse_model import predict_sparse
    n = 512 if quick else 2048
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    fams = families(n)
    res = {"size": n, "quick": quick, "targets": TARGETS, "utilization": {}, "ablation": [],
           "crossover": []}

    # 1. lane utilization on the default engine --------------------------------------------
    cfg = SparseConfig()
    res["config"] = cfg.to_dict()
    acc = Accelerator(cfg, backend="verilator")
    progress(f"== lane utilization, {cfg.describe()}, Verilator, {n}x{n}-class")
    for fam, mats in fams.items():
        rows = []
        for i, (name, A) in enumerate(mats):
            rep, correct = _measure(acc, A, i)
            row = {"matrix": name, **_row_stats(A), "job_cycles": rep.job_cycles,
                   "load_cycles": rep.load_cycles, "entries": rep.entries,
                   "lane_busy_cycles": rep.lane_busy_cycles,
                   "in_stall_cycles": rep.input_stall_cycles,
                   "conflict_stall_cycles": rep.conflict_stall_cycles,
                   "out_stall_cycles": rep.output_stall_cycles,
                   "U": rep.lane_utilization,
                   "U_without_x_load": rep.nnz_processed / (cfg.lanes * (rep.job_cycles
                                                                         - rep.load_cycles)),
                   "lower_bound_cycles": rep.lower_bound_cycles,
                   "model_exact": rep.model_job_cycles == rep.job_cycles, "correct": correct,
                   "scipy_seconds": rep.scipy_seconds,
                   "simulated_cycles_per_s": rep.simulated_cycles_per_second}
            rows.append(row)
            progress(f"  {fam:15s} {name:28s} nnz {row['nnz']:7d} rows<=8 {row['rows_le_8']:4.0%}"
                     f"  U {row['U']:6.1%}  (without X load {row['U_without_x_load']:6.1%})"
                     f"  cycles {row['job_cycles']:7d}  exact {correct and row['model_exact']}")
        g = _geomean([r["U"] for r in rows])
        target = TARGETS.get(fam)
        res["utilization"][fam] = {"matrices": rows, "geomean_U": g, "target": target,
                                   "met": None if target is None else g >= target}
        progress(f"  -> {fam}: geomean U {g:.1%}" + (f" (target {target:.0%}: "
                 f"{'met' if g >= target else 'MISSED'})" if target else ""))
    acc.close()

    # 2. dense-buffer ablation: replicated vs banked ------------------------------------------
    progress("== dense buffer: replicated (one copy per lane) vs banked (one copy), "
             + ("cycle model" if quick else "Verilator"))
    variants = [("replicated", cfg)] + [(f"banked x{b}", SparseConfig(x_buffer="banked",
                                                                      x_banks=b))
                                        for b in BANKS]
    for label, vcfg in variants:
        us = {}
        conflicts = {}
        vacc = None if (quick or vcfg is cfg) else Accelerator(vcfg, backend="verilator")
        for fam, mats in fams.items():
            fam_u = []
            fam_c = 0
            for i, (name, A) in enumerate(mats):
                if vcfg is cfg:
                    r = next(r for r in res["utilization"][fam]["matrices"] if r["matrix"] == name)
                    u, c = r["U"], r["conflict_stall_cycles"]
                elif vacc is None:
                    pred = predict_sparse(vcfg, A)
                    u, c = pred.nnz / (vcfg.lanes * pred.job_cycles), pred.conflict_stall_cycles
                else:
                    rep, correct = _measure(vacc, A, i)
                    assert correct and rep.model_job_cycles == rep.job_cycles, (label, name)
                    u, c = rep.lane_utilization, rep.conflict_stall_cycles
                fam_u.append(u)
                fam_c += c
            us[fam] = _geomean(fam_u)
            conflicts[fam] = fam_c
        if vacc is not None:
            vacc.close()
        row = {"buffer": label, "memory_bits": vcfg.x_buffer_bits,
               "memory_kib": vcfg.x_buffer_bits / 8192, "geomean_U": us,
               "conflict_stall_cycles": conflicts}
        res["ablation"].append(row)
        progress(f"  {label:12s} {row['memory_kib']:6.0f} KiB  "
                 + "  ".join(f"{f} {u:6.1%}" for f, u in us.items()))

    # 3. crossover against the dense 8x8 array -------------------------------------------------
    dense = GemmConfig()
    progress(f"== crossover against the dense array ({dense.describe()}), {n}x{n}")
    d_spmv = dense_job_cycles(dense, n, n, 1)
    d_spmm = dense_job_cycles(dense, n, n, 8)
    products = [("SpMV", cfg, 1, d_spmv), ("SpMM 8 cols, default engine (8 passes)", cfg, 8,
                                           d_spmm),
                ("SpMM 8 cols, dense_cols=8 engine", SparseConfig(dense_cols=8), 8, d_spmm)]
    gens = _by_density(n)
    for prod_name, pcfg, p, dense_cycles in products:
        for fam, gen in gens.items():
            entry = _crossover(pcfg, p, gen, dense_cycles, n)
            entry.update(product=prod_name, family=fam, dense_job_cycles=dense_cycles,
                         sparse_config=pcfg.describe())
            res["crossover"].append(entry)
            progress(f"  {prod_name:40s} {fam:15s} " + (
                f"sparse faster below {entry['crossover_density']:.2%} density"
                if entry["crossover_density"] is not None else
                f"sparse faster at every density (densest, {entry['densest']:.0%}: "
                f"{entry['ratio_at_densest']:.3f}x the dense cycles)"))
        # the fixed-pattern families: ratio at their own density
    for fam in ("short_rows",):
        for name, A in fams[fam][:1]:
            pred = predict_sparse(cfg, A)
            res["crossover"].append({"product": "SpMV", "family": "poisson2d", "matrix": name,
                                     "crossover_density": None,
                                     "ratio_at_own_density": pred.job_cycles / dense_job_cycles(
                                         dense, A.shape[0], A.shape[1], 1)})

    # 4. spot-check the crossover brackets on Verilator -----------------------------------------
    progress("== crossover brackets on Verilator (the model must agree)")
    checked = []
    accs = {}
    for entry in res["crossover"]:
        if entry.get("crossover_density") is None or "bracket" not in entry:
            continue
        pcfg = SparseConfig(dense_cols=8) if "dense_cols=8" in entry["product"] else cfg
        if pcfg not in accs:
            accs[pcfg] = Accelerator(pcfg, backend="verilator")
        gen = gens[entry["family"]]
        for d in entry["bracket"]:
            A = gen(d)
            X = _x_for(A, entry.get("p", 1), 0)
            Y, rep = accs[pcfg].spmm(A, X)
            from .sparse import reference_spmm
            ok = bool(np.array_equal(Y, reference_spmm(pcfg, A, X)))
            pred = predict_sparse(pcfg, A, X.shape[1])
            checked.append({"family": entry["family"], "product": entry["product"],
                            "density": A.nnz / A.shape[0] / A.shape[1],
                            "job_cycles": rep.job_cycles, "model": pred.job_cycles,
                            "dense": entry["dense_job_cycles"], "correct": ok})
            progress(f"  {entry['product']:40s} {entry['family']:15s} density "
                     f"{checked[-1]['density']:.2%}: sparse {rep.job_cycles} (model "
                     f"{pred.job_cycles}) vs dense {entry['dense_job_cycles']}")
    for a in accs.values():
        a.close()
    res["crossover_checks"] = checked
    res["seconds"] = time.perf_counter() - t_start

    (out_dir / "sparse_bench.json").write_text(json.dumps(res, indent=2, default=_jsonable))
    (out_dir / "sparse_bench.md").write_text(_markdown(res))
    progress(f"saved {out_dir / 'sparse_bench.json'} and {out_dir / 'sparse_bench.md'} "
             f"({res['seconds']:.0f} s)")
    return res


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serializable: {o!r}")


def _crossover(cfg: SparseConfig, p: int, gen, dense_cycles: int, n: int) -> dict:
    """Bisection on density for the point where the sparse job cycles reach the dense ones."""
    from .sparse_model import predict_sparse

    def cycles(d):
        A = gen(d)
        # column groups repeat the same jobs: model one group, multiply
        groups = -(-p // cfg.dense_cols)
        one = predict_sparse(cfg, A, min(p, cfg.dense_cols)).job_cycles
        return one * groups, A.nnz / (A.shape[0] * A.shape[1])

    full, dens_full = cycles(1.0)
    if full < dense_cycles:
        # the family's densest member (a full band is 75%, not 100%)
        return {"crossover_density": None, "densest": dens_full,
                "ratio_at_densest": full / dense_cycles, "p": p}
    lo, hi = 1.0 / n, 1.0          # sparse faster at lo (checked), slower at hi
    c_lo, d_lo = cycles(lo)
    if c_lo >= dense_cycles:
        return {"crossover_density": 0.0, "ratio_at_lowest": c_lo / dense_cycles, "p": p}
    d_hi = dens_full
    for _ in range(14):
        mid = math.sqrt(lo * hi)
        c, d = cycles(mid)
        if c < dense_cycles:
            lo, d_lo = mid, d
        else:
            hi, d_hi = mid, d
        if hi / lo < 1.01:
            break
    return {"crossover_density": d_lo, "first_slower_density": d_hi, "bracket": [lo, hi],
            "p": p}


def _markdown(res) -> str:
    n = res["size"]
    lines = [f"# Sparse engine benchmark ({n}x{n}-class matrices"
             + (", quick" if res["quick"] else "") + ")", "",
             f"Engine: `SparseConfig()` = {SparseConfig().describe()}; Verilator backend; "
             "U = nnz / (L x job cycles), X load, pipeline fill and every stall included.", "",
             "## Lane utilization", "",
             "| family | matrix | nnz | mean row | max row | empty rows | U | U without X load "
             "| job cycles | X-load cycles | out stalls | exact |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for fam, f in res["utilization"].items():
        for r in f["matrices"]:
            lines.append(f"| {fam} | {r['matrix']} | {r['nnz']} | {r['mean_row']:.1f} | "
                         f"{r['max_row']} | {r['empty_rows']} | {r['U']:.1%} | "
                         f"{r['U_without_x_load']:.1%} | {r['job_cycles']} | {r['load_cycles']} | "
                         f"{r['out_stall_cycles']} | {r['correct'] and r['model_exact']} |")
    lines += ["", "| family | geomean U | target | met |", "|---|---|---|---|"]
    for fam, f in res["utilization"].items():
        t = f["target"]
        lines.append(f"| {fam} | {f['geomean_U']:.1%} | {'' if t is None else f'{t:.0%}'} | "
                     f"{'' if f['met'] is None else f['met']} |")
    lines += ["", "## Dense buffer: replicated vs banked (geomean U per family)", "",
              "| buffer | memory | " + " | ".join(res["utilization"]) + " | conflict stalls |",
              "|---|---|" + "---|" * (len(res["utilization"]) + 1)]
    for r in res["ablation"]:
        lines.append(f"| {r['buffer']} | {r['memory_kib']:.0f} KiB | "
                     + " | ".join(f"{r['geomean_U'][f]:.1%}" for f in res["utilization"])
                     + f" | {sum(r['conflict_stall_cycles'].values())} |")
    lines += ["", "## Crossover against the dense 8x8 int8 array (GemmConfig())", "",
              "| product | family | sparse faster below density | dense job cycles |",
              "|---|---|---|---|"]
    for c in res["crossover"]:
        if c.get("crossover_density") is not None:
            what = f"{c['crossover_density']:.2%}"
        elif "ratio_at_densest" in c:
            what = (f"every density (at the densest, {c['densest']:.0%}: "
                    f"{c['ratio_at_densest']:.3f}x dense cycles)")
        else:
            what = f"fixed pattern: {c['ratio_at_own_density']:.4f}x dense cycles"
        lines.append(f"| {c['product']} | {c['family']} | {what} | "
                     f"{c.get('dense_job_cycles', '')} |")
    if res.get("crossover_checks"):
        lines += ["", "Bracketing points run on Verilator:", "",
                  "| product | family | density | sparse job cycles | model | dense | correct |",
                  "|---|---|---|---|---|---|---|"]
        for c in res["crossover_checks"]:
            lines.append(f"| {c['product']} | {c['family']} | {c['density']:.3%} | "
                         f"{c['job_cycles']} | {c['model']} | {c['dense']} | {c['correct']} |")
    return "\n".join(lines) + "\n"
