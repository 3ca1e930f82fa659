"""The benchmark behind ``accelgen bench``: hardware cycles against software baselines.

For every workload of :mod:`accelgen.host.workloads` and every hardware config of the
run, one row holds:

* the hardware counters of the call, **measured on the RTL** (Verilator backend, the
  generated Verilog, the accelerator's own counters) or, for workloads too large to
  simulate in the time at hand, **predicted by the analytic model**
  (:func:`accelgen.host.callmodel.predict_call`); ``source`` says which;
* the model's prediction and its error against the RTL (RTL rows);
* the SCALE-Sim 3.0 closed-form anchor and the ratio to it, the lower bound and the
  ratio to it, the utilization;
* the wall time projected at the synthesized Fmax (or at :data:`~accelgen.host.amdahl.ASSUMED_MHZ`,
  said so, when no synthesis result is cached);
* the software baselines on the same operands on this machine and the speedups;
* the roofline point and the Amdahl figures over three links.

The sparse MAC engine gets the same treatment on :data:`~accelgen.host.workloads.SPARSE_WORKLOADS`.
:func:`run` returns everything as one JSON-able dict; :mod:`accelgen.host.benchreport`
and :mod:`accelgen.host.plots` turn it into markdown and figures.
"""

import datetime
import time
from dataclasses import dataclass, field

import numpy as np

from accelgen.hdl.config import GemmConfig
from accelgen.hdl.sparse_config import SparseConfig

from . import amdahl, roofline
from .baselines import Timing, time_call, gemm_baselines, sparse_baselines, machine_info
from .callmodel import predict_call
from .model import scalesim_cycles, lower_bound_cycles
from .workloads import Workload, SparseWorkload

__all__ = ["HwConfig", "Options", "default_configs", "default_sparse_configs", "run",
           "apply_clocks", "summarize",
           "quantize_int8", "QUICK_RTL_MACS", "QUICK_INT_BASELINE_MACS"]

#: In ``--quick``, workloads with more MACs than this are predicted by the model.
QUICK_RTL_MACS = 4_000_000
#: In ``--quick``, numpy's integer matmul (no BLAS: seconds on large shapes) is skipped
#: above this many MACs.
QUICK_INT_BASELINE_MACS = 20_000_000
#: In ``--quick``, sparse workloads with more stored nonzeros than this use the model.
QUICK_RTL_NNZ = 60_000


@dataclass(frozen=True)
class HwConfig:
    """A hardware configuration of the run.

    ``tags``: the workloads it runs (any of these tags; empty = every dense workload).
    ``rtl``: whether rows may be measured on the RTL (False: model only, e.g. design
    points nobody has built).
    """

    key: str
    config: GemmConfig
    tags: tuple = ()
    rtl: bool = True

    @property
    def label(self) -> str:
        return self.config.describe()

    def applies(self, w: Workload) -> bool:
        return not self.tags or bool(set(self.tags) & set(w.tags))


def default_configs() -> list:
    """8x8 int8 output- and weight-stationary (``GemmConfig()`` defaults), and 8x8 OS
    with 2:4 structured sparsity on the workloads tagged ``nm``."""
    return [HwConfig("os", GemmConfig()),
            HwConfig("ws", GemmConfig(dataflow="ws")),
            HwConfig("os_2of4", GemmConfig(sparsity="2:4"), tags=("nm",))]


def default_sparse_configs(quick: bool) -> list:
    """The sparse engine's default (8 lanes, replicated dense buffer); the full run adds
    an 8-bank dense buffer, whose bank conflicts show in the lane utilization."""
    cfgs = [("sparse", SparseConfig())]
    if not quick:
        cfgs.append(("sparse_banked", SparseConfig(x_buffer="banked", x_banks=8)))
    return cfgs


#: Model-only design points: how utilization moves with array size, stream width and
#: double buffering (the model is cycle-exact on the RTL it was checked on; these
#: configs are not simulated, and the report says so).
DESIGN_SPACE = (
    ("8x8 OS, 64-bit", dict()),
    ("8x8 OS, 64-bit, no double buffering", dict(double_buffer=False)),
    ("8x8 WS, 64-bit", dict(dataflow="ws")),
    ("16x16 OS, 64-bit", dict(rows=16, cols=16)),
    ("16x16 OS, 128-bit", dict(rows=16, cols=16, stream_bits=128)),
    ("32x32 OS, 256-bit", dict(rows=32, cols=32, stream_bits=256)),
    ("32x32 WS, 256-bit", dict(rows=32, cols=32, stream_bits=256, dataflow="ws")),
)


