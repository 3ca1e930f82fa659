"""Host side of accelgen: driver, tiling, quantization, models, baselines, reports, CLI."""

from .driver import Accelerator, reference_matmul, validate_operands
from .plan import MatmulPlan, Requant
from .report import GemmReport

__all__ = ["Accelerator", "MatmulPlan", "Requant", "GemmReport", "reference_matmul",
           "validate_operands"]
