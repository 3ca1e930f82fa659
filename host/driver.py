"""The host driver: numpy in, numpy out, through any backend.

>>> from accelgen.hdl import GemmConfig
>>> from accelgen.host import Accelerator
>>> acc = Accelerator(GemmConfig(rows=8, cols=8), backend="verilator")
>>> C, report = acc.matmul(A, B)
"""

import time

import numpy as np

from accelgen.hdl.config import GemmConfig
from accelgen.hdl.regs import gemm_register_map
from accelgen.hdl.sparse_config import SparseConfig
from accelgen.hdl.sparse_regs import sparse_register_map

from .plan import MatmulPlan, Requant, build_plan, STATUS_ERROR
from .model import predict, scalesim_cycles, lower_bound_cycles
from .report import GemmReport
from .nm import check_nm

__all__ = ["Accelerator", "BACKENDS", "validate_operands", "reference_matmul", "open_device"]

BACKENDS = ("verilator", "amaranth")


def open_device(config, backend: str, **options):
    """Create a device of ``backend`` for ``config``."""
    if backend == "verilator":
        from accelgen.sim.verilator_backend import VerilatorDevice
        return VerilatorDevice(config, **options)
    if backend == "amaranth":
        from accelgen.sim.amaranth_backend import AmaranthDevice
        return AmaranthDevice(config, **options)
    raise ValueError(f"Backend must be one of {', '.join(map(repr, BACKENDS))}, not {backend!r}")


