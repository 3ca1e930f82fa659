"""The analytic cycle model of a whole ``matmul`` call: :func:`accelgen.host.model.predict`
summed over the jobs the driver's tiling makes.

:func:`accelgen.host.model.predict` models one hardware job. A call is tiled by
:func:`accelgen.host.plan.choose_tiling` into jobs that fit the scratchpads and the
accumulator; :func:`call_jobs` lists them exactly as :func:`~accelgen.host.plan.build_plan`
issues them (K chunks but the last accumulate in hardware and emit no output; only
the last K chunk requantizes), and :func:`predict_call` adds up their predicted
counters and stream bytes. No operand data is needed, so a call of any size costs
milliseconds: this is how the benchmark covers workloads too large to simulate.
"""

from collections import Counter
from dataclasses import dataclass, asdict

from accelgen.hdl.config import GemmConfig

from .model import predict
from .packing import input_beats, output_frame_bytes
from .plan import choose_tiling

__all__ = ["CallJob", "CallPrediction", "call_jobs", "predict_call"]


@dataclass(frozen=True)
class CallJob:
    """One job shape of a call and how it runs (``count`` jobs share it)."""

    m: int
    k: int
    n: int
    requant: bool
    no_output: bool


@dataclass(frozen=True)
class CallPrediction:
    """Predicted counters of a call, summed over its jobs (names as :class:`GemmReport`).

    Members
    -------
    jobs : int
        Hardware jobs of the call.
    tiling : tuple
        (mt, kt, nt) job tile of :func:`~accelgen.host.plan.choose_tiling`.
    input_bytes, output_bytes : int
        Bytes the call's input frames and result frames carry on the streams (padding
        to whole beats and operands re-sent to several jobs included).
    """

    job_cycles: int
    compute_cycles: int
    input_stall_cycles: int
    output_stall_cycles: int
    macs: int
    folds: int
    jobs: int
    tiling: tuple
    input_bytes: int
    output_bytes: int

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tiling"] = list(self.tiling)
        return d


def call_jobs(cfg: GemmConfig, M: int, K: int, N: int, *, requant: bool = False,
              tiling=None) -> Counter:
    """The jobs of ``C[MxN] = A[MxK] B[KxN]`` on ``cfg``, as a Counter of :class:`CallJob`.

    ``tiling`` defaults to the driver's choice.
    """
    mt, kt, nt = tiling or choose_tiling(cfg, M, K, N)
    jobs = Counter()
    for m0 in range(0, M, mt):
        for n0 in range(0, N, nt):
            for k0 in range(0, K, kt):
                last_k = min(K, k0 + kt) == K
                jobs[CallJob(min(mt, M - m0), min(kt, K - k0), min(nt, N - n0),
                             requant and last_k, not last_k)] += 1
    return jobs


def predict_call(cfg: GemmConfig, M: int, K: int, N: int, *, requant: bool = False,
                 tiling=None) -> CallPrediction:
    """Counters and stream bytes of ``matmul`` on an (M, K) and a (K, N) operand.

    Parameters
    ----------
    cfg : GemmConfig
    M, K, N : int
    requant : bool
        Whether the call requantizes its results to int8.
    tiling : (mt, kt, nt), optional
        Job tile; the driver's :func:`~accelgen.host.plan.choose_tiling` by default.
    """
    if not isinstance(cfg, GemmConfig):
        raise TypeError(f"predict_call needs a GemmConfig, not {cfg!r}")
    for name, v in (("M", M), ("K", K), ("N", N)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    tiling = tuple(tiling or choose_tiling(cfg, M, K, N))
    tot = Counter()
    n_jobs = 0
    sbytes = cfg.stream_bits // 8
    for job, count in call_jobs(cfg, M, K, N, requant=requant, tiling=tiling).items():
        p = predict(cfg, job.m, job.k, job.n, requant=job.requant, no_output=job.no_output)
        tot["job_cycles"] += count * p.job_cycles
        tot["compute_cycles"] += count * p.compute_cycles
        tot["input_stall_cycles"] += count * p.input_stall_cycles
        tot["output_stall_cycles"] += count * p.output_stall_cycles
        tot["macs"] += count * p.macs
        tot["folds"] += count * p.folds
        tot["input_bytes"] += count * input_beats(cfg, job.m, job.k, job.n) * sbytes
        if not job.no_output:
            tot["output_bytes"] += count * output_frame_bytes(cfg, job.m, job.n, job.requant)
        n_jobs += count
    return CallPrediction(jobs=n_jobs, tiling=tiling, **{k: int(tot[k]) for k in (
        "job_cycles", "compute_cycles", "input_stall_cycles", "output_stall_cycles", "macs",
        "folds", "input_bytes", "output_bytes")})
