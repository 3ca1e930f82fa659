# amaranth: UnusedElaboratable=no
"""Driver tests: bit-exact against numpy on both backends, every dataflow, operand
type and array shape; accumulate, requantize, tiling; error jobs; and the same
counters from both backends."""

import numpy as np
import pytest

from accelgen.hdl import GemmConfig
from accelgen.hdl.requant import requantize_reference
from accelgen.hdl.gemm import SETUP_PRODUCTS
from accelgen.host import Accelerator, Requant, reference_matmul
from accelgen.host.plan import build_plan
from accelgen.sim.device import DeviceError

SMALL = dict(a_spad_kib=1, b_spad_kib=1, acc_kib=1)


def _operands(cfg, m, k, n, seed=0, extremes=False):
    rng = np.random.default_rng(seed)
    A = rng.integers(cfg.a.min, cfg.a.max + 1, (m, k))
    B = rng.integers(cfg.b.min, cfg.b.max + 1, (k, n))
    if extremes:
        A.flat[::3] = cfg.a.min
        A.flat[1::3] = cfg.a.max
        B.flat[::2] = cfg.b.min
        B.flat[1::2] = cfg.b.max
    return A, B


_devices = {}


def _acc(cfg, backend):
    """One device per (config, backend) for the whole session: builds are the slow part."""
    key = (cfg, backend)
    if key not in _devices:
        _devices[key] = Accelerator(cfg, backend=backend)
    return _devices[key]


def _check(cfg, backend, m, k, n, seed=0, **kw):
    acc = _acc(cfg, backend)
    A, B = _operands(cfg, m, k, n, seed, extremes=kw.pop("extremes", False))
    C, rep = acc.matmul(A, B, **kw)
    np.testing.assert_array_equal(C, reference_matmul(cfg, A, B, requant=kw.get("requant")))
    assert rep.macs == m * k * n
    assert rep.job_cycles >= rep.lower_bound_cycles
    return rep


# -- Verilator: the broad sweep ---------------------------------------------------------

ARRAYS = [(1, 1), (4, 8), (8, 4), (3, 5)]
SHAPES = [(1, 1, 1), (7, 13, 11), (1, 9, 5), (6, 1, 7), (5, 8, 1), (29, 31, 23)]


@pytest.mark.verilator
@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("rows,cols", ARRAYS)
def test_shapes_verilator(rows, cols, dataflow):
    cfg = GemmConfig(rows=rows, cols=cols, dataflow=dataflow, **SMALL)
    for i, (m, k, n) in enumerate(SHAPES):
        _check(cfg, "verilator", m, k, n, seed=i)


# Every operand type appears once as A and once as B, both dataflows and several stream
# widths are covered, with one Verilator build per row (builds dominate the run time).
TYPE_CONFIGS = [
    ("int4", "uint16", 32, "os", 32),
    ("uint4", "int4", 16, "ws", 64),
    ("int8", "uint8", 24, "os", 128),
    ("uint8", "int16", 40, "ws", 32),
    ("int16", "int8", 32, "os", 512),
    ("uint16", "uint4", 64, "ws", 64),
]


@pytest.mark.verilator
@pytest.mark.parametrize("a_dtype,b_dtype,acc_bits,dataflow,stream_bits", TYPE_CONFIGS)
def test_operand_types_and_stream_widths_verilator(a_dtype, b_dtype, acc_bits, dataflow,
                                                   stream_bits):
    cfg = GemmConfig(rows=3, cols=2, dataflow=dataflow, a_dtype=a_dtype, b_dtype=b_dtype,
                     acc_bits=acc_bits, stream_bits=stream_bits, **SMALL)
    _check(cfg, "verilator", 5, 37, 4, extremes=True)   # long K: wraps narrow accumulators
    _check(cfg, "verilator", 4, 3, 7, seed=3)
    _check(cfg, "verilator", 7, 6, 5, seed=4, requant=Requant(5, 9))


@pytest.mark.verilator
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_many_tiles_and_k_split_verilator(dataflow):
    # 1 KiB scratchpads force K splits (accumulate in hardware) and M/N tiling
    cfg = GemmConfig(rows=4, cols=8, dataflow=dataflow, **SMALL)
    rep = _check(cfg, "verilator", 67, 300, 41)
    assert len(rep.jobs) > 4
    assert any(j["mode"] & 0b1000 for j in rep.jobs)   # NO_OUTPUT partial-sum jobs ran
    assert rep.job_cycles == sum(j["job_cycles"] for j in rep.jobs)