@dataclass
class Options:
    quick: bool = False
    workloads: list = field(default_factory=list)
    sparse_workloads: list = field(default_factory=list)
    configs: list = field(default_factory=default_configs)
    sparse_configs: list | None = None
    design_space: bool | None = None        # default: full run only
    seed: int = 0
    rtl_max_macs: int | None = None         # default: everything (full) / QUICK_RTL_MACS
    backend: str = "verilator"


class _NullProgress:
    def start(self, total):
        pass

    def step(self, message, advance=1):
        pass

    def note(self, message):
        pass


# -- host-side work --------------------------------------------------------------------------

def quantize_int8(X: np.ndarray):
    """Symmetric per-tensor int8 quantization: ``(q, scale)`` with ``X ~ q * scale``."""
    scale = float(np.max(np.abs(X))) / 127.0 or 1.0
    q = np.clip(np.rint(X * (1.0 / scale)), -127, 127).astype(np.int8)
    return q, scale


def _dequantize(C: np.ndarray, scale: float) -> np.ndarray:
    return C.astype(np.float32) * np.float32(scale)


def _host_timing(fn, quick: bool) -> Timing:
    if quick:
        return time_call(fn, warmup=0, min_reps=1, min_time=0.0, budget=0.0)
    return time_call(fn, warmup=1, min_reps=3, min_time=0.05, budget=5.0)


