"""The cocotb testbench must catch broken designs.

Each mutant is the real generator with one deliberate bug, made by subclassing
one hardware class and patching it in for this test only (``monkeypatch``; the
sources are untouched). Its Verilog is generated, built for Icarus (about a
second) and run against the focused part of the testbench that should notice;
the test passes when that cocotb run fails, for the reason expected. A control
run shows the same part passes on the real design, so the failures are the
mutants' doing.
"""

from __future__ import annotations

import re

import pytest
from amaranth import Mux, Signal, Value

from accelgen.hdl.config import GemmConfig
from accelgen.hdl.generate import generate
from accelgen.sim.cocotb import runner

pytestmark = pytest.mark.icarus

CONFIG = GemmConfig(rows=2, cols=2, a_spad_kib=1, b_spad_kib=1, acc_kib=1)


def packer_drops_tvalid(monkeypatch):
    """The output packer withdraws TVALID one cycle into backpressure (beat lost). The
    packer sits behind the result port's skid register, so the port keeps TVALID and
    the frame comes out a beat short."""
    import accelgen.hdl.gemm as gemm

    class Packer(gemm.Packer):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            with m.If(self.o_valid & ~self.o_ready):
                m.d.sync += self.o_valid.eq(0)
            return m

    monkeypatch.setattr(gemm, "Packer", Packer)


def pe_ignores_last_k(monkeypatch):
    """Every output-stationary PE sees a zero operand on a fold's last step, so the
    last K element never reaches the sum."""
    import accelgen.hdl.array as array

    class OSProcessingElement(array.OSProcessingElement):
        def elaborate(self, platform):
            real = self.a_in
            self.a_in = fake = Signal.like(real)
            try:
                m = super().elaborate(platform)
            finally:
                self.a_in = real
            last = self.ctl_in.valid & self.ctl_in.last
            m.d.comb += Value.cast(fake).eq(Mux(last, 0, Value.cast(real)))
            return m

    monkeypatch.setattr(array, "OSProcessingElement", OSProcessingElement)


def unmapped_reads_okay(monkeypatch):
    """The CSR bank answers OKAY to every read, mapped or not."""
    import accelgen.hdl.top as top

    class AXI4LiteCSR(top.AXI4LiteCSR):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.d.sync += self.bus.rresp.eq(0)
            return m

    monkeypatch.setattr(top, "AXI4LiteCSR", AXI4LiteCSR)


def out_stalls_undercounted(monkeypatch):
    """OUT_STALL_CYCLES misses every other backpressure cycle."""
    import accelgen.hdl.top as top

    class GemmCore(top.GemmCore):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            # the core counts a stall cycle one cycle later, from a registered condition:
            # the mutant holds the count on an odd value the cycle after a stall
            stalled = Signal()
            count = self._counter_regs["out_stall_cycles"]   # the register behind the port
            m.d.sync += stalled.eq(self.busy & self.m_valid & ~self.m_ready)
            with m.If(stalled & count[0]):
                m.d.sync += count.eq(count)
            return m

    monkeypatch.setattr(top, "GemmCore", GemmCore)


STALLED = "data/scenario=single/idle=none/backpressure=alternate"
#: mutant -> (patch, cocotb tests that must fail, text their failure must contain)
MUTANTS = {
    "packer_drops_tvalid": (packer_drops_tvalid, STALLED, "ended by TLAST, expected"),
    "pe_ignores_last_k": (pe_ignores_last_k, "data/scenario=single/idle=none/backpressure=none",
                          "differs from numpy"),
    "unmapped_reads_okay": (unmapped_reads_okay, "csr_unmapped_slverr",
                            "read of unmapped"),
    "out_stalls_undercounted": (out_stalls_undercounted, STALLED, "OUT_STALL_CYCLES"),
}


# -- the sparse accelerator (tb_sparse, on the configuration of tests/test_cocotb_sparse.py) --


def sparse_packer_drops_tvalid(monkeypatch):
    """The sparse core withdraws its result beat one cycle into backpressure."""
    import accelgen.hdl.sparse as sparse

    class SparseCore(sparse.SparseCore):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            with m.If(self.m_valid & ~self.m_ready):
                m.d.sync += self.m_valid.eq(0)
            return m

    monkeypatch.setattr(sparse, "SparseCore", SparseCore)