def _check_matrix(name: str, X, dtype) -> np.ndarray:
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(X).__name__}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D, not {X.ndim}-D with shape {X.shape}")
    if X.size == 0:
        raise ValueError(f"{name} must not be empty, but has shape {X.shape}")
    if not np.issubdtype(X.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype (quantize first), not {X.dtype}")
    lo, hi = int(X.min()), int(X.max())
    if lo < dtype.min or hi > dtype.max:
        bad = lo if lo < dtype.min else hi
        raise ValueError(f"{name} holds {bad}, outside {dtype.name} "
                         f"[{dtype.min}, {dtype.max}]")
    return X.astype(np.int64, copy=False)


def validate_operands(config: GemmConfig, A, B):
    """Check A and B for ``config``; returns them as int64 arrays."""
    A = _check_matrix("A", A, config.a)
    B = _check_matrix("B", B, config.b)
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"Shapes do not match for A @ B: A is {A.shape[0]}x{A.shape[1]}, "
                         f"B is {B.shape[0]}x{B.shape[1]} (A's columns must equal B's rows)")
    if config.sparsity != "dense":
        check_nm(B, *config.nm)
    return A, B


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement wrap of integers to ``bits``."""
    x = np.asarray(x, dtype=object if bits > 62 else np.int64)
    mod = 1 << bits
    half = 1 << (bits - 1)
    return (x + half) % mod - half


def reference_matmul(config: GemmConfig, A, B, *, C_prev=None, requant: Requant | None = None):
    """What the hardware computes, in numpy: ``(C_prev +) A @ B`` wrapped to the
    accumulator width, then requantized if asked."""
    A = np.asarray(A, dtype=object) if config.acc_bits > 62 else np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=object) if config.acc_bits > 62 else np.asarray(B, dtype=np.int64)
    C = A @ B
    if C_prev is not None:
        C = C + C_prev
    C = wrap(C, config.acc_bits)
    if requant is not None:
        return requant.apply(C)
    return C.astype(np.int32 if config.acc_bits <= 32 else np.int64)


class Accelerator:
    """A generated GEMM accelerator behind a backend.

    Parameters
    ----------
    config : GemmConfig, optional
        Defaults to ``GemmConfig()`` (8x8 int8, output-stationary).
    backend : str
        ``"verilator"`` (compiled RTL, fast) or ``"amaranth"`` (Python simulator, no tools).
    **options
        Passed to the backend (e.g. ``trace=`` for Verilator, ``vcd=`` for Amaranth).
    """

    def __init__(self, config: GemmConfig | None = None, backend: str = "verilator", **options):
        config = GemmConfig() if config is None else config
        if not isinstance(config, (GemmConfig, SparseConfig)):
            raise TypeError(f"Accelerator config must be a GemmConfig or a SparseConfig, "
                            f"not {config!r}")
        if backend not in BACKENDS:
            raise ValueError(f"Backend must be one of {', '.join(map(repr, BACKENDS))}, "
                             f"not {backend!r}")
        self.config = config
        self.backend = backend
        self._options = options
        self._device = None
        self._resident = None       # (M, N) of a C left whole in the accumulator memory
        self.regmap = (sparse_register_map(config) if isinstance(config, SparseConfig)
                       else gemm_register_map(config))

    @property
    def device(self):
        """The backend device, created on first use."""
        if self._device is None:
            self._device = open_device(self.config, self.backend, **self._options)
        return self._device

    def close(self):
        if self._device is not None:
            self._device.close()
            self._device = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- programs ----------------------------------------------------------------------

    def plan_matmul(self, A, B, *, accumulate: bool = False,
                    requant: Requant | None = None) -> MatmulPlan:
        """The device-operation program of ``C = A @ B`` (see :class:`MatmulPlan`)."""
        self._require_gemm("plan_matmul")
        A, B = validate_operands(self.config, A, B)
        if requant is not None and not isinstance(requant, Requant):
            raise TypeError(f"requant must be a Requant or None, not {requant!r}")
        if requant is not None and not self.config.requant:
            raise ValueError("requant was asked for, but this config has requant=False "
                             "(no requantization unit in the hardware)")
        if not isinstance(accumulate, bool):
            raise TypeError(f"accumulate must be a bool, not {accumulate!r}")
        return build_plan(self.config, A, B, accumulate=accumulate, requant=requant)

    def matmul(self, A, B, *, accumulate: bool = False, requant: Requant | None = None):
        """``C = A @ B`` (or ``C = C_prev + A @ B`` with ``accumulate``) on the hardware.

        Returns ``(C, report)``. C is int32 (int64 for accumulators wider than 32 bits),
        or int8 with ``requant``.
        """
        self._require_gemm("matmul")
        t0 = time.perf_counter()
        if accumulate:
            M, N = np.shape(A)[0], np.shape(B)[1]
            if self._resident != (M, N):
                raise ValueError(
                    f"accumulate=True adds onto the previous result left in the accumulator "
                    f"memory, which must be a whole {M}x{N} C; the previous call left "
                    f"{'nothing usable' if self._resident is None else 'a %dx%d C' % self._resident}")
        plan = self.plan_matmul(A, B, accumulate=accumulate, requant=requant)
        host_s = time.perf_counter() - t0
        M, K, N = plan.shape
        budget = sum(predict(self.config, j.m, j.k, j.n).job_cycles for j in plan.jobs) * 4
        budget += 100_000
        dev = self.device
        c0 = dev.cycles
        t1 = time.perf_counter()
        try:
            results = dev.execute(plan.ops, timeout_cycles=budget)
        except Exception as exc:
            self._resident = None
            from accelgen.sim.device import DeviceTimeout, DeviceError
            if isinstance(exc, DeviceTimeout):
                status = dev.read(self.regmap.offset("STATUS"))
                if status & STATUS_ERROR:
                    code = (status >> 8) & 0xFF
                    raise DeviceError(f"The accelerator reported error {code} "
                                      f"({self.regmap.error_name(code)})") from exc
            raise
        dev_s = time.perf_counter() - t1
        C = plan.assemble(results)
        mt, kt, nt = plan.tiling
        self._resident = (M, N) if (mt >= M and nt >= N) else None
        per_job = plan.job_counters(results)
        for j, d in zip(plan.jobs, per_job):
            d.update(m=j.m, k=j.k, n=j.n, m0=j.m0, k0=j.k0, n0=j.n0, mode=j.mode)
        tot = {k: sum(d[k] for d in per_job) for k in
               ("job_cycles", "compute_cycles", "in_stall_cycles", "out_stall_cycles", "macs")}
        preds = [predict(self.config, j.m, j.k, j.n, requant=j.requant, no_output=not j.emits)
                 for j in plan.jobs]
        R, Cc = self.config.rows, self.config.cols
        fmax, note = _cached_fmax(self.config)
        report = GemmReport(
            m=M, k=K, n=N, backend=self.backend, config=self.config.describe(),
            job_cycles=tot["job_cycles"], compute_cycles=tot["compute_cycles"],
            input_stall_cycles=tot["in_stall_cycles"], output_stall_cycles=tot["out_stall_cycles"],
            macs=tot["macs"],
            lower_bound_cycles=lower_bound_cycles(self.config, M, K, N, requant=requant is not None),
            scalesim_cycles=scalesim_cycles(self.config, M, K, N),
            utilization=tot["macs"] / (tot["job_cycles"] * R * Cc),
            model_job_cycles=sum(p.job_cycles for p in preds),
            model_compute_cycles=sum(p.compute_cycles for p in preds),
            tiling=plan.tiling, requantized=requant is not None, accumulated=accumulate,
            fmax_mhz=fmax, projected_seconds=(tot["job_cycles"] / (fmax * 1e6)) if fmax else None,
            fmax_note=note, host_seconds=host_s, device_seconds=dev_s,
            device_cycles=dev.cycles - c0, input_bytes=plan.input_bytes,
            output_bytes=plan.output_bytes, jobs=per_job)
        return C, report

    # -- the sparse accelerator (see accelgen.host.sparse) ------------------------------

    def _require_gemm(self, what):
        if isinstance(self.config, SparseConfig):
            raise TypeError(f"{what} needs a GEMM accelerator (GemmConfig); this one is the "
                            f"sparse accelerator: use spmv / spmm")

    def _require_sparse(self, what):
        if not isinstance(self.config, SparseConfig):
            raise TypeError(f"{what} needs the sparse accelerator (SparseConfig); this one is "
                            f"a GEMM accelerator: use matmul")

    def plan_spmv(self, A, x):
        """The device-operation program of ``y = A @ x`` (see :class:`~.sparse.SparsePlan`)."""
        self._require_sparse("plan_spmv")
        from .sparse import plan_spmv
        return plan_spmv(self.config, A, x)

    def plan_spmm(self, A, X):
        """The device-operation program of ``Y = A @ X``."""
        self._require_sparse("plan_spmm")
        from .sparse import plan_spmm
        return plan_spmm(self.config, A, X)

    def spmv(self, A, x):
        """``y = A @ x`` with A sparse (scipy.sparse, any format, or numpy) and x 1-D.

        Returns ``(y, report)``: y is int32 (int64 above 32-bit accumulators), the
        report a :class:`~.sparse.SparseReport`.
        """
        self._require_sparse("spmv")
        from .sparse import spmv
        return spmv(self, A, x)

    def spmm(self, A, X):
        """``Y = A @ X`` with A sparse and X dense (any number of columns): ``(Y, report)``."""
        self._require_sparse("spmm")
        from .sparse import spmm
        return spmm(self, A, X)


def _cached_fmax(config):
    """(Fmax in MHz, note) from a cached synthesis result of this config, if any."""
    try:
        from accelgen.boards.cache import cached_fmax
    except ImportError:
        return None, "no synthesis flow installed"
    return cached_fmax(config)
