"""From a matmul call to a backend-agnostic program of device operations.

``plan_matmul`` tiles C = A . B into jobs that fit the configured scratchpads and
accumulator, and writes each job as plain operation tuples (see
:mod:`accelgen.sim.device`): register writes, the START strobe, one input frame,
one result frame, a wait for DONE, and reads of STATUS and the counters. Any
transport (the simulators, a cocotb testbench, firmware on a real board) can
replay ``plan.ops``; ``plan.assemble(results)`` turns the results of its reads
and receives back into C.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from accelgen.hdl.config import GemmConfig
from accelgen.hdl.regs import gemm_register_map

from .packing import (ceil_div, pack_input_frame, output_frame_bytes, unpack_output,
                      input_beats, job_words)

__all__ = ["Requant", "Job", "MatmulPlan", "choose_tiling", "job_fits", "build_plan",
           "STATUS_DONE", "STATUS_BUSY"]

MAX_DIM = 65535
STATUS_BUSY = 1 << 0
STATUS_DONE = 1 << 1
STATUS_ERROR = 1 << 2

MODE_ACCUMULATE = 1 << 0
MODE_REQUANT = 1 << 1
MODE_RELU = 1 << 2
MODE_NO_OUTPUT = 1 << 3


@dataclass(frozen=True)
class Requant:
    """Per-tensor requantization to int8: ``sat8(round((acc * multiplier) / 2**shift))``,
    rounding half up, then ``max(., 0)`` with ``relu``.

    Parameters
    ----------
    multiplier : int
        1..65535.
    shift : int
        0..63.
    relu : bool
    """

    multiplier: int
    shift: int
    relu: bool = False

    def __post_init__(self):
        for name, v, hi in (("multiplier", self.multiplier, 65535), ("shift", self.shift, 63)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"Requant.{name} must be an integer, not {v!r}")
            if not (1 if name == "multiplier" else 0) <= v <= hi:
                raise ValueError(f"Requant.{name} must be in {1 if name == 'multiplier' else 0}"
                                 f"..{hi}, not {v!r}")
        if not isinstance(self.relu, bool):
            raise TypeError(f"Requant.relu must be a bool, not {self.relu!r}")

    @classmethod
    def from_scale(cls, scale: float, *, relu: bool = False, mult_bits: int = 15) -> "Requant":
        """The (multiplier, shift) pair closest to ``scale`` with a ``mult_bits`` multiplier."""
        if not scale > 0:
            raise ValueError(f"Requant scale must be positive, not {scale!r}")
        shift = 0
        while scale * (1 << (shift + 1)) < (1 << mult_bits) and shift < 62:
            shift += 1
        mult = int(round(scale * (1 << shift)))
        mult = max(1, min(mult, 65535))
        return cls(mult, shift, relu)

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """Numpy model of the hardware unit."""
        from accelgen.hdl.requant import requantize_reference
        return requantize_reference(acc, self.multiplier, self.shift, self.relu)


@dataclass
class Job:
    """One hardware job: C[m0:m1, n0:n1] (+)= A[m0:m1, k0:k1] . B[k0:k1, n0:n1]."""

    m0: int
    m1: int
    k0: int
    k1: int
    n0: int
    n1: int
    mode: int
    recv_index: int | None = None       # index of its result frame in the results
    status_index: int = 0               # index of its STATUS read
    counter_index: int = 0              # index of its first counter word
    out_bytes: int = 0

    @property
    def m(self):
        return self.m1 - self.m0

    @property
    def k(self):
        return self.k1 - self.k0

    @property
    def n(self):
        return self.n1 - self.n0

    @property
    def emits(self) -> bool:
        return not self.mode & MODE_NO_OUTPUT

    @property
    def requant(self) -> bool:
        return bool(self.mode & MODE_REQUANT)


def job_fits(cfg: GemmConfig, m: int, k: int, n: int) -> bool:
    """Whether a job of this shape fits the scratchpads and the accumulator."""
    R, C = cfg.rows, cfg.cols
    if not (1 <= m <= MAX_DIM and 1 <= k <= MAX_DIM and 1 <= n <= MAX_DIM):
        return False
    a, b = job_words(cfg, m, k, n)
    if cfg.dataflow == "os":
        c = ceil_div(m, R) * ceil_div(n, C) * R
    else:
        c = ceil_div(n, C) * m
    return a <= cfg.a_depth and b <= cfg.b_depth and c <= cfg.acc_depth


def _largest(fits, hi: int, step: int) -> int:
    """Largest multiple of ``step`` (or ``hi`` itself) in 1..hi for which ``fits`` holds."""
    if fits(hi):
        return hi
    best = 0
    v = step
    while v < hi and fits(v):
        best = v
        v += step
    if best == 0 and fits(min(hi, step)):
        best = min(hi, step)
    if best == 0:
        v = 1
        while v < min(hi, step) and fits(v):
            best = v
            v += 1
    return best


def choose_tiling(cfg: GemmConfig, M: int, K: int, N: int):
    """Job tile (mt, kt, nt) for a call, minimising an estimate of total cycles.

    Candidates take K whole or split into equal chunks (multiples of R); for each,
    M and N tiles grow to what the memories hold (multiples of R and C).
    """
    from .model import predict
    R, C = cfg.rows, cfg.cols
    # K chunks: multiples of R (WS folds) and of the sparsity group M
    kstep = math.lcm(R, cfg.nm[1])
    best = None
    seen = set()
    for parts in range(1, 65):
        kt = ceil_div(K, parts)
        if parts > 1:
            kt = ceil_div(kt, kstep) * kstep
        kt = min(kt, MAX_DIM)
        if kt in seen or kt < 1:
            continue
        seen.add(kt)
        mt = _largest(lambda v: job_fits(cfg, v, kt, min(N, C)), min(M, MAX_DIM), R)
        if mt == 0:
            continue
        nt = _largest(lambda v: job_fits(cfg, mt, kt, v), min(N, MAX_DIM), C)
        if nt == 0:
            continue
        # Balance the M tiles: equal-sized tiles waste less on ragged edges.
        mt = min(mt, ceil_div(ceil_div(M, ceil_div(M, mt)), R) * R)
        nt = min(nt, ceil_div(ceil_div(N, ceil_div(N, nt)), C) * C)
        total = 0
        for (mm, kk, nn), count in _job_shapes(M, K, N, mt, kt, nt).items():
            total += count * predict(cfg, mm, kk, nn).job_cycles
        if best is None or total < best[0]:
            best = (total, mt, kt, nt)
        if kt <= R:
            break
    if best is None:
        raise ValueError(f"No job of this configuration fits even a {R}x{C} tile; "
                         f"increase the scratchpad or accumulator capacity")
    return best[1:]


def _job_shapes(M, K, N, mt, kt, nt):
    shapes = {}
    for m0 in range(0, M, mt):
        for n0 in range(0, N, nt):
            for k0 in range(0, K, kt):
                key = (min(mt, M - m0), min(kt, K - k0), min(nt, N - n0))
                shapes[key] = shapes.get(key, 0) + 1
    return shapes


class ProgramResults:
    """Reading a job program's results: per-job STATUS and counters, errors.

    For plans with ``jobs`` (each with ``status_index`` and ``counter_index`` into the
    results), ``counters`` (names, read as _LO/_HI pairs), and :meth:`register_map`
    and :meth:`job_label` of their accelerator.
    """

    def job_status(self, results: list) -> list:
        return [results[j.status_index] for j in self.jobs]

    def job_counters(self, results: list) -> list:
        """Per job, a dict of counter name -> value (64-bit counters reassembled)."""
        out = []
        for j in self.jobs:
            d = {}
            for i, name in enumerate(self.counters):
                lo = results[j.counter_index + 2 * i]
                hi = results[j.counter_index + 2 * i + 1]
                d[name.lower()] = lo | hi << 32
            out.append(d)
        return out

    def check(self, results: list) -> None:
        """Raise :class:`~accelgen.sim.device.DeviceError` if a job reported an error."""
        from accelgen.sim.device import DeviceError
        rmap = self.register_map()
        for j, status in zip(self.jobs, self.job_status(results)):
            if status & STATUS_ERROR:
                code = (status >> 8) & 0xFF
                raise DeviceError(f"Job {self.job_label(j)} failed with error {code} "
                                  f"({rmap.error_name(code)})")


@dataclass
class MatmulPlan(ProgramResults):
    """A matmul call as a program of device operations.

    Members
    -------
    config : GemmConfig
    shape : (M, K, N)
    ops : list of tuple
        The program: ``("write", offset, value)``, ``("read", offset)``,
        ``("send", bytes)``, ``("recv", nbytes)``, ``("wait", offset, mask, expected)``.
    jobs : list of Job
    tiling : (mt, kt, nt)
    requant : Requant or None
    """

    config: GemmConfig
    shape: tuple
    ops: list
    jobs: list
    tiling: tuple
    requant: Requant | None = None
    accumulate: bool = False
    counters: tuple = ()
    input_bytes: int = 0
    output_bytes: int = 0

    def register_map(self):
        return gemm_register_map(self.config)

    @staticmethod
    def job_label(j) -> str:
        return f"C[{j.m0}:{j.m1}, {j.n0}:{j.n1}] (K {j.k0}:{j.k1})"

    def assemble(self, results: list) -> np.ndarray:
        """C from the results of the program's reads and receives, in order."""
        self.check(results)
        M, K, N = self.shape
        cfg = self.config
        if self.requant is not None:
            dtype = np.int8
        else:
            dtype = np.int32 if cfg.acc_bits <= 32 else np.int64
        C = np.zeros((M, N), dtype=dtype)
        for j in self.jobs:
            if j.recv_index is None:
                continue
            frame = results[j.recv_index]
            C[j.m0:j.m1, j.n0:j.n1] = unpack_output(cfg, frame, j.m, j.n, j.requant)
        return C


