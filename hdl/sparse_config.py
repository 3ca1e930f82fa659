"""Configuration of the sparse MAC accelerator (CSR SpMV / SpMM engine).

One frozen, validated object drives the sparse RTL, its manifest, the host's
packing and tiling, the cycle model and the tests, exactly as
:class:`~.config.GemmConfig` does for the dense array.
"""

from dataclasses import dataclass
from typing import ClassVar

from .config import ConfigBase, _check_int, _check_choice
from .dtypes import DType, dtype, DTYPES

__all__ = ["SparseConfig"]


@dataclass(frozen=True)
class SparseConfig(ConfigBase):
    """Sparse MAC accelerator configuration: ``Y = A . X`` with A in CSR, X dense.

    Work is spread by nonzeros: A streams in as CSR *entries* (value, column index,
    last-in-row flag), ``lanes`` entries per input beat, one per lane, whatever the
    row lengths. The defaults give 8 lanes, int8 x int8 -> int32, SpMV (one dense
    column), a 4096-row dense buffer replicated per lane, and 256-bit streams.

    Parameters
    ----------
    lanes : int
        Multiply lanes L, 1..32: entries consumed per cycle.
    a_dtype, x_dtype : str
        Types of A's values and of the dense operand X: int4, uint4, int8, uint8,
        int16, uint16.
    acc_bits : int
        Accumulator width, a multiple of 8 in 16..64 and at least the product width.
        Row sums wrap modulo ``2**acc_bits`` (two's complement) like a C integer.
    col_bits : int
        Width of an entry's column index, 1..16; ``max_cols`` must fit in it.
    max_rows : int
        Rows of A per job, 1..2**31-1. Rows stream out as they complete and need no
        storage: this only sizes counters.
    max_cols : int
        Columns of A per job = rows of X held in the dense buffer, 1..65536.
    max_nnz : int
        Entries per job (nonzeros plus one placeholder per empty row), 1..2**31-1.
        Sizes counters only; A is streamed, never stored.
    dense_cols : int
        Columns P of X processed per job, 1, 2, 4 or 8 (1: SpMV). Each entry does P
        MACs; an output row holds P accumulators.
    x_buffer : str
        Dense-buffer organisation. ``"replicated"``: one copy of X per lane, no
        conflicts (L x the memory). ``"banked"``: one copy in ``x_banks`` banks
        interleaved by column; lanes that hit the same bank at different rows of X
        in one beat wait (bank-conflict stalls), lanes reading the same row share
        the read.
    x_banks : int
        Banks of the ``"banked"`` buffer, a power of two from 1 to the X rows per
        input beat; ignored (must be 1) when replicated.
    stream_bits : int
        TDATA width of both AXI4-Stream ports, a power of two in 32..1024. It must
        hold L entries (one slot of ``stream_bits // lanes`` bits each), one row of
        X and one output row.

    Raises
    ------
    TypeError, ValueError
        On a field of the wrong type or value; the message names field, rule and value.
    """

    KIND: ClassVar[str] = "sparse"

    lanes: int = 8
    a_dtype: str = "int8"
    x_dtype: str = "int8"
    acc_bits: int = 32
    col_bits: int = 12
    max_rows: int = 65535
    max_cols: int = 4096
    max_nnz: int = 1 << 20
    dense_cols: int = 1
    x_buffer: str = "replicated"
    x_banks: int = 1
    stream_bits: int = 256

    X_BUFFERS: ClassVar[tuple] = ("replicated", "banked")
    DENSE_COLS: ClassVar[tuple] = (1, 2, 4, 8)
    #: Flag bits of an entry after its value and column index: last-in-row, empty row.
    FLAG_BITS: ClassVar[int] = 2

    def __post_init__(self):
        o = type(self).__name__
        _check_int(o, "lanes", self.lanes, 1, 32)
        _check_choice(o, "a_dtype", self.a_dtype, tuple(DTYPES))
        _check_choice(o, "x_dtype", self.x_dtype, tuple(DTYPES))
        _check_int(o, "acc_bits", self.acc_bits, 16, 64)
        if self.acc_bits % 8:
            raise ValueError(f"{o}.acc_bits must be a multiple of 8, not {self.acc_bits!r}")
        prod = self.a.bits + self.x.bits
        if self.acc_bits < prod:
            raise ValueError(f"{o}.acc_bits must be at least the product width "
                             f"{prod} ({self.a_dtype} x {self.x_dtype}), not {self.acc_bits!r}")
        _check_int(o, "col_bits", self.col_bits, 1, 16)
        _check_int(o, "max_rows", self.max_rows, 1, (1 << 31) - 1)
        _check_int(o, "max_cols", self.max_cols, 1, 1 << 16)
        if self.max_cols > 1 << self.col_bits:
            raise ValueError(f"{o}.max_cols must be at most 2**col_bits = {1 << self.col_bits} "
                             f"(column indices are {self.col_bits} bits), not {self.max_cols!r}")
        _check_int(o, "max_nnz", self.max_nnz, 1, (1 << 31) - 1)
        if isinstance(self.dense_cols, bool) or not isinstance(self.dense_cols, int):
            raise TypeError(f"{o}.dense_cols must be an integer, not {self.dense_cols!r}")
        if self.dense_cols not in self.DENSE_COLS:
            raise ValueError(f"{o}.dense_cols must be one of 1, 2, 4, 8, not {self.dense_cols!r}")
        _check_choice(o, "x_buffer", self.x_buffer, self.X_BUFFERS)
        _check_int(o, "stream_bits", self.stream_bits, 32, 1024)
        if self.stream_bits & (self.stream_bits - 1):
            raise ValueError(f"{o}.stream_bits must be a power of two in 32..1024, "
                             f"not {self.stream_bits!r}")
        if self.entry_bits > self.slot_bits:
            raise ValueError(
                f"{o}.stream_bits must hold {self.lanes} entries of {self.entry_bits} bits "
                f"({self.a_dtype} value, {self.col_bits}-bit column, {self.FLAG_BITS} flags) "
                f"in slots of stream_bits // lanes bits, i.e. be at least "
                f"{_pow2_at_least(self.entry_bits * self.lanes)}, not {self.stream_bits!r}")
        if self.x_word_bits > self.stream_bits:
            raise ValueError(f"{o}.stream_bits must hold one row of X ({self.dense_cols} x "
                             f"{self.x_dtype} = {self.x_word_bits} bits), not {self.stream_bits!r}")
        if self.row_bits > self.stream_bits:
            raise ValueError(f"{o}.stream_bits must hold one output row ({self.dense_cols} x "
                             f"{self.acc_bits} = {self.row_bits} bits), not {self.stream_bits!r}")
        _check_int(o, "x_banks", self.x_banks, 1, 1024)
        if self.x_buffer == "replicated":
            if self.x_banks != 1:
                raise ValueError(f"{o}.x_banks must be 1 with x_buffer='replicated' (each lane "
                                 f"has its own copy), not {self.x_banks!r}")
        else:
            if self.x_banks & (self.x_banks - 1) or self.x_banks > self.x_rows_per_beat:
                raise ValueError(f"{o}.x_banks must be a power of two at most the X rows per "
                                 f"input beat ({self.x_rows_per_beat}), not {self.x_banks!r}")

    # -- derived quantities ------------------------------------------------------------

    @property
    def a(self) -> DType:
        return dtype(self.a_dtype)

    @property
    def x(self) -> DType:
        return dtype(self.x_dtype)

    @property
    def entry_bits(self) -> int:
        """Bits of one CSR entry: value, column index, last-in-row, empty-row."""
        return self.a.bits + self.col_bits + self.FLAG_BITS

    @property
    def slot_bits(self) -> int:
        """Stride of the entry slots in an input beat (``stream_bits // lanes``)."""
        return self.stream_bits // self.lanes

    @property
    def x_word_bits(self) -> int:
        """One row of X: ``dense_cols`` elements."""
        return self.dense_cols * self.x.bits

    @property
    def x_rows_per_beat(self) -> int:
        """Rows of X per input beat (a power of two): also the dense-buffer word."""
        return self.stream_bits // self.x_word_bits

    @property
    def x_depth(self) -> int:
        """Words of the dense buffer (each ``x_rows_per_beat`` rows of X)."""
        return -(-self.max_cols // self.x_rows_per_beat)

    @property
    def x_copies(self) -> int:
        return self.lanes if self.x_buffer == "replicated" else 1

    @property
    def x_buffer_bits(self) -> int:
        """Memory bits of the dense buffer, all copies."""
        return self.x_copies * self.x_depth * self.x_rows_per_beat * self.x_word_bits

    @property
    def row_bits(self) -> int:
        """One output row: ``dense_cols`` accumulators."""
        return self.dense_cols * self.acc_bits

    @property
    def rows_per_beat(self) -> int:
        """Output rows per result beat."""
        return self.stream_bits // self.row_bits

    @property
    def top_name(self) -> str:
        """Verilog module name of the generated top; unique per config."""
        return f"accelgen_sparse_{self.config_hash[:8]}"

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.lanes * self.dense_cols

    def describe(self) -> str:
        buf = ("replicated" if self.x_buffer == "replicated"
               else f"{self.x_banks}-bank")
        return (f"sparse L={self.lanes} P={self.dense_cols} "
                f"{self.a_dtype}x{self.x_dtype}->int{self.acc_bits}, "
                f"{self.max_cols}-row {buf} dense buffer, {self.stream_bits}-bit streams")


def _pow2_at_least(n: int) -> int:
    p = 32
    while p < n:
        p *= 2
    return p