@pytest.mark.verilator
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_accumulate_and_requant_verilator(dataflow):
    cfg = GemmConfig(rows=8, cols=4, dataflow=dataflow, **SMALL)
    acc = Accelerator(cfg, backend="verilator")
    A1, B1 = _operands(cfg, 6, 9, 7, seed=1)
    A2, B2 = _operands(cfg, 6, 5, 7, seed=2)
    C1, _ = acc.matmul(A1, B1)
    C2, rep = acc.matmul(A2, B2, accumulate=True)
    np.testing.assert_array_equal(C2, reference_matmul(cfg, A2, B2, C_prev=A1 @ B1))
    rq = Requant.from_scale(1 / 700, relu=True)
    C3, _ = acc.matmul(A1, B1, accumulate=True, requant=rq)
    np.testing.assert_array_equal(
        C3, reference_matmul(cfg, A1, B1, C_prev=A1 @ B1 + A2 @ B2, requant=rq))
    with pytest.raises(ValueError, match="accumulate=True adds onto the previous result"):
        acc.matmul(*_operands(cfg, 3, 3, 3), accumulate=True)
    acc.close()


#: The small-FPGA options (serial setup: CHECK decides on flags registered during the
#: setup; fields-only CSRs; no requantizer, whose inputs are then tied off)
SMALL_FPGA = dict(counter_bits=24, serial_setup=True, csr_fields_only=True, requant=False)


@pytest.mark.verilator
@pytest.mark.parametrize("options", [{}, SMALL_FPGA], ids=["default", "small-fpga"])
def test_error_jobs_verilator(options):
    cfg = GemmConfig(rows=1, cols=1, **SMALL, **options)
    acc = _acc(cfg, "verilator")
    dev, rm = acc.device, acc.regmap
    status = rm.offset("STATUS")

    def run_job(m, k, n, mode=0):
        for name, v in (("M", m), ("K", k), ("N", n), ("MODE", mode)):
            dev.write(rm.offset(name), v)
        dev.write(rm.offset("CTRL"), 1)
        return dev.wait(status, 0b11, 0b10, timeout_cycles=10_000)

    # 1x1 int8, 1 KiB each: A and B hold 1024 words, the accumulator 256 rows
    assert (cfg.a_depth, cfg.b_depth, cfg.acc_depth) == (1024, 1024, 256)
    for dims, code in [((0, 4, 4), "BAD_DIM"), ((4, 0, 4), "BAD_DIM"), ((4, 4, 0), "BAD_DIM"),
                       ((100, 11, 2), "A_OVERFLOW"), ((2, 11, 100), "B_OVERFLOW"),
                       ((20, 2, 20), "C_OVERFLOW")]:
        st = run_job(*dims)
        assert st & 0b100 and (st >> 8) == dict((e.name, e.code) for e in rm.errors)[code], dims
    if not cfg.requant:
        st = run_job(2, 2, 2, mode=0b10)            # REQUANT without the unit
        assert st & 0b100 and st >> 8 == 5          # UNSUPPORTED
    # read-write CSRs: all 32 bits, or only their fields' bits
    dev.write(rm.offset("M"), 0xFFFF_FFFF)
    assert dev.read(rm.offset("M")) == (0xFFFF if cfg.csr_fields_only else 0xFFFF_FFFF)
    # the core is usable afterwards
    _check(cfg, "verilator", 3, 4, 5)
    # a short input frame: error, no hang, and a following job still works
    A, B = _operands(cfg, 4, 4, 4)
    plan = build_plan(cfg, A, B)
    frame = next(op[1] for op in plan.ops if op[0] == "send")
    for name, v in (("M", 4), ("K", 4), ("N", 4), ("MODE", 0)):
        dev.write(rm.offset(name), v)
    dev.write(rm.offset("CTRL"), 1)
    dev.send(frame[:8])
    st = dev.wait(status, 0b11, 0b10, timeout_cycles=10_000)
    assert st & 0b100 and (st >> 8) == 6            # SHORT_STREAM
    _check(cfg, "verilator", 4, 4, 4, seed=5)



