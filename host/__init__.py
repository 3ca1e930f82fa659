"""Host side of accelgen: driver, tiling, quantization, models, baselines, reports, CLI."""

__all__ = []
