"""Amaranth hardware of accelgen: configs, PEs, systolic array, memories, controllers,
AXI ports and tops. Knows nothing of the simulators, the host or the boards."""

from .config import GemmConfig, config_from_dict, config_from_json
from .dtypes import DTYPES, DType
from .sparse_config import SparseConfig

__all__ = ["GemmConfig", "config_from_dict", "config_from_json", "DTYPES", "DType", "SparseConfig"]
