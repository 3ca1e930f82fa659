# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the PEs and the systolic array against numpy."""

import numpy as np
import pytest
from amaranth import signed, unsigned
from amaranth.sim import Simulator

from accelgen.hdl.array import SystolicArray


def _run_array(dut, schedule, n_results, max_cycles=2000):
    """Drive one step per cycle from ``schedule`` (dicts of port values or None for a
    bubble); collect (tag, row, data) of result rows until ``n_results`` arrived."""
    results = []

    async def bench(ctx):
        for cycle in range(max_cycles):
            step = schedule[cycle] if cycle < len(schedule) else None
            ctx.set(dut.a.ctl.as_value(), 0)
            ctx.set(dut.b.load, 0)
            if step:
                for r, v in enumerate(step.get("a", [])):
                    ctx.set(dut.a.data[r], int(v))
                for c, v in enumerate(step.get("b", [])):
                    ctx.set(dut.b.data[c], int(v))
                for k, v in step.get("ctl", {}).items():
                    ctx.set(getattr(dut.a.ctl, k), v)
                if "load_row" in step:
                    ctx.set(dut.b.load, 1)
                    ctx.set(dut.b.row, step["load_row"])
                ctx.set(dut.tag, step.get("tag", 0))
            await ctx.tick()
            if ctx.get(dut.o_valid):
                results.append((ctx.get(dut.o_tag), ctx.get(dut.o_row),
                                [ctx.get(dut.o_data[c]) for c in range(len(dut.o_data))],
                                cycle))
            if len(results) >= n_results:
                return

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


def _shape(signed_, bits):
    return signed(bits) if signed_ else unsigned(bits)


@pytest.mark.parametrize("R,C", [(1, 1), (2, 3), (3, 2), (4, 4)])
@pytest.mark.parametrize("signed_", [True, False])
def test_os_array_back_to_back_folds(R, C, signed_):
    rng = np.random.default_rng(R * 10 + C)
    lo, hi = (-128, 128) if signed_ else (0, 256)
    dut = SystolicArray(rows=R, cols=C, a_shape=_shape(signed_, 8), b_shape=_shape(signed_, 8),
                        acc_bits=32, dataflow="os", tag_shape=8)
    folds = []
    schedule = []
    for f, K in enumerate([5, 1, max(R, C) + 2, 3]):
        A = rng.integers(lo, hi, (R, K))
        B = rng.integers(lo, hi, (K, C))
        folds.append(A @ B)
        L = max(K, dut.min_fold_cycles)
        schedule += [None] * (L - K)      # bubbles first: last steps >= L cycles apart
        for k in range(K):
            schedule.append({"a": A[:, k], "b": B[k], "tag": f,
                             "ctl": {"valid": 1, "first": int(k == 0), "last": int(k == K - 1)}})
    res = _run_array(dut, schedule, len(folds) * R)
    assert len(res) == len(folds) * R
    for i, (tag, row, vals, _) in enumerate(res):
        f, r = divmod(i, R)
        assert (tag, row) == (f, r)
        np.testing.assert_array_equal(vals, folds[f][r])


@pytest.mark.parametrize("R,C", [(1, 1), (2, 3), (3, 2), (4, 4)])
def test_ws_array_weight_swap(R, C):
    rng = np.random.default_rng(R * 7 + C)
    dut = SystolicArray(rows=R, cols=C, a_shape=signed(8), b_shape=signed(8),
                        acc_bits=32, dataflow="ws", tag_shape=8)
    Ms = [4, 1, R + 3]
    Ws = [rng.integers(-128, 128, (R, C)) for _ in Ms]
    As = [rng.integers(-128, 128, (M, R)) for M in Ms]
    schedule = [{"b": Ws[0][r], "load_row": r} for r in range(R)]
    tag = 0
    expected = []
    for f, M in enumerate(Ms):
        L = max(M, dut.min_fold_cycles)
        for t in range(L):
            step = {}
            if t < M:
                step.update({"a": As[f][t], "tag": tag, "ctl": {"valid": 1, "swap": int(t == 0)}})
                expected.append((tag, As[f][t] @ Ws[f]))
                tag += 1
            if t < R and f + 1 < len(Ms):
                step.update({"b": Ws[f + 1][t], "load_row": t})
            schedule.append(step or None)
    res = _run_array(dut, schedule, len(expected))
    assert [r[0] for r in res] == [e[0] for e in expected]
    for (tag, _, vals, _), (_, exp) in zip(res, expected):
        np.testing.assert_array_equal(vals, exp)
