"""Packing operands into the input frame and results out of the output frame.

Implements the stream formats of :func:`accelgen.hdl.generate.stream_formats`
(documented in every manifest) with numpy, bit-exactly, for every dataflow,
operand type and stream width.
"""

import numpy as np

from accelgen.hdl.config import GemmConfig

__all__ = ["ceil_div", "operand_words", "compress_nm", "nm_groups", "job_words", "pack_segment", "pack_input_frame", "input_beats",
           "output_rows", "output_frame_bytes", "unpack_output"]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def operand_words(cfg: GemmConfig, A: np.ndarray, B: np.ndarray):
    """Reorder (and zero-pad) A and B into scratchpad words.

    Returns ``(a_words, b_words)``, arrays of shape ``(n_words, R)`` and
    ``(n_words, C)`` in stream order.
    """
    R, C = cfg.rows, cfg.cols
    M, K = A.shape
    N = B.shape[1]
    nj = ceil_div(N, C)
    if cfg.sparsity != "dense":
        return _nm_words(cfg, A, B)
    if cfg.dataflow == "os":
        ni = ceil_div(M, R)
        Ap = np.zeros((ni * R, K), dtype=np.int64)
        Ap[:M] = A
        Bp = np.zeros((K, nj * C), dtype=np.int64)
        Bp[:, :N] = B
        a_words = Ap.reshape(ni, R, K).transpose(0, 2, 1).reshape(ni * K, R)
        b_words = Bp.reshape(K, nj, C).transpose(1, 0, 2).reshape(nj * K, C)
    else:
        nk = ceil_div(K, R)
        Ap = np.zeros((M, nk * R), dtype=np.int64)
        Ap[:, :K] = A
        Bp = np.zeros((nk * R, nj * C), dtype=np.int64)
        Bp[:K, :N] = B
        a_words = Ap.reshape(M, nk, R).transpose(1, 0, 2).reshape(nk * M, R)
        b_words = Bp.reshape(nk, R, nj, C).transpose(2, 0, 1, 3).reshape(nj * nk * R, C)
    return a_words, b_words


def nm_groups(cfg: GemmConfig, k: int) -> int:
    """Groups of M' consecutive k (N:M sparsity); K itself when dense."""
    n_sp, m_sp = cfg.nm
    return ceil_div(k, m_sp)


def compress_nm(B: np.ndarray, n: int, m: int):
    """Per group of ``m`` rows of B and per column: the first ``n`` nonzero positions
    (ascending, padded with zero-valued positions) and their values.

    Returns ``(vals, idx)``, both ``(G, n, B.shape[1])``.
    """
    K, N = B.shape
    G = ceil_div(K, m)
    Bp = np.zeros((G * m, N), dtype=np.int64)
    Bp[:K] = B
    Bg = Bp.reshape(G, m, N)
    order = np.argsort(Bg == 0, axis=1, kind="stable")      # nonzeros first, in order
    idx = order[:, :n, :]
    vals = np.take_along_axis(Bg, idx, axis=1)
    return vals, idx


def _nm_words(cfg: GemmConfig, A: np.ndarray, B: np.ndarray):
    R, C = cfg.rows, cfg.cols
    n_sp, m_sp = cfg.nm
    M, K = A.shape
    N = B.shape[1]
    ni, nj = ceil_div(M, R), ceil_div(N, C)
    G = ceil_div(K, m_sp)
    Ap = np.zeros((ni * R, G * m_sp), dtype=np.int64)
    Ap[:M, :K] = A
    a_words = Ap.reshape(ni, R, G, m_sp).transpose(0, 2, 1, 3).reshape(ni * G, R * m_sp)
    Bp = np.zeros((K, nj * C), dtype=np.int64)
    Bp[:, :N] = B
    vals, idx = compress_nm(Bp, n_sp, m_sp)                 # (G, n, nj*C)
    elem = (vals & ((1 << cfg.b.bits) - 1)) | (idx << cfg.b.bits)
    b_words = elem.reshape(G * n_sp, nj, C).transpose(1, 0, 2).reshape(nj * G * n_sp, C)
    return a_words, b_words


