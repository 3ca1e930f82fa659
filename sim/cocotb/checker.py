"""The checkers: results against numpy / scipy, counters against what is known exactly.

:class:`Checker` (GEMM). Known exactly: MACs, the lower bound of DESIGN.md, the
analytic model's stall-free prediction, the Verilator backend's run of the same
program, and the backpressure cycles the protocol monitor counted.

:class:`SparseChecker` (sparse MAC accelerator). Known exactly under any stalls:
nonzeros, lane-busy cycles and conflict stalls (replicated buffer), X load beats;
without stalls every counter equals the sparse cycle model's prediction
(:func:`accelgen.host.sparse_model.predict_sparse`), which the driver tests show
equal to the Verilator and Amaranth backends' counters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from accelgen.host.model import predict
from accelgen.host.plan import STATUS_BUSY, STATUS_DONE, STATUS_ERROR

__all__ = ["Checker", "SparseChecker", "job_lower_bound"]


def job_lower_bound(config, job, in_bytes: int) -> int:
    """max(MACs / (R*C), input bytes / bus bytes, output bytes / bus bytes) of one job,
    from useful work only (DESIGN.md, cycle semantics)."""
    ceil = lambda a, b: -(-a // b)                        # noqa: E731
    sb = config.stream_bits // 8
    bound = max(ceil(job.m * job.k * job.n, config.rows * config.cols),
                ceil(ceil(job.m * job.k * config.a.bits + job.k * job.n * config.b.bits, 8), sb))
    if job.emits:
        lane = 8 if job.requant else config.acc_bits
        bound = max(bound, ceil(ceil(job.m * job.n * lane, 8), sb))
    return bound


@dataclass
class Checker:
    """Checks one program's results.

    Parameters
    ----------
    config : GemmConfig
    log : logging.Logger
    """

    config: object
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("cocotb.tb"))

    def result(self, plan, results, expected: np.ndarray) -> np.ndarray:
        """C assembled from the results equals numpy's, bit for bit."""
        C = plan.assemble(results)
        if C.shape != expected.shape or not np.array_equal(C, expected):
            bad = np.argwhere(C != expected) if C.shape == expected.shape else []
            where = ", ".join(f"C[{','.join(map(str, ix))}]={C[tuple(ix)]} "
                              f"(numpy {expected[tuple(ix)]})" for ix in bad[:5])
            raise AssertionError(f"C of shape {C.shape} differs from numpy's {expected.shape} "
                                 f"at {len(bad)} places: {where}")
        return C

    def counters(self, plan, results, *, golden=None, observed=None, stalled_in=False,
                 stalled_out=False) -> list[dict]:
        """Counters of every job: MACs and the lower bound always; without stalls, the
        analytic model's prediction (:meth:`_against_model`).

        ``golden``: the Verilator backend's counters of the same program with the
        canonical (stall-free) stimulus. Without stalls every counter must equal it;
        with stalls the stall-free schedule length (COMPUTE_CYCLES) must still equal it
        and no job may finish sooner. ``observed``: per job :class:`JobObservation`.
        """
        cfg = self.config
        out = plan.job_counters(results)
        sends = [op[1] for op in plan.ops if op[0] == "send"]
        for i, (job, c) in enumerate(zip(plan.jobs, out)):
            what = f"job {i} ({job.m}x{job.k}x{job.n}, mode {job.mode:#x})"
            assert c["macs"] == job.m * job.k * job.n, f"{what}: MACS {c['macs']}"
            bound = job_lower_bound(cfg, job, len(sends[i]))
            assert c["job_cycles"] >= bound, \
                f"{what}: JOB_CYCLES {c['job_cycles']} < bound {bound}"
            assert c["compute_cycles"] >= -(-job.m * job.k * job.n // (cfg.rows * cfg.cols)), \
                f"{what}: COMPUTE_CYCLES {c['compute_cycles']} below MACs/(R*C)"
            assert c["compute_cycles"] <= c["job_cycles"], \
                f"{what}: COMPUTE_CYCLES {c['compute_cycles']} > JOB_CYCLES {c['job_cycles']}"
            if observed is not None:
                o = observed[i]
                assert c["out_stall_cycles"] == o.out_stall_cycles, (
                    f"{what}: OUT_STALL_CYCLES {c['out_stall_cycles']} but the monitor saw "
                    f"{o.out_stall_cycles} cycles of TVALID & !TREADY")
                if stalled_in:
                    assert o.in_idle_cycles > 0, f"{what}: idle insertion never happened"
                    assert c["in_stall_cycles"] > 0, \
                        f"{what}: input idle was inserted but IN_STALL_CYCLES is 0"
                if not stalled_out:
                    assert c["out_stall_cycles"] == 0, \
                        f"{what}: output stalls without backpressure"
            if not (stalled_in or stalled_out):
                self._against_model(what, job, c)
            if golden is not None:
                g = golden[i]
                if not (stalled_in or stalled_out):
                    assert c == g, f"{what}: counters {c} differ from the Verilator backend's {g}"
                else:
                    assert c["compute_cycles"] == g["compute_cycles"], (
                        f"{what}: COMPUTE_CYCLES {c['compute_cycles']} under stalls differs from "
                        f"the stall-free {g['compute_cycles']} (it is the stall-free schedule)")
                    assert c["job_cycles"] >= g["job_cycles"], (
                        f"{what}: JOB_CYCLES {c['job_cycles']} under stalls is less than "
                        f"stall-free {g['job_cycles']}")
        return out

    #: The model's JOB_CYCLES of a NO_OUTPUT job is one cycle short of the hardware's
    #: (reported; every other stall-free counter it predicts is exact).
    NO_OUTPUT_SLACK = 1

    def _against_model(self, what: str, job, c: dict) -> None:
        """Stall-free counters equal the analytic model's prediction."""
        p = predict(self.config, job.m, job.k, job.n, requant=job.requant,
                    no_output=not job.emits)
        slack = 0 if job.emits else self.NO_OUTPUT_SLACK
        assert abs(c["job_cycles"] - p.job_cycles) <= slack, \
            f"{what}: JOB_CYCLES {c['job_cycles']}, the model predicts {p.job_cycles}"
        assert c["compute_cycles"] == p.compute_cycles, \
            f"{what}: COMPUTE_CYCLES {c['compute_cycles']}, the model predicts {p.compute_cycles}"
        assert c["in_stall_cycles"] == p.input_stall_cycles, (
            f"{what}: IN_STALL_CYCLES {c['in_stall_cycles']}, the model predicts "
            f"{p.input_stall_cycles}")
        assert c["macs"] == p.macs

    @staticmethod
    def status(plan, results) -> None:
        """Every job ended DONE, not BUSY, without an error."""
        for status in plan.job_status(results):
            assert status & STATUS_DONE and not status & STATUS_BUSY, f"STATUS {status:#x}"
            assert not status & STATUS_ERROR, f"job failed: STATUS {status:#x}"


class SparseChecker(Checker):
    """Checks one sparse program's results (``plan_spmv`` / ``plan_spmm``).

    Parameters
    ----------
    config : SparseConfig
    log : logging.Logger
    """

    def counters(self, plan, results, *, golden=None, observed=None, stalled_in=False,
                 stalled_out=False) -> list[dict]:
        """Counters of every job.

        Always: NNZ is the job's nonzeros; LANE_BUSY_CYCLES and CONFLICT_STALL_CYCLES
        equal the prediction (they depend on each beat's contents only: the gather
        stage holds still while the pipeline is stopped), which with a replicated dense
        buffer is the job's entries and 0; LOAD_CYCLES at least its X beats;
        JOB_CYCLES at least the stall-free prediction, and at least setup + load + one
        cycle per entry beat. Input idle must show in LOAD_CYCLES + IN_STALL_CYCLES.
        Without stalls every counter equals the cycle model's prediction (and
        ``golden``, a reference run's counters, when given).
        """
        cfg = self.config
        out = plan.job_counters(results)
        replicated = cfg.x_buffer == "replicated"
        for i, (job, c) in enumerate(zip(plan.jobs, out)):
            p = job.prediction
            what = (f"job {i} (rows {job.r0}:{job.r1}, A columns {job.c0}:{job.c1}, X columns "
                    f"{job.g0}:{job.g1}, {job.entries} entries)")
            x_beats = -(-job.cols // cfg.x_rows_per_beat)
            entry_beats = -(-job.entries // cfg.lanes)
            assert c["nnz"] == job.nnz == p.nnz, f"{what}: NNZ {c['nnz']}, the job has {job.nnz}"
            for name in ("lane_busy_cycles", "conflict_stall_cycles"):
                assert c[name] == getattr(p, name), \
                    f"{what}: {name.upper()} {c[name]}, the model predicts {getattr(p, name)}"
            if replicated:
                assert c["lane_busy_cycles"] == job.entries, \
                    f"{what}: LANE_BUSY_CYCLES {c['lane_busy_cycles']} != entries {job.entries}"
                assert c["conflict_stall_cycles"] == 0, \
                    f"{what}: CONFLICT_STALL_CYCLES {c['conflict_stall_cycles']} (replicated)"
            assert c["load_cycles"] >= x_beats, \
                f"{what}: LOAD_CYCLES {c['load_cycles']} < {x_beats} beats of X"
            floor = max(p.job_cycles, 2 + c["load_cycles"] + entry_beats)
            assert c["job_cycles"] >= floor, \
                f"{what}: JOB_CYCLES {c['job_cycles']} below {floor} (stall-free prediction " \
                f"{p.job_cycles}, setup + LOAD_CYCLES + entry beats)"
            if observed is not None and stalled_in and observed[i].in_idle_cycles:
                assert (c["load_cycles"] + c["in_stall_cycles"]
                        > p.load_cycles + p.in_stall_cycles), (
                    f"{what}: the monitor saw {observed[i].in_idle_cycles} idle input cycles "
                    f"but LOAD_CYCLES + IN_STALL_CYCLES = {c['load_cycles']} + "
                    f"{c['in_stall_cycles']}, as without stalls")
            if not (stalled_in or stalled_out):
                want = p.to_dict()
                assert c == want, f"{what}: counters {c} differ from the cycle model's {want}"
                if golden is not None:
                    assert c == golden[i], \
                        f"{what}: counters {c} differ from the reference run's {golden[i]}"
        return out
