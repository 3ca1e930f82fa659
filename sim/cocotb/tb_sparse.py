"""cocotb tests of the generated sparse MAC accelerator (run by ``tests/test_cocotb_sparse.py``).

The design under test is the generated Verilog top of a
:class:`~accelgen.hdl.sparse_config.SparseConfig`; everything the tests know about
it comes from its manifest (``ACCELGEN_MANIFEST``) and the driver's programs
(``plan_spmv`` / ``plan_spmm``), replayed through cocotbext-axi's AXI4-Lite master
and AXI4-Stream source and sink by the same :class:`ProgramReplayer` and
:class:`ProtocolMonitor` as the GEMM testbench. Results are checked bit-exactly
against scipy.sparse (:mod:`.sparse_jobs`), counters against the sparse cycle
model (:class:`SparseChecker`; without stalls every counter of every job, and the
call's totals against :func:`~accelgen.host.sparse_model.predict_sparse`).

Data tests are crossed with idle insertion on the input stream and backpressure on
the output stream (:data:`~.testbench.STALL_PATTERNS`).
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, with_timeout
from cocotbext.axi import AxiStreamFrame

from accelgen.hdl.sparse_regs import ID_SPARSE
from accelgen.host.plan import STATUS_BUSY, STATUS_DONE, STATUS_ERROR
from accelgen.host.sparse import unpack_rows
from accelgen.host.sparse_model import predict_sparse
from accelgen.sim.cocotb.sparse_jobs import SPARSE_DATA_SCENARIOS, sparse_scenarios
from accelgen.sim.cocotb.testbench import (RESP_OKAY, RESP_SLVERR, STALL_PATTERNS, TB,
                                           ProgramReplayer, SparseChecker)

TIMEOUT_US = 2_000          # per test: 200k cycles, far beyond the slowest stalled run


def _field(value: int, manifest, reg: str, name: str) -> int:
    lsb, width = manifest.field(reg, name)
    return (value >> lsb) & ((1 << width) - 1)


async def _run_calls(tb: TB, name: str, *, stalled_in=False, stalled_out=False, edit=None):
    """Replay the scenario's programs; check results, STATUS and counters of each call.
    ``edit(index, plan)`` may change a plan's ops before it runs."""
    cfg = tb.config
    sc = sparse_scenarios(cfg)[name]
    replayer = ProgramReplayer(tb)
    checker = SparseChecker(cfg)
    received = []
    stalled = stalled_in or stalled_out
    in_before, out_before = len(tb.monitor.in_frames), len(tb.monitor.out_frames)
    for i, (call, plan, expected) in enumerate(zip(sc.calls, sc.plans(cfg), sc.expected)):
        if edit is not None:
            edit(i, plan)
        first = len(replayer.observations)
        results = await replayer.execute(plan)
        received += [r for r in results if isinstance(r, bytes)]
        what = f"{name}/{call.name} (A {call.A.shape}, nnz {call.A.nnz}, {len(plan.jobs)} jobs)"
        try:
            checker.result(plan, results, expected)
            checker.status(plan, results)
            counters = checker.counters(plan, results, observed=replayer.observations[first:],
                                        stalled_in=stalled_in, stalled_out=stalled_out)
            if not stalled:
                total = {k: sum(c[k] for c in counters) for k in counters[0]}
                p = 1 if call.vector else call.X.shape[1]
                want = predict_sparse(cfg, call.A, p).to_dict()
                assert total == want, f"call totals {total}, predict_sparse says {want}"
        except AssertionError as exc:
            raise AssertionError(f"{what}: {exc}") from None
    await ClockCycles(tb.dut.aclk, 2)
    tb.monitor.check_idle()
    if stalled_out and not (tb.idle == tb.backpressure == "alternate"):
        # (with input beats every other cycle, result beats can come at the parity the
        # sink accepts: alternating backpressure then never meets one)
        assert sum(o.out_stall_cycles for o in replayer.observations) > 0, \
            "backpressure was applied but never met a result beat"
    if stalled_in:
        assert sum(o.in_idle_cycles for o in replayer.observations) > 0, \
            "input idle insertion never happened"
    assert tb.monitor.in_frames[in_before:] == replayer.sent, \
        "the design accepted other input frames than the testbench sent"
    assert tb.monitor.out_frames[out_before:] == received, \
        "the sink received other frames than the monitor saw on m_axis"
    return replayer