def test_input_checks():
    acc = Accelerator(GemmConfig(rows=2, cols=2, **SMALL), backend="amaranth")
    A = np.ones((3, 4), dtype=np.int8)
    with pytest.raises(ValueError, match="Shapes do not match for A @ B: A is 3x4, B is 5x2"):
        acc.plan_matmul(A, np.ones((5, 2), dtype=np.int8))
    with pytest.raises(TypeError, match="A must be a numpy array, not list"):
        acc.plan_matmul([[1]], np.ones((1, 1), dtype=np.int8))
    with pytest.raises(TypeError, match="B must have an integer dtype"):
        acc.plan_matmul(A, np.ones((4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="A must not be empty"):
        acc.plan_matmul(np.ones((0, 4), dtype=np.int8), np.ones((4, 2), dtype=np.int8))
    with pytest.raises(ValueError, match="B holds 200, outside int8 \\[-128, 127\\]"):
        acc.plan_matmul(A, np.full((4, 2), 200))
    with pytest.raises(ValueError, match="Backend must be one of"):
        Accelerator(backend="spice")


def test_plan_is_plain_tuples_and_replayable():
    cfg = GemmConfig(rows=2, cols=2, **SMALL)
    A, B = _operands(cfg, 3, 4, 5)
    acc = Accelerator(cfg, backend="amaranth")
    plan = acc.plan_matmul(A, B)
    kinds = {op[0] for op in plan.ops}
    assert kinds == {"write", "read", "send", "recv", "wait"}
    for op in plan.ops:
        assert isinstance(op, tuple) and all(isinstance(x, (int, str, bytes)) for x in op)
    results = acc.device.execute(plan.ops)
    np.testing.assert_array_equal(plan.assemble(results), A @ B)


# -- Amaranth simulator: the same driver, smaller problems -----------------------------

@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 2)])
def test_shapes_amaranth(rows, cols, dataflow):
    cfg = GemmConfig(rows=rows, cols=cols, dataflow=dataflow, **SMALL)
    for i, (m, k, n) in enumerate([(1, 1, 1), (4, 5, 3), (1, 3, 4)]):
        _check(cfg, "amaranth", m, k, n, seed=i)


def test_small_fpga_options_amaranth():
    # the iCE40 table's configuration: WS, serial setup, 24-bit counters, fields-only CSRs
    from accelgen.boards.table import ice40_config
    from accelgen.host.model import predict
    cfg = ice40_config(2)
    assert cfg.serial_setup and cfg.counter_bits == 24 and cfg.csr_fields_only
    assert cfg.dataflow == "ws"
    rep = _check(cfg, "amaranth", 3, 5, 3)
    p = predict(cfg, 3, 5, 3)
    assert (rep.job_cycles, rep.compute_cycles, rep.input_stall_cycles) == (
        p.job_cycles, p.compute_cycles, p.input_stall_cycles)


def test_requant_and_types_amaranth():
    cfg = GemmConfig(rows=2, cols=2, a_dtype="int4", b_dtype="uint8", acc_bits=16, **SMALL)
    _check(cfg, "amaranth", 3, 6, 3, extremes=True)
    cfg = GemmConfig(rows=2, cols=2, dataflow="ws", **SMALL)
    _check(cfg, "amaranth", 3, 5, 3, requant=Requant(9, 6, relu=True))


@pytest.mark.verilator
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_backends_agree_on_results_and_counters(dataflow):
    cfg = GemmConfig(rows=3, cols=5, dataflow=dataflow, **SMALL)
    A, B = _operands(cfg, 5, 40, 7, seed=9)
    out = {}
    for backend in ("amaranth", "verilator"):
        acc = Accelerator(cfg, backend=backend)
        C, rep = acc.matmul(A, B)
        C2, rep2 = acc.matmul(A[:, :3], B[:3], requant=Requant(3, 2))
        out[backend] = (C, rep.jobs, C2, rep2.jobs)
        acc.close()
    a, v = out["amaranth"], out["verilator"]
    np.testing.assert_array_equal(a[0], v[0])
    np.testing.assert_array_equal(a[2], v[2])
    assert a[1] == v[1] and a[3] == v[3]          # every counter of every job


# -- N:M structured sparsity -------------------------------------------------------------

def test_prune_nm_keeps_the_largest_per_group():
    from accelgen.host import prune_nm
    from accelgen.host.nm import nm_violations
    B = np.array([[1, -9], [-5, 2], [3, 2], [0, -2], [7, 1], [-7, 0]])   # K=6: groups of 4 + 2
    P = prune_nm(B, 2, 4)
    np.testing.assert_array_equal(P, [[0, -9], [-5, 2], [3, 0], [0, 0], [7, 1], [-7, 0]])
    assert P.dtype == B.dtype and nm_violations(P, 2, 4) == []
    assert nm_violations(B, 2, 4) == [(0, 0, 3), (0, 1, 4)]
    with pytest.raises(ValueError, match="N:M needs 1 <= n < m, not n=4, m=4"):
        prune_nm(B, 4, 4)


@pytest.mark.parametrize("backend", ["amaranth", pytest.param("verilator",
                                                              marks=pytest.mark.verilator)])