def _to_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement little-endian bits of each element: shape (..., bits)."""
    u = (values.astype(np.int64) & ((1 << bits) - 1)).astype(np.uint64)
    shifts = np.arange(bits, dtype=np.uint64)
    return ((u[..., None] >> shifts) & np.uint64(1)).astype(np.uint8)


def pack_segment(words: np.ndarray, elem_bits: int, stream_bits: int) -> bytes:
    """Pack words (rows of elements) into whole beats by the manifest's rule."""
    n, elems = words.shape
    W = elems * elem_bits
    S = stream_bits
    if W % 8 == 0 and elem_bits % 8 == 0 and (W <= S and S % W == 0 or W > S and W % S == 0):
        # byte-aligned fast path
        dt = {8: "<i1", 16: "<i2"}[elem_bits]
        raw = words.astype(dt).tobytes()
        if W <= S:
            per = S // W
            pad = (-n) % per
            return raw + bytes(pad * W // 8)
        return raw
    bits = _to_bits(words, elem_bits).reshape(n, W)
    if W <= S:
        per = S // W
        nb = ceil_div(n, per)
        out = np.zeros((nb * per, W), dtype=np.uint8)
        out[:n] = bits
        out = out.reshape(nb, per * W)
        beats = np.zeros((nb, S), dtype=np.uint8)
        beats[:, :per * W] = out
    else:
        q = ceil_div(W, S)
        beats = np.zeros((n, q * S), dtype=np.uint8)
        beats[:, :W] = bits
    return np.packbits(beats.reshape(-1), bitorder="little").tobytes()


def block_rows(cfg: GemmConfig) -> int:
    """OS fold order: blocks of this many tile rows (see hdl/gemm.py BLOCK_ROWS)."""
    from accelgen.hdl.gemm import BLOCK_ROWS
    return BLOCK_ROWS[cfg.sparsity != "dense"]


def os_fold_order(cfg: GemmConfig, ni: int, nj: int):
    """(i, j) of the OS folds in the order the hardware runs them."""
    P = block_rows(cfg)
    for ib in range(0, ni, P):
        for j in range(nj):
            for i in range(ib, min(ib + P, ni)):
                yield i, j


def first_a_words(cfg: GemmConfig, m: int, k: int, n_a: int) -> int:
    """Words of the first A segment: OS sends A's first block of tiles (K words, or
    their groups with N:M sparsity, per tile) before B."""
    if cfg.dataflow != "os":
        return n_a
    return min(block_rows(cfg), ceil_div(m, cfg.rows)) * nm_groups(cfg, k)


def pack_input_frame(cfg: GemmConfig, A: np.ndarray, B: np.ndarray) -> bytes:
    """The whole input frame of one job: A's first segment, B, the rest of A."""
    a_words, b_words = operand_words(cfg, A, B)
    n1 = first_a_words(cfg, A.shape[0], A.shape[1], len(a_words))
    sb = cfg.stream_bits
    frame = (pack_segment(a_words[:n1], cfg.a.bits, sb)
             + pack_segment(b_words, cfg.b_element_bits, sb))
    if n1 < len(a_words):
        frame += pack_segment(a_words[n1:], cfg.a.bits, sb)
    return frame


def input_beats(cfg: GemmConfig, m: int, k: int, n: int) -> int:
    from accelgen.hdl.gearbox import beats_for
    R, C = cfg.rows, cfg.cols
    na, nb = job_words(cfg, m, k, n)
    n1 = first_a_words(cfg, m, k, na)
    return (beats_for(n1, cfg.a_word_bits, cfg.stream_bits)
            + beats_for(nb, cfg.b_word_bits, cfg.stream_bits)
            + (beats_for(na - n1, cfg.a_word_bits, cfg.stream_bits) if na > n1 else 0))


def job_words(cfg: GemmConfig, m: int, k: int, n: int):
    """(A words, B words) of one job in the scratchpads."""
    R, C = cfg.rows, cfg.cols
    if cfg.dataflow == "os":
        n_sp, _ = cfg.nm
        g = nm_groups(cfg, k)
        return ceil_div(m, R) * g, ceil_div(n, C) * g * n_sp
    return ceil_div(k, R) * m, ceil_div(k, R) * ceil_div(n, C) * R


def output_rows(cfg: GemmConfig, m: int, n: int) -> int:
    return m * ceil_div(n, cfg.cols)


def _row_geometry(cfg: GemmConfig, requant: bool):
    lane_bits = 8 if requant else cfg.acc_bits
    row_bits = cfg.cols * lane_bits
    return lane_bits, row_bits


def output_frame_bytes(cfg: GemmConfig, m: int, n: int, requant: bool) -> int:
    from accelgen.hdl.gearbox import beats_for
    _, row_bits = _row_geometry(cfg, requant)
    return beats_for(output_rows(cfg, m, n), row_bits, cfg.stream_bits) * cfg.stream_bits // 8


def _lanes(raw: np.ndarray, lane_bits: int) -> np.ndarray:
    """Rows of bytes -> signed integer lanes (little-endian, two's complement)."""
    nbytes = lane_bits // 8
    rows = raw.shape[0]
    b = raw.reshape(rows, -1, nbytes).astype(np.int64)
    val = np.zeros(b.shape[:2], dtype=np.int64)
    for i in range(nbytes):
        if i == nbytes - 1 and nbytes == 8:
            val |= b[..., i].astype(np.uint64).astype(np.int64) << 56
        else:
            val |= b[..., i] << (8 * i)
    if nbytes < 8:
        sign = 1 << (lane_bits - 1)
        val = (val ^ sign) - sign
    return val


def unpack_output(cfg: GemmConfig, frame: bytes, m: int, n: int, requant: bool) -> np.ndarray:
    """Result frame of one job -> C (``m x n``, int64; int8 values when requantized)."""
    R, C = cfg.rows, cfg.cols
    S = cfg.stream_bits
    lane_bits, row_bits = _row_geometry(cfg, requant)
    nrows = output_rows(cfg, m, n)
    buf = np.frombuffer(frame, dtype=np.uint8)
    row_bytes = row_bits // 8
    if row_bits <= S:
        per = S // row_bits
        beats = buf.reshape(-1, S // 8)
        rows = beats[:, :per * row_bytes].reshape(-1, row_bytes)[:nrows]
    else:
        q = ceil_div(row_bits, S)
        rows = buf.reshape(-1, q * S // 8)[:, :row_bytes]
    vals = _lanes(rows, lane_bits)            # (nrows, C)
    nj = ceil_div(n, C)
    out = np.zeros((m, nj * C), dtype=np.int64)
    if cfg.dataflow == "os":
        ni = ceil_div(m, R)
        # rows come per fold (i, j), in the hardware's fold order, with only the rows
        # i*R + r < m
        idx = 0
        for i, j in os_fold_order(cfg, ni, nj):
            rv = min(R, m - i * R)
            out[i * R:i * R + rv, j * C:(j + 1) * C] = vals[idx:idx + rv]
            idx += rv
    else:
        out[:] = vals.reshape(nj, m, C).transpose(1, 0, 2).reshape(m, nj * C)
    return out[:, :n]