def sparse_lane_loses_product(monkeypatch):
    """The last lane's products vanish when that lane ends a row with a negative
    first-column product (the segmented reduction sees zeros)."""
    import accelgen.hdl.sparse as sparse

    class SegmentedReduce(sparse.SegmentedReduce):
        def elaborate(self, platform):
            real = self.i_value
            self.i_value = fake = Signal.like(real)
            try:
                m = super().elaborate(platform)
            finally:
                self.i_value = real
            lanes = len(self.i_last)
            value = Value.cast(real)
            width = len(value) // lanes
            acc_bits = real.shape().elem_shape.elem_shape.width     # lanes x cols x acc
            sign = value[(lanes - 1) * width + acc_bits - 1]
            m.d.comb += Value.cast(fake).eq(value)
            with m.If(self.i_last[lanes - 1] & sign):
                m.d.comb += Value.cast(fake)[-width:].eq(0)
            return m

    monkeypatch.setattr(sparse, "SegmentedReduce", SegmentedReduce)


def sparse_out_stalls_uncounted(monkeypatch):
    """OUT_STALL_CYCLES of the sparse core never counts (queue-full stalls happen
    without backpressure too, so the stall-free model comparison must notice)."""
    import accelgen.hdl.sparse as sparse

    class SparseCore(sparse.SparseCore):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.d.sync += self.out_stall_cycles.eq(0)
            return m

    monkeypatch.setattr(sparse, "SparseCore", SparseCore)


SPARSE_MUTANTS = {
    "sparse_packer_drops_tvalid": (sparse_packer_drops_tvalid,
                                   "data/scenario=edges/idle=none/backpressure=alternate",
                                   "dropped TVALID before TREADY"),
    "sparse_lane_loses_product": (sparse_lane_loses_product,
                                  "data/scenario=families/idle=none/backpressure=none",
                                  "differs from numpy"),
    "sparse_out_stalls_uncounted": (sparse_out_stalls_uncounted,
                                    "data/scenario=edges/idle=none/backpressure=none",
                                    "differ from the cycle model"),
}


def _suite(kind: str):
    """(config, mutants) of the GEMM or the sparse testbench."""
    if kind == "sparse":
        from test_cocotb_sparse import CONFIG as SPARSE
        return SPARSE, SPARSE_MUTANTS
    return CONFIG, MUTANTS


def _run(tmp_path, test_filter: str, config=CONFIG):
    design = generate(config, tmp_path / "design")
    build_dir = runner.build("icarus", design, build_dir=tmp_path / "build")
    return runner.run("icarus", design, build_dir, tmp_path / "run", test_filter=test_filter)


@pytest.mark.parametrize("kind", ["gemm", "sparse"])
def test_focused_tests_pass_on_the_real_design(kind, tmp_path):
    config, mutants = _suite(kind)
    subsets = sorted({subset for _, subset, _ in mutants.values()})
    result = _run(tmp_path, "|".join(map(re.escape, subsets)), config)
    assert result.tests == len(subsets) and result.failed == 0, result.report()


@pytest.mark.parametrize("mutant", [*MUTANTS, *SPARSE_MUTANTS])
def test_mutant_is_caught(mutant, monkeypatch, tmp_path, capsys):
    config, mutants = _suite("sparse" if mutant in SPARSE_MUTANTS else "gemm")
    patch, subset, reason = mutants[mutant]
    patch(monkeypatch)
    result = _run(tmp_path, re.escape(subset), config)
    assert result.tests == 1, result.report()
    assert result.failed == 1, f"the testbench did not notice mutant {mutant}:\n{result.report()}"
    assert any(reason in message for _, message in result.failures), result.report()
    with capsys.disabled():
        first = result.failures[0][1].strip().splitlines()
        why = next((line for line in first if reason in line), first[-1] if first else "")
        print(f"\nmutant {mutant}: caught by {subset}: {why.strip()[:160]}")