def build_plan(cfg: GemmConfig, A: np.ndarray, B: np.ndarray, *, accumulate: bool = False,
               requant: Requant | None = None, tiling=None) -> MatmulPlan:
    """Tile and program ``C = A . B`` (arguments already validated)."""
    rmap = gemm_register_map(cfg)
    M, K = A.shape
    N = B.shape[1]
    mt, kt, nt = tiling or choose_tiling(cfg, M, K, N)
    if accumulate and (mt < M or nt < N):
        raise ValueError(
            f"accumulate=True needs C ({M}x{N}) to stay in the accumulator memory as one tile, "
            f"but this configuration holds at most {mt}x{nt} per job; call without accumulate "
            f"and add on the host, or use a config with a larger acc_kib")
    off = rmap.offset
    counters = rmap.counters
    ops, jobs = [], []
    n_results = 0
    in_bytes = out_bytes = 0
    for m0 in range(0, M, mt):
        for n0 in range(0, N, nt):
            for k0 in range(0, K, kt):
                m1, n1, k1 = min(M, m0 + mt), min(N, n0 + nt), min(K, k0 + kt)
                first_k, last_k = k0 == 0, k1 == K
                mode = 0
                if accumulate or not first_k:
                    mode |= MODE_ACCUMULATE
                if not last_k:
                    mode |= MODE_NO_OUTPUT
                elif requant is not None:
                    mode |= MODE_REQUANT | (MODE_RELU if requant.relu else 0)
                job = Job(m0, m1, k0, k1, n0, n1, mode)
                ops += [("write", off("M"), job.m), ("write", off("K"), job.k),
                        ("write", off("N"), job.n), ("write", off("MODE"), mode)]
                if mode & MODE_REQUANT:
                    ops += [("write", off("RQ_MULT"), requant.multiplier),
                            ("write", off("RQ_SHIFT"), requant.shift)]
                ops.append(("write", off("CTRL"), 1))
                frame = pack_input_frame(cfg, A[m0:m1, k0:k1], B[k0:k1, n0:n1])
                in_bytes += len(frame)
                ops.append(("send", frame))
                if job.emits:
                    job.out_bytes = output_frame_bytes(cfg, job.m, job.n, job.requant)
                    out_bytes += job.out_bytes
                    ops.append(("recv", job.out_bytes))
                    job.recv_index = n_results
                    n_results += 1
                ops.append(("wait", off("STATUS"), STATUS_BUSY | STATUS_DONE, STATUS_DONE))
                ops.append(("read", off("STATUS")))
                job.status_index = n_results
                n_results += 1
                job.counter_index = n_results
                for name in counters:
                    ops += [("read", off(f"{name}_LO")), ("read", off(f"{name}_HI"))]
                    n_results += 2
                jobs.append(job)
    return MatmulPlan(cfg, (M, K, N), ops, jobs, (mt, kt, nt), requant, accumulate,
                      counters, in_bytes, out_bytes)