# -- data tests under stress ---------------------------------------------------------------


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
@cocotb.parametrize(scenario=SPARSE_DATA_SCENARIOS, idle=STALL_PATTERNS,
                    backpressure=STALL_PATTERNS)
async def data(dut, scenario: str, idle: str, backpressure: str):
    """The scenario's SpMV / SpMM calls through the driver's programs: results
    bit-exact against scipy, counters right, both streams and the CSR port legal,
    under the given stall patterns."""
    tb = TB(dut)
    tb.set_stress(idle, backpressure)
    await tb.reset()
    await _run_calls(tb, scenario, stalled_in=idle != "none",
                     stalled_out=backpressure != "none")


# -- CSRs ----------------------------------------------------------------------------------


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def csr_map(dut):
    """ID, VERSION and the configuration readback equal the manifest and its config;
    every register reads its reset value; RW registers hold what is written; writes
    to read-only registers and every access to an unmapped word answer SLVERR and
    change nothing."""
    tb = TB(dut)
    await tb.reset()
    man, cfg = tb.manifest, tb.config
    names = ("ID", "VERSION", "CFG0", "CFG1", "MAX_ROWS", "MAX_COLS", "MAX_NNZ")
    const = {r["name"]: r for r in man.data["csrs"] if r["name"] in names}
    assert len(const) == len(names) and all(r["access"] == "RO" for r in const.values())
    values = {name: await tb.read(name) for name in const}
    for name, reg in const.items():
        assert values[name] == reg["reset"], \
            f"{name} reads {values[name]:#x}, manifest says {reg['reset']:#x}"
    assert values["ID"] == ID_SPARSE, f"ID {values['ID']:#x} is not the sparse accelerator's"
    cfg0, cfg1 = values["CFG0"], values["CFG1"]
    assert _field(cfg0, man, "CFG0", "LANES") == cfg.lanes
    assert _field(cfg0, man, "CFG0", "DENSE_COLS") == cfg.dense_cols
    assert _field(cfg0, man, "CFG0", "COL_BITS") == cfg.col_bits
    assert _field(cfg0, man, "CFG0", "BANKED") == (cfg.x_buffer == "banked")
    assert _field(cfg0, man, "CFG0", "X_BANKS") == cfg.x_banks
    assert _field(cfg1, man, "CFG1", "A_DTYPE") == cfg.a.code
    assert _field(cfg1, man, "CFG1", "X_DTYPE") == cfg.x.code
    assert _field(cfg1, man, "CFG1", "ACC_BITS") == cfg.acc_bits
    assert _field(cfg1, man, "CFG1", "STREAM_BITS") == cfg.stream_bits
    assert (values["MAX_ROWS"], values["MAX_COLS"], values["MAX_NNZ"]) == \
        (cfg.max_rows, cfg.max_cols, cfg.max_nnz)
    for reg in man.data["csrs"]:
        value, resp = await tb.csr_read(reg["offset"])
        expect = 0 if reg["access"] == "WO" else reg["reset"]
        assert (value, resp) == (expect, RESP_OKAY), \
            f"{reg['name']} reads {value:#x} ({resp}) after reset, expected {expect:#x}"
    for i, reg in enumerate(r for r in man.data["csrs"] if r["access"] == "RW"):
        value = 0x9E37_79B9 * (i + 1) & 0xFFFF_FFFF
        assert await tb.csr_write(reg["offset"], value) == RESP_OKAY
        assert (await tb.csr_read(reg["offset"])) == (value, RESP_OKAY), reg["name"]
        assert await tb.csr_write(reg["offset"], reg["reset"]) == RESP_OKAY
    await tb.check_read_only(man.data["csrs"])
    holes = man.unmapped_offsets()
    assert holes, "the register map has no unmapped words to test"
    for off in holes:
        assert (await tb.csr_read(off))[1] == RESP_SLVERR, f"read of unmapped {off:#x}"
        assert await tb.csr_write(off, 0xFFFF_FFFF) == RESP_SLVERR, f"write to unmapped {off:#x}"
    assert await tb.read("STATUS") == 0, "a CSR access started a job"
    tb.monitor.check()


