"""N:M structured sparsity on the host: pruning and pattern checks.

B is sparse along K (axis 0): in every group of ``m`` consecutive rows, each column
keeps at most ``n`` nonzeros. A K that is not a multiple of ``m`` ends in a short
group, treated as if padded with zeros.
"""

import numpy as np

__all__ = ["prune_nm", "check_nm", "nm_violations"]


def _check_nm_args(n, m):
    for name, v in (("n", n), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"N:M {name} must be an integer, not {v!r}")
    if not 1 <= n < m:
        raise ValueError(f"N:M needs 1 <= n < m, not n={n}, m={m}")


def _groups(B: np.ndarray, m: int) -> np.ndarray:
    K, N = B.shape
    G = -(-K // m)
    Bp = np.zeros((G * m, N), dtype=B.dtype)
    Bp[:K] = B
    return Bp.reshape(G, m, N)


def prune_nm(B, n: int, m: int) -> np.ndarray:
    """Prune B to N:M along K (axis 0) by magnitude.

    In every group of ``m`` consecutive rows, each column keeps its ``n`` entries of
    largest absolute value (ties to the earlier row) and the rest become zero.

    Parameters
    ----------
    B : numpy.ndarray
        2-D array (K x N), any numeric dtype; the result has the same dtype.
    n, m : int

    Returns
    -------
    numpy.ndarray
    """
    if not isinstance(B, np.ndarray):
        raise TypeError(f"B must be a numpy array, not {type(B).__name__}")
    if B.ndim != 2:
        raise ValueError(f"B must be 2-D, not {B.ndim}-D with shape {B.shape}")
    _check_nm_args(n, m)
    K = B.shape[0]
    g = _groups(B, m)                                           # (G, m, N)
    mag = np.abs(g.astype(np.float64))
    # rank by magnitude, descending; stable so equal magnitudes keep the earlier row
    order = np.argsort(-mag, axis=1, kind="stable")
    keep = np.zeros_like(mag, dtype=bool)
    np.put_along_axis(keep, order[:, :n, :], True, axis=1)
    out = np.where(keep, g, 0).reshape(-1, B.shape[1])[:K]
    return out.astype(B.dtype, copy=False)


def nm_violations(B: np.ndarray, n: int, m: int):
    """(group, column, count) of every group holding more than ``n`` nonzeros."""
    counts = (_groups(B, m) != 0).sum(axis=1)                  # (G, N)
    bad = np.argwhere(counts > n)
    return [(int(g), int(c), int(counts[g, c])) for g, c in bad]


def check_nm(B: np.ndarray, n: int, m: int, name: str = "B") -> None:
    """Raise ``ValueError`` naming the first group that breaks the N:M pattern."""
    bad = nm_violations(B, n, m)
    if bad:
        g, c, cnt = bad[0]
        more = f" (and {len(bad) - 1} more groups)" if len(bad) > 1 else ""
        raise ValueError(
            f"{name} breaks the {n}:{m} sparsity pattern: column {c}, rows {g * m}..{g * m + m - 1}"
            f" hold {cnt} nonzeros, at most {n} allowed{more}; prune it first with "
            f"accelgen.host.prune_nm({name}, {n}, {m})")
