"""Roofline of a GEMM configuration, in cycles (so it holds at any clock).

The compute roof is the array's peak, ``R x C`` MACs per cycle. The memory roof is
the input stream: ``stream_bits / 8`` bytes per cycle of operands (results leave on
a separate stream of the same width, which bounds only the rare output-heavy job).
A workload sits at operational intensity I = MACs / input-stream bytes, where the
bytes are what the driver's plan actually streams (beats padded, operands re-sent
to several jobs by the tiling), and attains at most ``min(peak, I x bandwidth)``
MACs per cycle. ``compulsory_intensity`` counts each operand byte once (M*K + K*N
elements), the intensity of a perfect on-chip memory; the gap to it is what the
scratchpad sizes cost.
"""

from accelgen.hdl.config import GemmConfig

__all__ = ["roof", "point", "attainable"]


def roof(cfg: GemmConfig) -> dict:
    """Peak MACs/cycle, stream bytes/cycle and the ridge point of ``cfg``."""
    n_sp, m_sp = cfg.nm
    peak = cfg.rows * cfg.cols
    bw = cfg.stream_bits / 8
    return {"peak_macs_per_cycle": peak, "input_bytes_per_cycle": bw,
            "output_bytes_per_cycle": bw, "ridge_macs_per_byte": peak / bw,
            # with N:M sparsity a kept-MAC slot stands for m/n dense MACs
            "dense_equivalent_peak": peak * m_sp / n_sp}


def attainable(cfg: GemmConfig, intensity: float) -> float:
    r = roof(cfg)
    return min(r["peak_macs_per_cycle"], intensity * r["input_bytes_per_cycle"])


def point(cfg: GemmConfig, *, m: int, k: int, n: int, macs: int, job_cycles: int,
          input_bytes: int) -> dict:
    """Where one call sits: intensity, the roof above it and what it achieved."""
    intensity = macs / input_bytes
    elem = (m * k * cfg.a.bits + k * n * cfg.b.bits) / 8
    achieved = macs / job_cycles
    bound = attainable(cfg, intensity)
    return {"intensity_macs_per_byte": intensity,
            "compulsory_intensity_macs_per_byte": m * k * n / elem,
            "attainable_macs_per_cycle": bound, "achieved_macs_per_cycle": achieved,
            "fraction_of_roof": achieved / bound,
            "bound_by": "compute" if bound >= roof(cfg)["peak_macs_per_cycle"] else "stream"}
