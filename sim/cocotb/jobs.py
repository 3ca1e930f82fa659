"""Workloads shared by the cocotb testbench and its pytest runners.

A :class:`Scenario` is a short sequence of driver calls (``C = A @ B``, optionally
accumulating onto the previous call's result or requantizing) with operands drawn
from a fixed seed, so that the testbench (inside the simulator process) and the
pytest side (which runs the same programs on the Amaranth and Verilator backends)
build bit-identical programs from nothing but the scenario's name and the config.

The programs themselves always come from the driver (``Accelerator.plan_matmul``):
the testbench replays ``plan.ops`` and never writes a register address or packs a
stream of its own.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accelgen.hdl.config import GemmConfig
from accelgen.host.driver import Accelerator, reference_matmul
from accelgen.host.plan import MatmulPlan, Requant

__all__ = ["Call", "Scenario", "scenarios", "scenario_from_calls", "DATA_SCENARIOS",
           "EQUIVALENCE_SCENARIOS", "run_on_device", "save_golden", "load_golden"]

#: Scenarios every data test of the testbench is crossed with stall patterns on.
DATA_SCENARIOS = ("single", "tiled", "edges")
#: Scenarios of the cross-simulator equivalence test.
EQUIVALENCE_SCENARIOS = ("single", "edges", "tiled")


# Planning (tiling search with the cycle model) costs more than a short simulated job.
_PLANS: dict = {}


@dataclass(frozen=True)
class Call:
    """One driver call: ``C = A @ B`` (``+ C_prev`` with ``accumulate``).

    Members
    -------
    A, B : numpy.ndarray
        Integer operands within the config's operand types.
    accumulate : bool
        Add onto the accumulator contents the previous call left (same M x N).
    requant : Requant or None
        Requantize the result to int8 on the way out.
    """

    A: np.ndarray
    B: np.ndarray
    accumulate: bool = False
    requant: Requant | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.A.shape[0], self.A.shape[1], self.B.shape[1]


@dataclass(frozen=True)
class Scenario:
    """A named sequence of calls and, per call, the C numpy expects.

    Members
    -------
    name : str
    calls : tuple of Call
    expected : tuple of numpy.ndarray
        ``reference_matmul`` of each call, accumulating onto the previous call's
        unrequantized result where the call accumulates.
    """

    name: str
    calls: tuple
    expected: tuple = field(repr=False)

    def plans(self, config: GemmConfig) -> list[MatmulPlan]:
        """The driver's device programs of the calls, in order (fresh objects: a test
        may edit ``plan.ops``)."""
        key = (config, self.name, id(self))
        if key not in _PLANS:
            acc = Accelerator(config, backend="verilator")     # plans only: no device opened
            # the scenario is kept alive with its plans, so its id() is not reused
            _PLANS[key] = (self, [acc.plan_matmul(c.A, c.B, accumulate=c.accumulate,
                                                  requant=c.requant) for c in self.calls])
        return [copy.copy(plan) for plan in _PLANS[key][1]]


def _operands(cfg: GemmConfig, rng: np.random.Generator, m: int, k: int, n: int,
              fill: str = "random"):
    a, b = cfg.a, cfg.b
    if fill == "random":
        return (rng.integers(a.min, a.max + 1, (m, k)), rng.integers(b.min, b.max + 1, (k, n)))
    if fill == "extreme":
        # the largest-magnitude products of both signs: checks wrap and sign extension
        A = np.where(rng.random((m, k)) < 0.5, a.min, a.max)
        B = np.where(rng.random((k, n)) < 0.5, b.min, b.max)
        return A.astype(np.int64), B.astype(np.int64)
    raise ValueError(f"Operand fill must be 'random' or 'extreme', not {fill!r}")


def scenario_from_calls(cfg: GemmConfig, name: str, calls: list[Call]) -> Scenario:
    expected = []
    raw = None
    for c in calls:
        prev = raw if c.accumulate else None
        raw = reference_matmul(cfg, c.A, c.B, C_prev=prev)
        expected.append(reference_matmul(cfg, c.A, c.B, C_prev=prev, requant=c.requant))
    return Scenario(name, tuple(calls), tuple(expected))


@functools.lru_cache(maxsize=8)
def scenarios(cfg: GemmConfig) -> dict[str, Scenario]:
    """Every scenario for ``cfg`` (shapes scale with the array and the memories).

    ``single``
        One job with ragged edges (M, N not multiples of R, C).
    ``tiled``
        Calls the driver must split into several jobs: K split across jobs
        (NO_OUTPUT and ACCUMULATE modes) and M/N tiles (accumulator capacity).
    ``edges``
        A 1x1x1 job, extreme operand values, requantization with ReLU, and a call
        accumulating onto the previous call's result with requantization.
    """
    R, C = cfg.rows, cfg.cols
    rng = np.random.default_rng(0xACC)
    out = {}

    out["single"] = scenario_from_calls(cfg, "single",
                                        [Call(*_operands(cfg, rng, 2 * R + 1, 7, C + 1))])

    # K long enough that A of ni row tiles overflows the A scratchpad: a K split.
    # (A words: ceil(M/R)*K in OS, ceil(K/R)*M in WS.)
    ni = 2
    if cfg.dataflow == "os":
        k_split = cfg.a_depth // ni + 3
    else:
        k_split = (cfg.a_depth // (ni * R) + 1) * R
    m_tile = R * ni
    # M and N large enough that C overflows the accumulator memory: M/N tiles.
    side = 1
    while _acc_rows(cfg, side * R + 1, side * C + 1) <= cfg.acc_depth:
        side += 1
    calls = [Call(*_operands(cfg, rng, m_tile, k_split, C + 1)),
             Call(*_operands(cfg, rng, side * R + 1, 3, side * C + 1))]
    out["tiled"] = scenario_from_calls(cfg, "tiled", calls)

    rq = Requant(3, 4, relu=True) if cfg.requant else None
    rq2 = Requant(5, 7) if cfg.requant else None
    calls = [Call(*_operands(cfg, rng, 1, 1, 1)),
             Call(*_operands(cfg, rng, R + 1, 37, C, fill="extreme")),
             Call(*_operands(cfg, rng, R + 1, 5, C + 1), requant=rq),
             Call(*_operands(cfg, rng, R, 4, C + 1)),
             Call(*_operands(cfg, rng, R, 6, C + 1), accumulate=True, requant=rq2)]
    out["edges"] = scenario_from_calls(cfg, "edges", calls)

    for s in out.values():
        for call, plan in zip(s.calls, s.plans(cfg)):
            assert plan.jobs, (s.name, call.shape)
    tiled = out["tiled"].plans(cfg)
    assert len(tiled[0].jobs) > 1 and any(j.k < k_split for j in tiled[0].jobs), \
        "scenario 'tiled' must split K across jobs"
    assert len(tiled[1].jobs) > 1, "scenario 'tiled' must tile M/N"
    return out


def _acc_rows(cfg: GemmConfig, m: int, n: int) -> int:
    ceil = lambda a, b: -(-a // b)                        # noqa: E731
    if cfg.dataflow == "os":
        return ceil(m, cfg.rows) * ceil(n, cfg.cols) * cfg.rows
    return ceil(n, cfg.cols) * m


def run_on_device(config: GemmConfig, scenario: Scenario, device) -> dict:
    """Run a scenario's programs on a backend device, in order, without a reset.

    Returns ``{"C": [C as nested lists per call], "counters": [[per-job dicts] per call]}``.
    """
    out = {"C": [], "counters": []}
    for plan in scenario.plans(config):
        results = device.execute(plan.ops)
        out["C"].append(plan.assemble(results).tolist())
        out["counters"].append(plan.job_counters(results))
    return out


def save_golden(path: Path, config: GemmConfig, runs: dict) -> None:
    """Write reference runs (``{scenario: run_on_device(...)}``) for the testbench."""
    Path(path).write_text(json.dumps({"config": config.to_dict(), "runs": runs}))


def load_golden(path, config: GemmConfig) -> dict | None:
    """Reference runs written by :func:`save_golden` for this config, or ``None``."""
    if not path:
        return None
    data = json.loads(Path(path).read_text())
    if data.get("config") != config.to_dict():
        return None
    return data["runs"]
