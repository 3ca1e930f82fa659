"""The report of a driver call: hardware counters and what they mean."""

from dataclasses import dataclass, field, asdict

__all__ = ["GemmReport"]


@dataclass
class GemmReport:
    """Counters and derived figures of one ``matmul`` call.

    Counters (``job_cycles`` ... ``macs``) are read from the hardware; for a call
    tiled into several jobs they are sums over its jobs and ``jobs`` lists each
    job's own. Cycle definitions are those of the design notes: job cycles run from
    the accepted START to the last result beat accepted; compute cycles from the
    first operand entering the array to the last result leaving it, minus input
    stalls in that span.

    Members
    -------
    lower_bound_cycles : int
        max(MACs / (R*C), input bytes / stream bytes per cycle, output bytes / ...)
        of the whole call.
    scalesim_cycles : int
        SCALE-Sim 3.0's stall-free figure for the same array, dataflow and shape.
    utilization : float
        MACs / (job_cycles * R * C).
    model_job_cycles : int
        The analytic model's prediction (sum over jobs).
    fmax_mhz, projected_seconds : float or None
        Post-route Fmax of this config when a synthesis result is cached, and the
        wall time ``job_cycles / fmax`` it implies; ``fmax_note`` says which.
    """

    m: int
    k: int
    n: int
    backend: str
    config: str
    job_cycles: int
    compute_cycles: int
    input_stall_cycles: int
    output_stall_cycles: int
    macs: int
    lower_bound_cycles: int
    scalesim_cycles: int
    utilization: float
    model_job_cycles: int
    model_compute_cycles: int
    tiling: tuple
    requantized: bool = False
    accumulated: bool = False
    fmax_mhz: float | None = None
    projected_seconds: float | None = None
    fmax_note: str = ""
    host_seconds: float = 0.0
    device_seconds: float = 0.0
    device_cycles: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    jobs: list = field(default_factory=list)

    @property
    def ratio_to_lower_bound(self) -> float:
        return self.job_cycles / self.lower_bound_cycles

    @property
    def compute_to_scalesim(self) -> float:
        return self.compute_cycles / self.scalesim_cycles

    @property
    def job_to_scalesim(self) -> float:
        return self.job_cycles / self.scalesim_cycles

    @property
    def model_error(self) -> float:
        """Relative error of the model's job cycles against the hardware counter."""
        return (self.model_job_cycles - self.job_cycles) / self.job_cycles

    @property
    def simulated_cycles_per_second(self) -> float:
        return self.device_cycles / self.device_seconds if self.device_seconds else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tiling"] = list(self.tiling)
        d.update(ratio_to_lower_bound=self.ratio_to_lower_bound,
                 compute_to_scalesim=self.compute_to_scalesim,
                 job_to_scalesim=self.job_to_scalesim, model_error=self.model_error,
                 simulated_cycles_per_second=self.simulated_cycles_per_second)
        return d
