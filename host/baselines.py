"""Software baselines, timed on this machine the way a benchmark must be.

Each baseline runs once untimed (warm-up: page faults, BLAS thread start-up, caches),
then repeatedly; the median of the repetitions is the figure quoted, with the
minimum, maximum and count kept beside it. Repetitions continue until both a
minimum count and a minimum total time are reached, and stop early at a time
budget (never below one timed run), so a 10 ms and a 10 s call are both measured
sensibly.

The baselines are the ones a user would otherwise run:

* ``numpy_f32``: ``A @ B`` in float32 (BLAS ``sgemm``; OpenBLAS in numpy's wheels),
  timed with BLAS on all its threads and on one thread, and the faster quoted: on a
  machine whose cores are busy with other work, OpenBLAS's threads wait for each
  other and one thread can be several times faster (both figures are kept);
* ``numpy_int``: ``A @ B`` on int32 copies of the int8 operands (numpy has no
  integer BLAS: this is its own loop, exact, wrapping like the 32-bit accumulator);
* ``scipy_csr``: ``A @ x`` with A a ``scipy.sparse.csr_matrix`` (float32 and int);
* ``numpy_dense_f32`` for sparse workloads: the same product with A dense, float32.
"""

import ctypes
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, asdict

import numpy as np

__all__ = ["Timing", "time_call", "gemm_baselines", "sparse_baselines", "machine_info",
           "blas_info", "blas_threads", "best_of_threads"]


@dataclass(frozen=True)
class Timing:
    """Wall time of one baseline: median of ``reps`` timed runs after ``warmup``."""

    median_s: float
    min_s: float
    max_s: float
    reps: int
    warmup: int

    def to_dict(self) -> dict:
        return asdict(self)


def time_call(fn, *, warmup: int = 1, min_reps: int = 5, min_time: float = 0.2,
              budget: float = 10.0) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then timed calls until at least
    ``min_reps`` calls and ``min_time`` seconds, or ``budget`` seconds (>= 1 call)."""
    for _ in range(warmup):
        fn()
    times = []
    total = 0.0
    while True:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        times.append(dt)
        total += dt
        if len(times) >= min_reps and total >= min_time:
            break
        if total + dt > budget:
            break
    return Timing(statistics.median(times), min(times), max(times), len(times), warmup)


def _openblas():
    """numpy's OpenBLAS as a ctypes library with its thread-count functions, or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()
                     and line.split()[-1].startswith("/")}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, set_ in (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                          ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
                          ("openblas_get_num_threads", "openblas_set_num_threads")):
            if hasattr(lib, get) and hasattr(lib, set_):
                return getattr(lib, get), getattr(lib, set_)
    return None


@contextmanager
def blas_threads(n: int | None):
    """Run the body with numpy's OpenBLAS on ``n`` threads (``None``: leave it alone).

    Yields the thread count in effect (``None`` if it cannot be read or set).
    """
    fns = _openblas() if n is not None else None
    if fns is None:
        yield None
        return
    get, set_ = fns
    old = get()
    set_(n)
    try:
        yield get()
    finally:
        set_(old)


def best_of_threads(fn, **opts) -> tuple:
    """Time ``fn`` with BLAS on its default threads and on one thread.

    Returns ``(best, per_threads)``: the faster :class:`Timing` (by median) as a dict
    with a ``blas_threads`` field, and ``{threads: Timing dict}`` of both runs.
    """
    runs = {}
    fns = _openblas()
    default = fns[0]() if fns else None
    for n in ([default, 1] if default and default > 1 else [default]):
        with blas_threads(n if n != default else None):
            runs[str(n)] = time_call(fn, **opts).to_dict()
    best_key = min(runs, key=lambda k: runs[k]["median_s"])
    return {**runs[best_key], "blas_threads": best_key}, runs


def gemm_baselines(A_f32: np.ndarray, B_f32: np.ndarray, A_q: np.ndarray, B_q: np.ndarray, *,
                   quick: bool = False, skip_int: bool = False) -> dict:
    """Time float32 BLAS on the float operands and numpy's integer matmul on the
    quantized ones. Returns ``{name: Timing.to_dict() or None}``."""
    opts = dict(min_reps=3, min_time=0.05, budget=2.0) if quick else {}
    best, runs = best_of_threads(lambda: A_f32 @ B_f32, **opts)
    out = {"numpy_f32": best, "numpy_f32_by_threads": runs}
    if skip_int:
        out["numpy_int"] = None
    else:
        Ai, Bi = A_q.astype(np.int32), B_q.astype(np.int32)
        out["numpy_int"] = time_call(lambda: Ai @ Bi, **opts).to_dict()
    return out


def sparse_baselines(A_csr, X: np.ndarray, *, quick: bool = False) -> dict:
    """Time scipy.sparse (CSR, float32 and int32) and dense float32 on the same A and X."""
    opts = dict(min_reps=3, min_time=0.05, budget=2.0) if quick else {}
    Af = A_csr.astype(np.float32)
    Ai = A_csr.astype(np.int32)
    Xf = X.astype(np.float32)
    Xi = X.astype(np.int32)
    Ad = Af.toarray()
    best, runs = best_of_threads(lambda: Ad @ Xf, **opts)
    return {"scipy_csr_f32": time_call(lambda: Af @ Xf, **opts).to_dict(),
            "scipy_csr_int": time_call(lambda: Ai @ Xi, **opts).to_dict(),
            "numpy_dense_f32": best, "numpy_dense_f32_by_threads": runs}


def blas_info() -> dict:
    """numpy's BLAS library and the thread count it uses, as far as they can be read."""
    info = {}
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info = {"name": blas.get("name"), "version": blas.get("version"),
                "config": blas.get("openblas configuration")}
    except Exception:                    # noqa: BLE001 - numpy without the dicts mode
        pass
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var):
            info[var] = os.environ[var]
    fns = _openblas()
    if fns is not None:
        info["openblas_threads"] = fns[0]()
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Where the baselines ran: CPU, cores, load, memory, OS, Python, numpy and BLAS."""
    import scipy
    info = {"cpu": _cpu_model(), "logical_cpus": os.cpu_count(),
            "platform": platform.platform(), "python": sys.version.split()[0],
            "numpy": np.__version__, "scipy": scipy.__version__, "blas": blas_info()}
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        info["load_average_1_5_15"] = list(os.getloadavg())
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["memory_gib"] = round(int(line.split()[1]) / 2 ** 20, 1)
    except OSError:
        pass
    return info