def _exact_product(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    # float64 BLAS is exact here: |A @ B| <= K * 2**14 < 2**53 for int8 operands
    return np.rint(A.astype(np.float64) @ B.astype(np.float64)).astype(np.int64)


def _clock(cfg):
    """(MHz, source, note): the synthesized Fmax of ``cfg`` if cached, else the assumed clock."""
    try:
        from accelgen.boards.cache import cached_fmax
        fmax, note = cached_fmax(cfg)
    except Exception as e:               # noqa: BLE001 - no synthesis flow installed
        fmax, note = None, f"no synthesis flow ({e})"
    if fmax:
        return fmax, "synthesized", note
    return amdahl.ASSUMED_MHZ, "assumed", f"assumed {amdahl.ASSUMED_MHZ:g} MHz: {note}"


def _rel(a, b):
    return (a - b) / b if b else None


# -- the run ----------------------------------------------------------------------------------

class _Bench:
    def __init__(self, opts: Options, progress):
        self.o = opts
        self.p = progress
        self.rtl_max = (opts.rtl_max_macs if opts.rtl_max_macs is not None
                        else (QUICK_RTL_MACS if opts.quick else None))
        self.accs = {}
        self.build_seconds = {}
        self.notes = []

    def acc(self, key, cfg):
        from .driver import Accelerator
        if key not in self.accs:
            a = Accelerator(cfg, backend=self.o.backend)
            t = time.perf_counter()
            _ = a.device                  # build or load the Verilator model now
            self.build_seconds[key] = time.perf_counter() - t
            self.accs[key] = a
        return self.accs[key]

    def close(self):
        for a in self.accs.values():
            a.close()

    # -- dense ---------------------------------------------------------------------------

    def dense(self, w: Workload, hw_list: list) -> tuple:
        o = self.o
        rng = np.random.default_rng([o.seed, w.m, w.k, w.n])
        Af = rng.standard_normal((w.m, w.k), dtype=np.float32)
        Bf = (rng.standard_normal((w.k, w.n), dtype=np.float32) / np.float32(np.sqrt(w.k)))
        t_q = _host_timing(lambda: (quantize_int8(Af), quantize_int8(Bf)), o.quick)
        (Aq, sa), (Bq, sb) = quantize_int8(Af), quantize_int8(Bf)
        skip_int = o.quick and w.macs > QUICK_INT_BASELINE_MACS
        self.p.note(f"{w.name}: software baselines")
        base = gemm_baselines(Af, Bf, Aq, Bq, quick=o.quick, skip_int=skip_int)
        Cf = np.zeros((w.m, w.n), dtype=np.int32)
        t_dq = _host_timing(lambda: _dequantize(Cf, sa * sb), o.quick)
        A64 = Aq.astype(np.int64)
        rows = []
        for hw in hw_list:
            if not hw.applies(w):
                continue
            self.p.step(f"{w.name} on {hw.key}", advance=0)
            row = self.dense_row(w, hw, A64, Bq)
            row.update(t_quantize_s=t_q.median_s, t_dequantize_s=t_dq.median_s,
                       t_sw_s=base["numpy_f32"]["median_s"],
                       t_sw_int_s=base["numpy_int"]["median_s"] if base["numpy_int"] else None)
            rows.append(row)
            self.p.step(f"{w.name} on {hw.key}")
        host = {"workload": w.name, "quantize": t_q.to_dict(), "dequantize": t_dq.to_dict(),
                "scales": [sa, sb]}
        return rows, {"workload": w.name, **base,
                           "numpy_int_note": ("skipped in --quick (numpy's integer matmul "
                                              "has no BLAS)" if skip_int else "")}, host

    def dense_row(self, w, hw, A64, Bq):
        from .plan import build_plan
        cfg = hw.config
        o = self.o
        B64 = Bq.astype(np.int64)
        if cfg.sparsity != "dense":
            from .nm import prune_nm
            B64 = prune_nm(B64, *cfg.nm)
        t_pack = _host_timing(lambda: build_plan(cfg, A64, B64), o.quick)
        plan = build_plan(cfg, A64, B64)
        pred = predict_call(cfg, w.m, w.k, w.n, tiling=plan.tiling)
        use_rtl = hw.rtl and (self.rtl_max is None or w.macs <= self.rtl_max)
        R, Cc = cfg.rows, cfg.cols
        row = {"workload": w.name, "config": hw.key, "m": w.m, "k": w.k, "n": w.n,
               "dense_macs": w.macs, "source": "rtl" if use_rtl else "model",
               "tiling": list(plan.tiling), "jobs": len(plan.jobs),
               "input_bytes": plan.input_bytes, "output_bytes": plan.output_bytes,
               "model_job_cycles": pred.job_cycles, "model_compute_cycles": pred.compute_cycles,
               "pack_s": t_pack.median_s}
        if use_rtl:
            acc = self.acc(hw.key, cfg)
            C, rep = acc.matmul(A64, B64)
            exact = bool(np.array_equal(C, _exact_product(A64, B64)))
            row.update(job_cycles=rep.job_cycles, compute_cycles=rep.compute_cycles,
                       input_stall_cycles=rep.input_stall_cycles,
                       output_stall_cycles=rep.output_stall_cycles, macs=rep.macs,
                       correct=exact, sim_seconds=rep.device_seconds,
                       sim_cycles_per_s=rep.simulated_cycles_per_second,
                       model_error=_rel(pred.job_cycles, rep.job_cycles),
                       model_compute_error=_rel(pred.compute_cycles, rep.compute_cycles),
                       driver_model_job_cycles=rep.model_job_cycles)
            if rep.model_job_cycles != pred.job_cycles:
                self.notes.append(f"{w.name} on {hw.key}: call-level model {pred.job_cycles} "
                                  f"!= driver's per-job sum {rep.model_job_cycles}")
            if not exact:
                self.notes.append(f"{w.name} on {hw.key}: RTL result differs from numpy")
        else:
            row.update(job_cycles=pred.job_cycles, compute_cycles=pred.compute_cycles,
                       input_stall_cycles=pred.input_stall_cycles,
                       output_stall_cycles=pred.output_stall_cycles, macs=pred.macs,
                       correct=None, sim_seconds=None, sim_cycles_per_s=None,
                       model_error=None, model_compute_error=None)
        job = row["job_cycles"]
        ss = scalesim_cycles(cfg, w.m, w.k, w.n)
        lb = lower_bound_cycles(cfg, w.m, w.k, w.n)
        row.update(
            scalesim_cycles=ss, job_to_scalesim=job / ss,
            compute_to_scalesim=row["compute_cycles"] / ss,
            lower_bound_cycles=lb, job_to_lower_bound=job / lb,
            utilization=row["macs"] / (job * R * Cc),
            dense_equivalent_utilization=w.macs / (job * R * Cc),
            roofline=roofline.point(cfg, m=w.m, k=w.k, n=w.n, macs=row["macs"],
                                    job_cycles=job, input_bytes=plan.input_bytes),
            pack_memcpy_s=_memcpy_seconds(plan.input_bytes, o.quick))
        return row

    # -- sparse --------------------------------------------------------------------------

    def sparse(self, w: SparseWorkload, key: str, cfg: SparseConfig, dense_ref):
        from .sparse import plan_spmv, plan_spmm, sparse_lower_bound_cycles
        o = self.o
        A = w.matrix()
        M, N = A.shape
        rng = np.random.default_rng([o.seed, M, N, w.p])
        Xf = rng.standard_normal((N, w.p), dtype=np.float32)
        Af = A.astype(np.float32)
        t_q = _host_timing(lambda: (quantize_int8(Af.data), quantize_int8(Xf)), o.quick)
        Xq, sx = quantize_int8(Xf)
        X = Xq.astype(np.int64)
        x = X[:, 0] if w.p == 1 else X
        base = sparse_baselines(A, X if w.p > 1 else X[:, 0], quick=o.quick)
        planner = plan_spmv if w.p == 1 else plan_spmm
        t_pack = _host_timing(lambda: _pack_sparse(cfg, A, X), o.quick)
        plan = planner(cfg, A, x)
        preds = [j.prediction for j in plan.jobs]
        model_job = sum(p.job_cycles for p in preds)
        model_nnz = sum(p.nnz for p in preds)
        use_rtl = not o.quick or A.nnz <= QUICK_RTL_NNZ
        row = {"workload": w.name, "config": key, "rows": M, "cols": N, "p": w.p,
               "nnz": int(A.nnz), "density": A.nnz / (M * N),
               "source": "rtl" if use_rtl else "model", "jobs": len(plan.jobs),
               "entries": sum(j.entries for j in plan.jobs),
               "input_bytes": plan.input_bytes, "output_bytes": plan.output_bytes,
               "model_job_cycles": model_job, "pack_s": t_pack.median_s}
        if use_rtl:
            acc = self.acc(key, cfg)
            y, rep = (acc.spmv(A, x) if w.p == 1 else acc.spmm(A, X))
            ref = _exact_product(A.toarray(), X)
            exact = bool(np.array_equal(np.asarray(y).reshape(ref.shape), ref))
            row.update(job_cycles=rep.job_cycles, nnz_processed=rep.nnz_processed,
                       load_cycles=rep.load_cycles, lane_busy_cycles=rep.lane_busy_cycles,
                       input_stall_cycles=rep.input_stall_cycles,
                       conflict_stall_cycles=rep.conflict_stall_cycles,
                       output_stall_cycles=rep.output_stall_cycles, correct=exact,
                       sim_seconds=rep.device_seconds,
                       model_error=_rel(model_job, rep.job_cycles))
            if not exact:
                self.notes.append(f"{w.name} on {key}: RTL result differs from numpy")
        else:
            tot = {k: sum(getattr(p, k) for p in preds) for k in (
                "load_cycles", "lane_busy_cycles", "in_stall_cycles", "conflict_stall_cycles",
                "out_stall_cycles")}
            row.update(job_cycles=model_job, nnz_processed=model_nnz,
                       load_cycles=tot["load_cycles"], lane_busy_cycles=tot["lane_busy_cycles"],
                       input_stall_cycles=tot["in_stall_cycles"],
                       conflict_stall_cycles=tot["conflict_stall_cycles"],
                       output_stall_cycles=tot["out_stall_cycles"], correct=None,
                       sim_seconds=None, model_error=None)
        job = row["job_cycles"]
        lb = sparse_lower_bound_cycles(cfg, plan)
        row.update(lanes=cfg.lanes, lane_utilization=row["nnz_processed"] / (cfg.lanes * job),
                   lower_bound_cycles=lb, job_to_lower_bound=job / lb,
                   dense_array_config=dense_ref.key,
                   dense_array_model_cycles=predict_call(dense_ref.config, M, N, w.p).job_cycles,
                   pack_memcpy_s=_memcpy_seconds(plan.input_bytes, o.quick),
                   t_quantize_s=t_q.median_s, t_dequantize_s=0.0,
                   t_sw_s=base["scipy_csr_f32"]["median_s"])
        return row, {"workload": w.name, **base}


def apply_clocks(res: dict) -> None:
    """Everything that depends on a clock, from the cycle counts and the host times in
    ``res``: projected wall times, speedups, the links' bandwidths and the Amdahl rows.

    The clocks are looked up when this runs (at the end of a run), so a synthesis
    result cached while the benchmark ran is used.
    """
    clocks = {}
    for c in res["configs"]:
        from accelgen.hdl.config import config_from_dict
        cfg = config_from_dict(c["config"])
        mhz, source, note = _clock(cfg)
        links = amdahl.links(cfg.stream_bits, mhz, source)
        clocks[c["key"]] = (mhz, links)
        c.update(clock_mhz=mhz, clock_source=source, clock_note=note,
                 links=[l.to_dict() for l in links])
    base = {b["workload"]: b for b in res["baselines"]}
    amd = []
    for r in res["gemm"]:
        mhz, links = clocks[r["config"]]
        proj = r["job_cycles"] / (mhz * 1e6)
        r.update(clock_mhz=mhz, clock_source=_source(res, r["config"]), projected_s=proj,
                 speedup_vs_numpy_f32=r["t_sw_s"] / proj,
                 speedup_vs_numpy_int=r["t_sw_int_s"] / proj if r["t_sw_int_s"] else None)
        amd += _amdahl_rows(r, proj, links)
    for r in res["sparse"]:
        mhz, links = clocks[r["config"]]
        proj = r["job_cycles"] / (mhz * 1e6)
        b = base[r["workload"]]
        dense_mhz = clocks[r["dense_array_config"]][0] if r["dense_array_config"] in clocks \
            else _clock(GemmConfig())[0]
        dense_s = r["dense_array_model_cycles"] / (dense_mhz * 1e6)
        r.update(clock_mhz=mhz, clock_source=_source(res, r["config"]), projected_s=proj,
                 dense_array_projected_s=dense_s, speedup_vs_dense_array=dense_s / proj,
                 speedup_vs_scipy_f32=b["scipy_csr_f32"]["median_s"] / proj,
                 speedup_vs_scipy_int=b["scipy_csr_int"]["median_s"] / proj,
                 speedup_vs_numpy_dense_f32=b["numpy_dense_f32"]["median_s"] / proj)
        amd += _amdahl_rows(r, proj, links)
    res["amdahl"] = amd


def _source(res, key):
    return next(c["clock_source"] for c in res["configs"] if c["key"] == key)


def _amdahl_rows(r, proj, links):
    out = []
    for packer, tp in (("python", r["pack_s"]), ("memcpy", r["pack_memcpy_s"])):
        for link in links:
            a = amdahl.offload(t_sw=r["t_sw_s"], t_quantize=r["t_quantize_s"], t_pack=tp,
                               t_dequantize=r["t_dequantize_s"], t_acc=proj, link=link,
                               input_bytes=r["input_bytes"], output_bytes=r["output_bytes"])
            out.append({"workload": r["workload"], "config": r["config"],
                        "source": r["source"], "packer": packer, **a})
    return out


def _memcpy_seconds(nbytes: int, quick: bool) -> float:
    """Time to copy ``nbytes`` once in memory: the floor of any packer (a native one
    that reorders while it copies, or a DMA scatter-gather list, gets close)."""
    src = np.ones(max(1, nbytes), dtype=np.uint8)
    dst = np.empty_like(src)
    return time_call(lambda: np.copyto(dst, src), warmup=1, min_reps=3 if quick else 5,
                     min_time=0.0 if quick else 0.02, budget=1.0).median_s


def _pack_sparse(cfg, A, X):
    """The host's packing work of a sparse call (the frames only, no model)."""
    from .sparse import sparse_jobs, csr_entries, pack_entries
    from .packing import pack_segment
    frames = []
    for job, sub in sparse_jobs(cfg, A, X.shape[1]):
        value, col, last, empty = csr_entries(sub)
        Xp = np.zeros((job.cols, cfg.dense_cols), dtype=np.int64)
        Xp[:, :job.g1 - job.g0] = X[job.c0:job.c1, job.g0:job.g1]
        frames.append(pack_segment(Xp, cfg.x.bits, cfg.stream_bits)
                      + pack_entries(cfg, value, col, last, empty))
    return frames


def _warm_up_host(configs, sparse_cfgs):
    """First calls pay for imports and caches (register maps, gearbox tables); the
    single timed run of ``--quick`` must not."""
    from .plan import build_plan
    from .nm import prune_nm
    A = np.ones((9, 9), dtype=np.int64)
    for hw in configs:
        B = prune_nm(A, *hw.config.nm) if hw.config.sparsity != "dense" else A
        build_plan(hw.config, A, B)
        predict_call(hw.config, 9, 9, 9)
    if sparse_cfgs:
        import scipy.sparse as sp
        for _, cfg in sparse_cfgs:
            _pack_sparse(cfg, sp.csr_matrix(A[:4, :4]), A[:4, :1])
    quantize_int8(np.ones((4, 4), dtype=np.float32))


def _design_space(workloads, progress) -> list:
    rows = []
    for label, kw in DESIGN_SPACE:
        cfg = GemmConfig(**kw)
        progress.step(f"model: {label}", advance=0)
        for w in workloads:
            p = predict_call(cfg, w.m, w.k, w.n)
            rows.append({"design": label, "config": cfg.to_dict(), "workload": w.name,
                         "job_cycles": p.job_cycles, "utilization":
                         p.macs / (p.job_cycles * cfg.rows * cfg.cols),
                         "job_to_scalesim": p.job_cycles / scalesim_cycles(cfg, w.m, w.k, w.n),
                         "job_to_lower_bound":
                         p.job_cycles / lower_bound_cycles(cfg, w.m, w.k, w.n),
                         "roofline": roofline.point(cfg, m=w.m, k=w.k, n=w.n, macs=p.macs,
                                                    job_cycles=p.job_cycles,
                                                    input_bytes=p.input_bytes),
                         "peak_macs_per_cycle": cfg.rows * cfg.cols,
                         "input_bytes_per_cycle": cfg.stream_bits // 8})
        progress.step(f"model: {label}")
    return rows


def run(opts: Options, progress=None, command: str = "") -> dict:
    """Run the benchmark; returns the JSON-able result (see the module docstring)."""
    from accelgen.toolchain import tool_versions
    progress = progress or _NullProgress()
    t_start = time.perf_counter()
    b = _Bench(opts, progress)
    sparse_cfgs = (opts.sparse_configs if opts.sparse_configs is not None
                   else default_sparse_configs(opts.quick))
    design = opts.design_space if opts.design_space is not None else not opts.quick
    n_dense = sum(1 for w in opts.workloads for hw in opts.configs if hw.applies(w))
    n_sparse = len(opts.sparse_workloads) * len(sparse_cfgs)
    progress.start(n_dense + n_sparse + (len(DESIGN_SPACE) if design else 0))

    configs = []
    for hw in opts.configs:
        configs.append({"key": hw.key, "kind": "gemm", "label": hw.label,
                        "config": hw.config.to_dict(), "config_hash": hw.config.config_hash,
                        "workload_tags": list(hw.tags), **roofline.roof(hw.config)})
    for key, cfg in sparse_cfgs:
        configs.append({"key": key, "kind": "sparse", "label": cfg.describe(),
                        "config": cfg.to_dict(), "config_hash": cfg.config_hash,
                        "peak_nnz_per_cycle": cfg.lanes,
                        "input_bytes_per_cycle": cfg.stream_bits / 8})
    gemm, base, host = [], [], []
    sparse_rows = []
    _warm_up_host(opts.configs, sparse_cfgs)
    try:
        for w in opts.workloads:
            r, bl, h = b.dense(w, opts.configs)
            gemm += r
            base.append(bl)
            host.append(h)
        if opts.sparse_workloads and sparse_cfgs:
            dense_ref = opts.configs[0] if opts.configs else HwConfig("os", GemmConfig())
            for w in opts.sparse_workloads:
                for key, cfg in sparse_cfgs:
                    progress.step(f"{w.name} on {key}", advance=0)
                    r, bl = b.sparse(w, key, cfg, dense_ref)
                    sparse_rows.append(r)
                    if not any(x["workload"] == w.name for x in base):
                        base.append(bl)
                    progress.step(f"{w.name} on {key}")
        design_rows = _design_space(opts.workloads, progress) if design else []
    finally:
        b.close()
    res = {
        "schema": 1, "command": command,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": opts.quick, "backend": opts.backend, "seed": opts.seed,
        "rtl_max_macs": b.rtl_max, "quick_rtl_nnz": QUICK_RTL_NNZ if opts.quick else None,
        "assumed_mhz": amdahl.ASSUMED_MHZ,
        "machine": machine_info(), "tools": tool_versions(),
        "configs": configs,
        "workloads": [{"name": w.name, "m": w.m, "k": w.k, "n": w.n, "macs": w.macs,
                       "tags": list(w.tags), "description": w.description}
                      for w in opts.workloads],
        "sparse_workloads": [{"name": w.name, "family": w.family, "args": dict(w.args),
                              "p": w.p, "tags": list(w.tags), "description": w.description}
                             for w in opts.sparse_workloads],
        "gemm": gemm, "sparse": sparse_rows, "baselines": base, "host_side": host,
        "amdahl": [], "design_space": design_rows,
        "verilator_build_or_load_s": b.build_seconds, "notes": b.notes,
    }
    apply_clocks(res)
    res["summary"] = summarize(res)
    res["elapsed_s"] = time.perf_counter() - t_start
    return res


def _range(vals):
    vals = [v for v in vals if v is not None]
    return [min(vals), max(vals)] if vals else None


def _gmean(vals):
    vals = [v for v in vals if v]
    return float(np.exp(np.mean(np.log(vals)))) if vals else None


def summarize(res: dict) -> dict:
    """Headline figures: per config, ranges over workloads; model error over RTL rows."""
    out = {"per_config": {}}
    for c in res["configs"]:
        if c["kind"] == "gemm":
            rows = [r for r in res["gemm"] if r["config"] == c["key"]]
            if not rows:
                continue
            layers = [r for r in rows if r["workload"] in
                      {w["name"] for w in res["workloads"] if "layer" in w["tags"]
                       or "square" in w["tags"]}]
            out["per_config"][c["key"]] = {
                "rows": len(rows), "rtl_rows": sum(r["source"] == "rtl" for r in rows),
                "utilization": _range(r["utilization"] for r in rows),
                "utilization_gmean_layers_and_square": _gmean(r["utilization"] for r in layers),
                "job_to_scalesim": _range(r["job_to_scalesim"] for r in rows),
                "compute_to_scalesim": _range(r["compute_to_scalesim"] for r in rows),
                "job_to_lower_bound": _range(r["job_to_lower_bound"] for r in rows),
                "speedup_vs_numpy_f32": _range(r["speedup_vs_numpy_f32"] for r in rows),
                "speedup_vs_numpy_int": _range(r["speedup_vs_numpy_int"] for r in rows),
                "model_error": _range(r["model_error"] for r in rows),
                "all_rtl_correct": all(r["correct"] for r in rows if r["source"] == "rtl"),
                "clock_mhz": c["clock_mhz"], "clock_source": c["clock_source"]}
        else:
            rows = [r for r in res["sparse"] if r["config"] == c["key"]]
            if not rows:
                continue
            out["per_config"][c["key"]] = {
                "rows": len(rows), "rtl_rows": sum(r["source"] == "rtl" for r in rows),
                "lane_utilization": _range(r["lane_utilization"] for r in rows),
                "job_to_lower_bound": _range(r["job_to_lower_bound"] for r in rows),
                "speedup_vs_scipy_f32": _range(r["speedup_vs_scipy_f32"] for r in rows),
                "speedup_vs_dense_array": _range(r["speedup_vs_dense_array"] for r in rows),
                "model_error": _range(r["model_error"] for r in rows),
                "all_rtl_correct": all(r["correct"] for r in rows if r["source"] == "rtl"),
                "clock_mhz": c["clock_mhz"], "clock_source": c["clock_source"]}
    errs = [r["model_error"] for r in res["gemm"] + res["sparse"] if r["model_error"] is not None]
    out["model_error_rtl_rows"] = _range(errs)
    out["max_abs_model_error"] = max((abs(e) for e in errs), default=None)
    out["rtl_rows"] = len(errs)
    by = {}
    for a in res["amdahl"]:
        by.setdefault(a["config"], {}).setdefault(f"{a['link']}:{a['packer']}", []).append(a)
    out["amdahl"] = {c: {k: {"e2e_speedup_vs_numpy_f32": _range(x["e2e_speedup_vs_numpy_f32"]
                                                                 for x in v),
                             "kernel_speedup": _range(x["kernel_speedup"] for x in v),
                             "achieved_speedup": _range(x["achieved_speedup"] for x in v),
                             "host_share": _range(x["host_share"] for x in v),
                             "amdahl_bound": _range(x["amdahl_bound"] for x in v)}
                         for k, v in links.items()}
                     for c, links in by.items()}
    return out