# -- job control ---------------------------------------------------------------------------


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def back_to_back_jobs(dut):
    """Programs follow each other with no reset and no idle time; the job registers
    are latched at START (rewriting them, and a second START, while a job runs change
    nothing); STATUS reads BUSY and not DONE during a job; JOBS counts every job."""
    tb = TB(dut)
    await tb.reset()
    man = tb.manifest
    start = 1 << man.field("CTRL", "START")[0]
    status = man.offset("STATUS")

    def meddle(i, plan):
        ops = list(plan.ops)
        # after each job's frame: garbage job registers and a START (with another bit
        # set, so the replayer does not take it for a new job of the program)
        at = [j + 1 for j, op in enumerate(ops) if op[0] == "send"]
        for j in reversed(at):
            ops[j:j] = [("write", man.offset("ROWS"), 1), ("write", man.offset("COLS"), 0),
                        ("write", man.offset("ENTRIES"), 0xFFFF_FFFF),
                        ("write", man.offset("CTRL"), start | 1 << 31)]
        plan.ops = ops

    jobs = 0
    for name in ("spmm", "edges"):
        replayer = await _run_calls(tb, name, edit=meddle)
        jobs += len(replayer.observations)
        assert await tb.read("JOBS") == jobs
    # STATUS during a job, by hand: BUSY and not DONE once START is accepted
    plan = sparse_scenarios(tb.config)["spmm"].plans(tb.config)[1]
    send = next(i for i, op in enumerate(plan.ops) if op[0] == "send")
    for op in plan.ops[:send - 1]:
        assert await tb.csr_write(op[1], op[2]) == RESP_OKAY
    assert await tb.read("STATUS") & STATUS_DONE, "DONE of the previous job must still be set"
    tb.monitor.expect_frame(plan.jobs[0].out_bytes)
    assert plan.ops[send - 1] == ("write", man.offset("CTRL"), start)
    assert await tb.csr_write(man.offset("CTRL"), start) == RESP_OKAY
    value, _ = await tb.csr_read(status)
    assert value & STATUS_BUSY and not value & STATUS_DONE, f"STATUS {value:#x} after START"
    tb.source.send_nowait(AxiStreamFrame(plan.ops[send][1]))
    tb.monitor.note_send()
    frame = await with_timeout(tb.sink.recv(), 20_000 * tb.period_ns, "ns")
    value = await tb.wait_idle()
    assert value & STATUS_DONE and not value & STATUS_ERROR, f"STATUS {value:#x}"
    assert await tb.read("JOBS") == jobs + 1
    Y = plan.assemble([bytes(frame.tdata), value] + [0] * 2 * len(plan.counters))
    np.testing.assert_array_equal(Y, sparse_scenarios(tb.config)["spmm"].expected[1])
    await ClockCycles(dut.aclk, 2)
    tb.monitor.check_idle()


# -- error jobs ----------------------------------------------------------------------------

#: Cases rejected at the start checks: (ROWS, COLS, ENTRIES) as a function of the
#: config, and the error. No result frame; the input frame is flushed up to TLAST.
#: (Case names have at most 10 characters: cocotb shows no longer ones in test names.)
_REJECTED = {
    "rows_zero": (lambda c: (0, 8, 8), "BAD_DIM"),
    "cols_zero": (lambda c: (4, 0, 8), "BAD_DIM"),
    "ent_lt_row": (lambda c: (5, 8, 4), "BAD_DIM"),
    "rows_over": (lambda c: (c.max_rows + 1, 8, c.max_rows + 1), "OVER_LIMIT"),
    "cols_over": (lambda c: (4, c.max_cols + 1, 8), "OVER_LIMIT"),
    "nnz_over": (lambda c: (4, 8, c.max_nnz + 1), "OVER_LIMIT"),
    "max_dims": (lambda c: (0xFFFF_FFFF,) * 3, "OVER_LIMIT"),
}
#: Cases that fail while running, on a valid job's frame edited (see
#: :func:`_error_job`), and the error. The result frame still comes, ROWS rows long.
_RUNNING = {
    "col_range": "COL_RANGE",         # COLS 3 smaller (same X beats): entries out of range
    "row_count": "ROW_MISMATCH",      # ROWS 1 larger: the entries end one row short
    "short": "SHORT_STREAM",          # TLAST one entry beat early
    "short_in_x": "SHORT_STREAM",     # TLAST on the first beat of X
    "long": "LONG_STREAM",            # two beats past the last one
}
ERROR_CASES = tuple(_REJECTED) + tuple(_RUNNING)

#: The valid call whose frame the running cases edit: ``families`` call 1 (uniform 5%).
_RUNNING_CALL = ("families", 1)


