"""Workloads of the sparse accelerator's cocotb testbench (:mod:`.tb_sparse`).

A :class:`SparseScenario` is a short sequence of driver calls (``y = A @ x`` or
``Y = A @ X``) with operands drawn from fixed seeds, so that the testbench and
its pytest runner build bit-identical programs from nothing but the scenario's
name and the config. The programs always come from the driver
(:func:`~accelgen.host.sparse.plan_spmv`, :func:`~accelgen.host.sparse.plan_spmm`);
the testbench replays ``plan.ops`` and never writes a register address or packs a
stream of its own. The expected results come from scipy.sparse (checked against
numpy's dense product), wrapped to the accumulator width as the hardware
documents, never from the driver's own reference.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from accelgen.hdl.sparse_config import SparseConfig
from accelgen.host import sparse_matrices as smx
from accelgen.host.sparse import SparsePlan, plan_spmm, plan_spmv

__all__ = ["SparseCall", "SparseScenario", "sparse_scenarios", "scipy_product",
           "SPARSE_DATA_SCENARIOS"]

#: Scenarios every data test of the testbench is crossed with stall patterns on.
SPARSE_DATA_SCENARIOS = ("families", "edges", "spmm")

# Planning runs the cycle model on every job; cache the plans per scenario object.
_PLANS: dict = {}


def scipy_product(cfg: SparseConfig, A, X: np.ndarray) -> np.ndarray:
    """``A @ X`` by scipy.sparse, equal to numpy's dense product, wrapped modulo
    ``2**acc_bits`` to two's complement (the hardware's documented row sums)."""
    Y = np.asarray(sp.csr_matrix(A, dtype=np.int64) @ X.astype(np.int64), dtype=np.int64)
    dense = sp.csr_matrix(A).toarray().astype(np.int64) @ X.astype(np.int64)
    if not np.array_equal(Y, dense):
        raise AssertionError("scipy.sparse and numpy disagree on A @ X")
    half = 1 << (cfg.acc_bits - 1)
    return (Y + half) % (2 * half) - half


@dataclass(frozen=True)
class SparseCall:
    """One driver call: ``spmv`` when ``X`` is 1-D, else ``spmm``.

    Members
    -------
    name : str
        What the call covers (shown in failure messages).
    A : scipy.sparse.csr_matrix
        Integer values within the config's A type.
    X : numpy.ndarray
        1-D (SpMV) or 2-D, within the config's X type.
    """

    name: str
    A: object = field(repr=False)
    X: np.ndarray = field(repr=False)

    @property
    def vector(self) -> bool:
        return self.X.ndim == 1

    def plan(self, cfg: SparseConfig) -> SparsePlan:
        return plan_spmv(cfg, self.A, self.X) if self.vector else plan_spmm(cfg, self.A, self.X)


@dataclass(frozen=True)
class SparseScenario:
    """A named sequence of calls and, per call, the result scipy expects.

    Members
    -------
    name : str
    calls : tuple of SparseCall
    expected : tuple of numpy.ndarray
    """

    name: str
    calls: tuple
    expected: tuple = field(repr=False)

    def plans(self, cfg: SparseConfig) -> list[SparsePlan]:
        """The driver's programs of the calls, in order (fresh copies: a test may edit
        ``plan.ops``)."""
        key = (cfg, self.name, id(self))
        if key not in _PLANS:
            # the scenario is kept alive with its plans, so its id() is not reused
            _PLANS[key] = (self, [c.plan(cfg) for c in self.calls])
        return [copy.copy(plan) for plan in _PLANS[key][1]]


def _scenario(cfg: SparseConfig, name: str, calls: list[SparseCall]) -> SparseScenario:
    expected = []
    for c in calls:
        Y = scipy_product(cfg, c.A, c.X.reshape(c.X.shape[0], -1))
        expected.append(Y[:, 0] if c.vector else Y)
    return SparseScenario(name, tuple(calls), tuple(expected))


def _dense(cfg: SparseConfig, rng, n: int, p: int | None) -> np.ndarray:
    X = rng.integers(cfg.x.min, cfg.x.max, (n, p or 1), endpoint=True)
    return X[:, 0] if p is None else X


def _a(cfg: SparseConfig, A):
    """Keep ``A``'s pattern, values from cfg's A type (the generators draw int8)."""
    A = sp.csr_matrix(A, dtype=np.int64)
    rng = np.random.default_rng(A.nnz)
    lo = cfg.a.min if cfg.a.min < 0 else 1
    A.data = smx.nonzero_values(rng, A.nnz, lo, cfg.a.max)
    return A


@functools.lru_cache(maxsize=4)
def sparse_scenarios(cfg: SparseConfig) -> dict[str, SparseScenario]:
    """Every scenario for ``cfg`` (shapes scale with its limits).

    ``families``
        SpMV on uniform random matrices at 50%, 5% and 0.5% density (the 50% one
        over ``max_nnz``: row blocks) and a banded one.
    ``edges``
        Empty rows (also the last one), one dense row spanning many beats, an
        all-zero matrix, 1 x N (over ``max_cols``: column blocks whose partial sums
        the host adds), N x 1 (over ``max_rows``: row blocks), and the extreme values
        of both operand types (products of both signs; they wrap the accumulator
        when it is narrow).
    ``spmm``
        SpMM with more columns of X than ``dense_cols`` (column groups, the last one
        zero-padded) and with exactly ``dense_cols`` columns.
    """
    rng = np.random.default_rng(0x5EA)
    C = min(cfg.max_cols, 60)                    # columns of one job
    R = min(cfg.max_rows, 40)
    P = cfg.dense_cols
    out = {}

    patterns = [("uniform 50%", smx.uniform(R // 2, C, 0.5, 1)),
                ("uniform 5%", smx.uniform(R, C, 0.05, 2)),
                ("uniform 0.5%", smx.uniform(R, C, 0.005, 3)),
                ("banded", smx.banded(R, 2, 4))]
    calls = [SparseCall(n, _a(cfg, A), _dense(cfg, rng, A.shape[1], None)) for n, A in patterns]
    out["families"] = _scenario(cfg, "families", calls)

    empty = smx.uniform(R, C, 0.2, 5).tolil()
    empty[::3] = 0
    empty[R - 1] = 0
    dense_row = smx.uniform(R, C, 0.02, 6).tolil()
    dense_row[R // 2] = smx.nonzero_values(rng, C)
    extreme = smx.uniform(R // 2, C, 0.3, 7)
    extreme.data = np.where(np.arange(extreme.nnz) % 2, cfg.a.max, cfg.a.min or cfg.a.max)
    patterns = [("empty rows", _a(cfg, empty.tocsr())),
                ("one dense row", _a(cfg, dense_row.tocsr())),
                ("all zero", sp.csr_matrix((R // 3, C // 2), dtype=np.int64)),
                ("1xN", _a(cfg, smx.uniform(1, 2 * cfg.max_cols + 5, 0.5, 8))),
                ("Nx1", _a(cfg, smx.uniform(cfg.max_rows + 7, 1, 0.6, 9)))]
    calls = [SparseCall(n, A, _dense(cfg, rng, A.shape[1], None)) for n, A in patterns]
    Xe = np.where(np.arange(C) % 3, cfg.x.min, cfg.x.max)
    calls.append(SparseCall("extremes", extreme, Xe))
    out["edges"] = _scenario(cfg, "edges", calls)

    calls = [SparseCall("spmm P+1 columns", _a(cfg, smx.uniform(R, C, 0.1, 10)),
                        _dense(cfg, rng, C, P + 1)),
             SparseCall("spmm P columns", _a(cfg, smx.banded(R // 2, 1, 11)),
                        _dense(cfg, rng, R // 2, P))]
    out["spmm"] = _scenario(cfg, "spmm", calls)

    # the scenarios must cover what their documentation says
    plans = {name: s.plans(cfg) for name, s in out.items()}
    assert len(plans["families"][0].jobs) > 1, "uniform 50% must need row blocks"
    assert len(plans["edges"][3].jobs) > 1, "1xN must need column blocks"
    assert len(plans["edges"][4].jobs) > 1, "Nx1 must need row blocks"
    assert len({(j.g0, j.g1) for j in plans["spmm"][0].jobs}) > 1, \
        "SpMM must need column groups"
    return out
