"""Host side of accelgen: driver, tiling, quantization, models, baselines, reports, CLI."""

from .driver import Accelerator, reference_matmul, validate_operands
from .plan import MatmulPlan, Requant
from .report import GemmReport
from .nm import prune_nm
from .sparse import SparsePlan, SparseReport, reference_spmm

__all__ = ["prune_nm", "Accelerator", "MatmulPlan", "Requant", "GemmReport", "reference_matmul",
           "validate_operands", "SparsePlan", "SparseReport", "reference_spmm"]
