"""Integer operand types supported by the generated hardware.

One table, used by the configs (validation), the RTL (widths and signedness),
the driver (range checks and packing) and the manifest.
"""

from dataclasses import dataclass

__all__ = ["DType", "DTYPES", "dtype"]


@dataclass(frozen=True)
class DType:
    """An integer operand type.

    Members
    -------
    name : str
        Canonical name, e.g. ``"int8"``.
    bits : int
        Width in bits.
    signed : bool
        Two's complement when true.
    """

    name: str
    bits: int
    signed: bool

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def code(self) -> int:
        """Stable 4-bit code used in the config-readback CSR."""
        return list(DTYPES).index(self.name)


DTYPES = {d.name: d for d in (
    DType("int4", 4, True),
    DType("uint4", 4, False),
    DType("int8", 8, True),
    DType("uint8", 8, False),
    DType("int16", 16, True),
    DType("uint16", 16, False),
)}


def dtype(name: str) -> DType:
    """Look up an operand type by name; raises ``ValueError`` naming the choices."""
    try:
        return DTYPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"Operand type must be one of {', '.join(DTYPES)}, not {name!r}") from None