@pytest.mark.parametrize("sparsity", ["2:4", "1:4"])
def test_nm_sparse_matmul(backend, sparsity):
    from accelgen.host import prune_nm
    cfg = GemmConfig(rows=2, cols=3, sparsity=sparsity, **SMALL)
    n, m = cfg.nm
    acc = _acc(cfg, backend)
    shapes = [(1, 1, 1), (3, 7, 4), (5, 16, 7)] + ([(9, 41, 8), (13, 300, 5)]
                                                   if backend == "verilator" else [])
    rng = np.random.default_rng(7)
    for M, K, N in shapes:
        A = rng.integers(-128, 128, (M, K))
        B = prune_nm(rng.integers(-128, 128, (K, N)), n, m)
        C, rep = acc.matmul(A, B)
        np.testing.assert_array_equal(C, A @ B)
        # one MAC per kept slot: ceil(K/m)*n per output, summed over the K chunks
        assert rep.macs == sum(j["m"] * j["n"] * -(-j["k"] // m) * n for j in rep.jobs)
    with pytest.raises(ValueError, match=f"B breaks the {sparsity} sparsity pattern"):
        acc.plan_matmul(A, rng.integers(1, 128, (K, N)))


def test_nm_config_rules():
    with pytest.raises(ValueError, match="sparsity '2:4' needs dataflow 'os'"):
        GemmConfig(dataflow="ws", sparsity="2:4")
    with pytest.raises(ValueError, match="must be 'dense' or 'N:M' with M in 2, 4, 8"):
        GemmConfig(sparsity="3:3")


# -- the PEs' platform multiplier hook -------------------------------------------------

class _RegisteredMultiplier:
    """Behavioural model of the ``accelgen_multiplier`` hook contract (what a DSP block
    with input and output registers does): operands registered when enabled, their
    product registered once more."""

    def __init__(self, a_shape, b_shape, p_shape):
        from amaranth.lib import wiring
        from amaranth.lib.wiring import In, Out

        class Mul(wiring.Component):
            def __init__(self):
                super().__init__({"a": In(a_shape), "b": In(b_shape), "a_en": In(1),
                                  "b_en": In(1), "p": Out(p_shape)})

            def elaborate(self, platform):
                from amaranth import Module, Signal
                m = Module()
                a_r, b_r = Signal(a_shape), Signal(b_shape)
                with m.If(self.a_en):
                    m.d.sync += a_r.eq(self.a)
                with m.If(self.b_en):
                    m.d.sync += b_r.eq(self.b)
                m.d.sync += self.p.eq(a_r * b_r)
                return m

        self.component = Mul()


class _HookPlatform:
    used = 0

    def accelgen_multiplier(self, a_shape, b_shape, p_shape):
        _HookPlatform.used += 1
        return _RegisteredMultiplier(a_shape, b_shape, p_shape).component


@pytest.mark.parametrize("dataflow,sparsity", [("os", "dense"), ("ws", "dense"), ("os", "2:4")])
def test_platform_multiplier_hook_keeps_results_and_cycles(dataflow, sparsity):
    """A PE that hands its multiply to the platform (a DSP block with its own operand
    and product registers, on ECP5) computes the same C in the same cycles."""
    from accelgen.host import prune_nm
    cfg = GemmConfig(rows=2, cols=3, dataflow=dataflow, sparsity=sparsity, **SMALL)
    rng = np.random.default_rng(5)
    A = rng.integers(-128, 128, (5, 11))
    B = rng.integers(-128, 128, (11, 4))
    if sparsity != "dense":
        B = prune_nm(B, *cfg.nm)
    _HookPlatform.used = 0
    hooked = Accelerator(cfg, backend="amaranth", platform=_HookPlatform())
    C, rep = hooked.matmul(A, B)
    # every PE took the hook, the requantizer's 16-bit slices of each lane, and the
    # setup's products
    assert _HookPlatform.used == (cfg.rows * cfg.cols + cfg.cols * -(-cfg.acc_bits // 16)
                                  + len(SETUP_PRODUCTS[dataflow]))
    np.testing.assert_array_equal(C, A @ B)
    rq = Requant(77, 9, relu=sparsity != "dense")
    C8, rq_rep = hooked.matmul(A, B, requant=rq)
    np.testing.assert_array_equal(C8, requantize_reference(A @ B, 77, 9, rq.relu))
    plain = _acc(cfg, "amaranth")
    _, plain_rep = plain.matmul(A, B)
    _, plain_rq_rep = plain.matmul(A, B, requant=rq)
    assert rep.jobs == plain_rep.jobs                        # every counter of every job
    assert rq_rep.jobs == plain_rq_rep.jobs
