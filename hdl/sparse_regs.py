"""CSR map of the sparse MAC accelerator, as data (see :mod:`.regs` for the conventions).

The same table drives the RTL decoder (:class:`~.axil.AXI4LiteCSR`), the manifest,
the C header and the host's register names.
"""

from .regs import Field, Register, RegisterMap, ErrorCode, HW_VERSION
from .sparse_config import SparseConfig

__all__ = ["ID_SPARSE", "SPARSE_ERRORS", "SPARSE_COUNTERS", "sparse_register_map"]

ID_SPARSE = 0xACC6E002    # "ACcelGEn" + kind 2 (sparse MAC)

SPARSE_ERRORS = (
    ErrorCode(0, "NONE", "no error"),
    ErrorCode(1, "BAD_DIM", "ROWS, COLS or ENTRIES is zero, or ENTRIES < ROWS (every row, "
                            "even an empty one, takes at least one entry)"),
    ErrorCode(2, "OVER_LIMIT", "ROWS, COLS or ENTRIES exceeds MAX_ROWS, MAX_COLS or MAX_NNZ"),
    ErrorCode(3, "COL_RANGE", "an entry's column index is not below COLS"),
    ErrorCode(4, "ROW_MISMATCH", "the entries' last-in-row flags do not end exactly ROWS rows "
                                 "at the job's final entry"),
    ErrorCode(5, "SHORT_STREAM", "input frame ended (TLAST) before the job's last beat"),
    ErrorCode(6, "LONG_STREAM", "input frame continued past the job's last beat (no TLAST)"),
)

SPARSE_COUNTERS = (
    ("JOB_CYCLES", "cycles from the accepted start to the last result beat accepted "
                   "(all counters describe the last job and restart at START)"),
    ("LOAD_CYCLES", "cycles spent loading the dense operand X into the dense buffer "
                    "(including waits for its beats)"),
    ("NNZ", "nonzero entries processed (entries minus empty-row placeholders)"),
    ("LANE_BUSY_CYCLES", "lane-cycles holding an entry (nonzero or empty-row placeholder) in "
                         "the gather stage; replicated buffer: equals the entries"),
    ("IN_STALL_CYCLES", "cycles after X was loaded, before the last entry beat was gathered, "
                        "in which no entry beat was there to gather (input starved)"),
    ("CONFLICT_STALL_CYCLES", "cycles an entry beat waited in the gather stage for dense-buffer "
                              "bank conflicts (banked buffer only)"),
    ("OUT_STALL_CYCLES", "cycles the lanes were stopped because the result queue was full "
                         "(output backpressure or output bandwidth)"),
)


def sparse_register_map(cfg: SparseConfig) -> RegisterMap:
    """The CSR map of the sparse accelerator generated from ``cfg``."""
    if not isinstance(cfg, SparseConfig):
        raise TypeError(f"sparse_register_map() needs a SparseConfig, not {cfg!r}")
    cfg0 = (cfg.lanes | cfg.dense_cols << 8 | cfg.col_bits << 12
            | (cfg.x_buffer == "banked") << 17 | cfg.x_banks << 20)
    cfg1 = cfg.a.code | cfg.x.code << 4 | cfg.acc_bits << 8 | cfg.stream_bits << 16
    regs = [
        Register("ID", 0x00, "RO", ID_SPARSE, "accelerator identifier", const=True),
        Register("VERSION", 0x04, "RO", HW_VERSION[0] << 16 | HW_VERSION[1] << 8 | HW_VERSION[2],
                 "hardware version major.minor.patch", const=True, fields=(
                     Field("PATCH", 0, 8), Field("MINOR", 8, 8), Field("MAJOR", 16, 8))),
        Register("CFG0", 0x08, "RO", cfg0, "configuration readback: lanes and dense buffer",
                 const=True, fields=(
                     Field("LANES", 0, 8, "multiply lanes L"),
                     Field("DENSE_COLS", 8, 4, "columns P of X per job"),
                     Field("COL_BITS", 12, 5, "column index width of an entry"),
                     Field("BANKED", 17, 1, "1: banked dense buffer, 0: one copy per lane"),
                     Field("X_BANKS", 20, 11, "dense-buffer banks (1 when replicated)"))),
        Register("CFG1", 0x0C, "RO", cfg1, "configuration readback: types and stream width",
                 const=True, fields=(
                     Field("A_DTYPE", 0, 4, "A value type code (int4, uint4, int8, uint8, "
                                            "int16, uint16)"),
                     Field("X_DTYPE", 4, 4, "X type code"),
                     Field("ACC_BITS", 8, 8, "accumulator width"),
                     Field("STREAM_BITS", 16, 16, "AXI4-Stream TDATA width"))),
        Register("MAX_ROWS", 0x10, "RO", cfg.max_rows, "largest ROWS of a job", const=True),
        Register("MAX_COLS", 0x14, "RO", cfg.max_cols,
                 "largest COLS of a job (rows of X in the dense buffer)", const=True),
        Register("MAX_NNZ", 0x18, "RO", cfg.max_nnz, "largest ENTRIES of a job", const=True),
        Register("CTRL", 0x20, "WO", 0, "control strobes", fields=(
            Field("START", 0, 1, "start the job described by ROWS, COLS, ENTRIES "
                                 "(ignored while busy)"),
            Field("SOFT_RESET", 1, 1, "abort any job and return the core to idle"))),
        Register("STATUS", 0x24, "RO", 0, "job status", fields=(
            Field("BUSY", 0, 1, "a job is running"),
            Field("DONE", 1, 1, "the last job finished (cleared by START)"),
            Field("ERROR", 2, 1, "the last job failed; see ERROR_CODE"),
            Field("ERROR_CODE", 8, 8, "error code of the last job"))),
        Register("ROWS", 0x28, "RW", 0, "rows M of A and of the result"),
        Register("COLS", 0x2C, "RW", 0, "columns N of A = rows of X loaded"),
        Register("ENTRIES", 0x30, "RW", 0, "CSR entries of A in the input frame: nonzeros "
                                           "plus one placeholder per empty row"),
    ]
    off = 0x40
    for name, desc in SPARSE_COUNTERS:
        regs.append(Register(f"{name}_LO", off, "RO", 0, desc + " (low word; latches high word)"))
        regs.append(Register(f"{name}_HI", off + 4, "RO", 0, desc + " (high word)"))
        off += 8
    regs.append(Register("JOBS", off, "RO", 0, "jobs finished since reset (including failed ones)"))
    return RegisterMap("accelgen_sparse", tuple(regs), SPARSE_ERRORS,
                       tuple(n for n, _ in SPARSE_COUNTERS))