def _error_job(tb: TB, case: str):
    """(ROWS, COLS, ENTRIES, input frame, result frame bytes or None, error name)."""
    cfg, bb = tb.config, tb.manifest.beat_bytes
    if case in _REJECTED:
        dims, error = _REJECTED[case]
        rows, cols, entries = dims(cfg)
        return rows, cols, entries, bytes(range(1, 3 * bb + 1)), None, error
    name, index = _RUNNING_CALL
    plan = sparse_scenarios(cfg)[name].plans(cfg)[index]
    (job,) = plan.jobs
    wx = cfg.x_rows_per_beat
    assert job.cols > 3 and -(-(job.cols - 3) // wx) == -(-job.cols // wx)
    frame = next(op[1] for op in plan.ops if op[0] == "send")
    rows, cols, entries = job.rows, job.cols, job.entries
    if case == "col_range":
        cols -= 3
    elif case == "row_count":
        rows += 1
    elif case == "short":
        frame = frame[:-bb]
    elif case == "short_in_x":
        frame = frame[:bb]
    elif case == "long":
        frame = frame + bytes(2 * bb)
    out_bytes = tb.manifest.result_frame_bytes({"ROWS": rows})
    return rows, cols, entries, frame, out_bytes, _RUNNING[case]


def _check_partial_rows(tb: TB, case: str, frame: bytes, rows: int) -> None:
    """The result frame of a job that failed while running: the rows finished before
    the error equal scipy's, the rest are zero ("rows a failed job did not compute
    are zero"); one row, the one open at the error, may hold a partial sum."""
    cfg = tb.config
    name, index = _RUNNING_CALL
    expected = sparse_scenarios(cfg)[name].expected[index]
    got = unpack_rows(cfg, frame, rows)
    want = np.zeros_like(got)
    want[:len(expected), 0] = expected
    good = (got == want).all(axis=1)
    zero = (got == 0).all(axis=1)
    computed = int(np.argmin(good)) if not good.all() else rows     # leading correct rows
    rest = ~zero[computed + 1:]
    assert not rest.any(), (f"{case}: rows {computed + 1 + np.flatnonzero(rest)[:5]} after the "
                            f"error are not zero: {got[computed + 1:][rest][:3]}")
    if case != "short_in_x":          # failing in the entries: some rows were done
        assert good[:len(expected)].any() and not zero[:computed].all(), \
            f"{case}: no row computed before the error"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
@cocotb.parametrize(case=ERROR_CASES)
async def error_job(dut, case: str):
    """A job the hardware cannot run reports its documented error code without
    hanging the bus; one rejected at the start sends no result frame, one failing
    while running completes its result frame at the planned length; the input frame
    is consumed up to its TLAST, and the next programs run correctly."""
    tb = TB(dut)
    await tb.reset()
    man = tb.manifest
    rows, cols, entries, frame, out_bytes, error = _error_job(tb, case)
    for name, value in (("ROWS", rows), ("COLS", cols), ("ENTRIES", entries)):
        await tb.write(name, value)
    if out_bytes is not None:
        tb.monitor.expect_frame(out_bytes)
    await tb.write("CTRL", 1 << man.field("CTRL", "START")[0])
    tb.source.send_nowait(AxiStreamFrame(frame))
    tb.monitor.note_send()
    got = None
    if out_bytes is not None:
        got = await with_timeout(tb.sink.recv(), 20_000 * tb.period_ns, "ns")
        assert len(got.tdata) == out_bytes, f"{case}: result frame of {len(got.tdata)} bytes"
    status = await tb.wait_idle(budget_cycles=5_000)
    assert status & STATUS_ERROR and status & STATUS_DONE and not status & STATUS_BUSY, \
        f"{case}: STATUS {status:#x}"
    code = _field(status, man, "STATUS", "ERROR_CODE")
    assert code == man.errors[error], \
        f"{case}: ERROR_CODE {code}, expected {man.errors[error]} ({error})"
    assert await tb.read("JOBS") == 1
    await tb.source.wait()
    await ClockCycles(dut.aclk, 8)
    assert tb.monitor.in_frames == [frame], f"{case}: the input frame was not consumed"
    assert tb.sink.empty(), f"{case}: a second result frame"
    if got is not None:
        _check_partial_rows(tb, case, bytes(got.tdata), rows)
    tb.monitor.check_idle()
    tb.monitor.in_frames.clear()
    tb.monitor.out_frames.clear()
    await _run_calls(tb, "spmm")
