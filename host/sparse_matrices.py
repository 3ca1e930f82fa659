"""Sparse test and benchmark matrices, generated with numpy alone (no networkx).

Every generator takes a seed and returns a ``scipy.sparse.csr_matrix`` of int64
values drawn uniformly from a type's nonzero range, so that ``nnz`` is exactly the
number of stored entries. The families are the ones sparse accelerators are judged
on: uniform random, banded, the 2-D Poisson stencil, power-law graphs
(Barabasi-Albert preferential attachment), block-diagonal, and rows of a few
nonzeros each.
"""

import numpy as np
import scipy.sparse as sp

__all__ = ["nonzero_values", "uniform", "banded", "poisson2d", "barabasi_albert",
           "block_diagonal", "short_rows", "from_pattern"]


def nonzero_values(rng, n: int, lo: int = -128, hi: int = 127) -> np.ndarray:
    """``n`` integers uniform in ``[lo, hi]`` without zero."""
    v = rng.integers(lo, hi, n, endpoint=True)
    zero = v == 0
    while zero.any():
        v[zero] = rng.integers(lo, hi, int(zero.sum()), endpoint=True)
        zero = v == 0
    return v


def from_pattern(rows, cols, shape, rng, lo=-128, hi=127):
    """CSR matrix with one random nonzero at each (unique) position."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    key = np.unique(rows * shape[1] + cols)
    r, c = key // shape[1], key % shape[1]
    return sp.csr_matrix((nonzero_values(rng, len(key), lo, hi), (r, c)), shape=shape,
                         dtype=np.int64)


def uniform(m: int, n: int, density: float, seed: int = 0, lo=-128, hi=127):
    """Each position nonzero with probability ``density`` (exactly round(density*m*n))."""
    rng = np.random.default_rng(seed)
    k = int(round(density * m * n))
    key = rng.choice(m * n, size=k, replace=False) if k < m * n else np.arange(m * n)
    return from_pattern(key // n, key % n, (m, n), rng, lo, hi)


def banded(n: int, half_bandwidth: int, seed: int = 0, lo=-128, hi=127):
    """Every position with ``|i - j| <= half_bandwidth`` nonzero."""
    rng = np.random.default_rng(seed)
    offs = np.arange(-half_bandwidth, half_bandwidth + 1)
    rows = np.repeat(np.arange(n), len(offs))
    cols = rows + np.tile(offs, n)
    keep = (cols >= 0) & (cols < n)
    return from_pattern(rows[keep], cols[keep], (n, n), rng, lo, hi)


def poisson2d(k: int, seed: int = 0, lo=-128, hi=127):
    """The 5-point Laplacian pattern of a ``k x k`` grid (``k*k`` rows, <= 5 per row)."""
    rng = np.random.default_rng(seed)
    n = k * k
    i = np.arange(n)
    r, c = i // k, i % k
    rows, cols = [i], [i]
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ok = (r + dr >= 0) & (r + dr < k) & (c + dc >= 0) & (c + dc < k)
        rows.append(i[ok])
        cols.append(((r + dr) * k + c + dc)[ok])
    return from_pattern(np.concatenate(rows), np.concatenate(cols), (n, n), rng, lo, hi)


def barabasi_albert(n: int, m: int, seed: int = 0, lo=-128, hi=127):
    """Adjacency matrix (symmetric pattern) of a Barabasi-Albert graph.

    Starts from a star on ``m + 1`` nodes; each later node attaches to ``m``
    distinct earlier nodes chosen with probability proportional to their degree
    (the classic repeated-endpoints list). Degrees follow a power law: most rows
    hold about ``m`` to ``2m`` entries, a few hubs hold hundreds.
    """
    if not 1 <= m < n:
        raise ValueError(f"Barabasi-Albert m must be in 1..n-1, not {m!r}")
    rng = np.random.default_rng(seed)
    src, dst = [], []
    ends = np.empty(2 * m * n + 2 * m, dtype=np.int64)
    ne = 0
    for v in range(1, m + 1):            # star on nodes 0..m
        src.append(v); dst.append(0)
        ends[ne:ne + 2] = (v, 0); ne += 2
    for v in range(m + 1, n):
        chosen = set()
        while len(chosen) < m:
            picks = ends[rng.integers(0, ne, m - len(chosen))]
            chosen.update(int(p) for p in picks)
        for u in chosen:
            src.append(v); dst.append(u)
        t = np.fromiter(chosen, dtype=np.int64, count=len(chosen))
        ends[ne:ne + m] = v
        ends[ne + m:ne + 2 * m] = t
        ne += 2 * m
    src, dst = np.array(src), np.array(dst)
    return from_pattern(np.concatenate([src, dst]), np.concatenate([dst, src]), (n, n), rng,
                        lo, hi)


def block_diagonal(n: int, block: int, density: float = 1.0, seed: int = 0, lo=-128, hi=127):
    """Diagonal blocks of ``block x block`` (the last one smaller), each with ``density``."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for b0 in range(0, n, block):
        b = min(block, n - b0)
        mask = rng.random((b, b)) < density
        r, c = np.nonzero(mask)
        rows.append(r + b0)
        cols.append(c + b0)
    return from_pattern(np.concatenate(rows), np.concatenate(cols), (n, n), rng, lo, hi)


def short_rows(m: int, n: int, lo_nnz: int = 1, hi_nnz: int = 8, seed: int = 0, lo=-128,
               hi=127):
    """Each row holds a uniform ``lo_nnz..hi_nnz`` nonzeros at random columns."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(lo_nnz, hi_nnz, m, endpoint=True)
    rows = np.repeat(np.arange(m), counts)
    cols = np.concatenate([rng.choice(n, size=c, replace=False) for c in counts])
    return from_pattern(rows, cols, (m, n), rng, lo, hi)
