# amaranth: UnusedElaboratable=no
"""Amaranth-simulator unit tests of the sparse engine's components, each against
its numpy model: the segmented reduction, the compaction queue and the dense buffer
(replicated and banked, with the host's conflict model)."""

from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator

from accelgen.hdl.segscan import SegmentedReduce, segmented_reduce_reference
from accelgen.hdl.rowqueue import CompactionQueue
from accelgen.hdl.densebuf import DenseBuffer
from accelgen.host.sparse_model import beat_rounds


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def _wrap(v, bits):
    return (int(v) + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))


# -- segmented reduction ----------------------------------------------------------------------

@pytest.mark.parametrize("lanes,cols,acc_bits", [(1, 1, 16), (3, 2, 16), (8, 1, 32), (5, 3, 24)])
def test_segmented_reduce_matches_numpy(lanes, cols, acc_bits):
    rng = np.random.default_rng(lanes * 10 + cols)
    nbeats = 40
    lo = -(1 << (acc_bits - 2))
    values = rng.integers(lo, -lo, (nbeats, lanes, cols))
    # rows of every length: many short, some spanning several beats
    lasts = (rng.random((nbeats, lanes)) < rng.choice([0.05, 0.4, 0.9], size=(nbeats, 1)))
    lasts[-1, -1] = True
    dut = SegmentedReduce(lanes=lanes, cols=cols, acc_bits=acc_bits)
    assert dut.latency == (lanes - 1).bit_length() + 1
    expected = segmented_reduce_reference(values, lasts, acc_bits)
    got = []

    async def bench(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        pending = deque(range(nbeats))
        cycles = 0
        while len(got) < len(expected):
            en = int(rng.random() < 0.7)
            ctx.set(dut.en, en)
            feed = pending and rng.random() < 0.8
            ctx.set(dut.i_valid, int(bool(feed)))
            if feed:
                b = pending[0]
                for l in range(lanes):
                    for p in range(cols):
                        ctx.set(dut.i_value[l][p], int(values[b, l, p]))
                ctx.set(dut.i_last, sum(int(x) << l for l, x in enumerate(lasts[b])))
                if en:
                    pending.popleft()
            if en and ctx.get(dut.o_valid):
                mask = ctx.get(dut.o_last)
                flagged = [l for l in range(lanes) if mask >> l & 1]
                assert ctx.get(dut.o_count) == len(flagged)
                picks = [ctx.get(dut.o_pick[r]) for r in range(lanes)]
                assert picks == [1 << l for l in flagged] + [0] * (lanes - len(flagged))
                for l in range(lanes):
                    if mask >> l & 1:
                        got.append([ctx.get(dut.o_sum[l][p]) for p in range(cols)])
            await ctx.tick()
            cycles += 1
            assert cycles < 2000

    _run(dut, bench)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert [int(v) for v in g] == [int(v) for v in e]


def test_segmented_reduce_clear_drops_the_carry():
    dut = SegmentedReduce(lanes=2, cols=1, acc_bits=16)
    got = []

    async def bench(ctx):
        ctx.set(dut.en, 1)
        # an open row (no last flag), then clear, then a row of 5 + 6
        for vals, last, clear in (((1, 2), 0b00, 0), ((0, 0), 0b00, 1), ((5, 6), 0b10, 0)):
            ctx.set(dut.i_valid, 1)
            ctx.set(dut.i_value[0][0], vals[0])
            ctx.set(dut.i_value[1][0], vals[1])
            ctx.set(dut.i_last, last)
            ctx.set(dut.clear, clear)
            await ctx.tick()
        ctx.set(dut.i_valid, 0)
        ctx.set(dut.clear, 0)
        for _ in range(dut.latency + 1):
            if ctx.get(dut.o_valid) and ctx.get(dut.o_last):
                got.append(ctx.get(dut.o_sum[1][0]))
            await ctx.tick()

    _run(dut, bench)
    assert got == [11]


def test_segmented_reduce_rejects_bad_parameters():
    with pytest.raises(ValueError, match="SegmentedReduce lanes must be in 1..64, not 0"):
        SegmentedReduce(lanes=0, cols=1, acc_bits=16)
    with pytest.raises(TypeError, match="SegmentedReduce cols must be an integer, not '2'"):
        SegmentedReduce(lanes=2, cols="2", acc_bits=16)


# -- compaction queue -------------------------------------------------------------------------

@pytest.mark.parametrize("lanes,read_rows,depth", [(8, 8, 4), (3, 2, 2), (4, 16, 2), (1, 1, 2)])
def test_compaction_queue_keeps_order(lanes, read_rows, depth):
    rng = np.random.default_rng(lanes * 7 + read_rows)
    dut = CompactionQueue(lanes=lanes, row_bits=12, read_rows=read_rows, depth=depth)
    cap = dut.capacity
    assert cap >= lanes + read_rows
    model = deque()
    nxt = [1]

    async def bench(ctx):
        for _ in range(300):
            level = ctx.get(dut.level)
            assert level == len(model)
            k_max = min(lanes, cap - level)
            rows = []
            k = 0
            if rng.random() < 0.7 and k_max:
                k = int(rng.integers(0, k_max + 1))
            for r in range(lanes):
                if r < k:           # positions past w_count carry junk
                    rows.append(nxt[0])
                    ctx.set(dut.w_rows[r], nxt[0])
                    nxt[0] = nxt[0] % 4000 + 1
                else:
                    ctx.set(dut.w_rows[r], int(rng.integers(0, 4096)))
            en = int(k != 0 or rng.random() < 0.2)
            if not en:
                k_junk = int(rng.integers(0, k_max + 1))     # ignored without w_en
                rows = []
                ctx.set(dut.w_count, k_junk)
            else:
                ctx.set(dut.w_count, k)
            ctx.set(dut.w_en, en)
            head = [ctx.get(dut.r_rows[j]) for j in range(min(read_rows, level))]
            assert head == list(model)[:len(head)]
            pop = int(rng.integers(0, min(read_rows, level) + 1))
            if level < read_rows and rng.random() < 0.1:   # more than queued: empties it
                pop = int(rng.integers(level + 1, read_rows + 1))
            r_en = int(rng.random() < 0.8)
            ctx.set(dut.r_en, r_en)
            ctx.set(dut.r_pop, pop)     # ignored without r_en
            pop = min(pop, level) * r_en
            await ctx.tick()
            for _ in range(pop):
                model.popleft()
            model.extend(rows)

    _run(dut, bench)


@pytest.mark.parametrize("lanes,read_rows,depth", [(8, 8, 16), (3, 5, 2), (4, 2, 4)])
def test_compaction_queue_registered_write_and_enough(lanes, read_rows, depth):
    """registered_write: rows reach the banks and the level a cycle after w_en;
    registered_enough: ``enough`` (a register) is level >= r_pop while r_pop changes
    only at pops, to r_pop_next."""
    rng = np.random.default_rng(lanes * 11 + read_rows)
    dut = CompactionQueue(lanes=lanes, row_bits=12, read_rows=read_rows, depth=depth,
                          registered_enough=True, registered_write=True)
    cap = dut.capacity
    model = deque()
    nxt = [1]

    async def bench(ctx):
        staged = []
        r_pop = int(rng.integers(0, read_rows + 1))
        ctx.set(dut.r_pop, r_pop)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for _ in range(400):
            level = ctx.get(dut.level)
            assert level == len(model)
            assert ctx.get(dut.enough) == (level >= r_pop)
            k_max = min(lanes, cap - level - len(staged))     # staged rows count too
            k = int(rng.integers(0, k_max + 1)) if rng.random() < 0.7 else 0
            rows = []
            for r in range(lanes):
                if r < k:
                    rows.append(nxt[0])
                    ctx.set(dut.w_rows[r], nxt[0])
                    nxt[0] = nxt[0] % 4000 + 1
                else:
                    ctx.set(dut.w_rows[r], int(rng.integers(0, 4096)))
            ctx.set(dut.w_count, k)
            ctx.set(dut.w_en, int(k != 0))
            head = [ctx.get(dut.r_rows[j]) for j in range(min(read_rows, level))]
            assert head == list(model)[:len(head)]
            r_en = int(rng.random() < 0.6)
            nxt_pop = int(rng.integers(0, read_rows + 1))
            ctx.set(dut.r_en, r_en)
            ctx.set(dut.r_pop_next, nxt_pop)
            ctx.set(dut.r_pop_pair, r_pop + nxt_pop)
            await ctx.tick()
            if r_en:
                for _ in range(min(r_pop, level)):      # more than queued: empties it
                    model.popleft()
                r_pop = nxt_pop
                ctx.set(dut.r_pop, r_pop)
            model.extend(staged)
            staged = rows

    _run(dut, bench)


def test_compaction_queue_rejects_bad_depth():
    with pytest.raises(ValueError, match="CompactionQueue depth must be a power of two >= 2, "
                                         "not 3"):
        CompactionQueue(lanes=2, row_bits=8, read_rows=2, depth=3)


# -- dense buffer -----------------------------------------------------------------------------

@pytest.mark.parametrize("mode,banks,lanes,words", [
    ("replicated", 1, 4, 8), ("banked", 4, 4, 8), ("banked", 1, 3, 4), ("banked", 8, 8, 8)])
def test_dense_buffer_serves_every_lane(mode, banks, lanes, words):
    rng = np.random.default_rng(banks * 3 + lanes)
    row_bits, depth = 8, 6
    ncols = words * depth
    dut = DenseBuffer(lanes=lanes, row_bits=row_bits, words=words, depth=depth, col_bits=6,
                      mode=mode, banks=banks)
    assert dut.memory_bits == (lanes if mode == "replicated" else 1) * ncols * row_bits
    assert dut.latency == 4
    X = rng.integers(0, 256, ncols)
    nbeats = 30
    cols = rng.integers(0, ncols, (nbeats, lanes))
    cols[::3] = cols[::3] % 5 * banks                 # force conflicts and shared rows
    req = rng.random((nbeats, lanes)) < 0.85
    rounds = beat_rounds(cols, req, banks, words) if mode == "banked" else np.ones(nbeats, int)
    seen_rounds = []

    async def bench(ctx):
        for w in range(depth):
            ctx.set(dut.we, 1)
            ctx.set(dut.waddr, w)
            ctx.set(dut.wdata, sum(int(X[w * words + e]) << (e * row_bits)
                                   for e in range(words)))
            await ctx.tick()
        ctx.set(dut.we, 0)
        b = 0
        in_stage = 0
        # beats that finished gathering, by enabled cycles since: o_x shows pipe[-1]
        pipe = [None] * dut.latency
        checked = 0
        while b < nbeats or any(v is not None for v in pipe):
            en = int(rng.random() < 0.75)
            ctx.set(dut.en, en)
            ctx.set(dut.i_valid, int(b < nbeats))
            if b < nbeats:
                for l in range(lanes):
                    ctx.set(dut.i_col[l], int(cols[b, l]))
                ctx.set(dut.i_req, sum(int(r) << l for l, r in enumerate(req[b])))
            out_beat = pipe[-1]
            if out_beat is not None:        # held however long en stays low
                for l in range(lanes):
                    if req[out_beat, l]:
                        assert ctx.get(dut.o_x[l]) == X[cols[out_beat, l]], (out_beat, l)
            ready = ctx.get(dut.i_ready) if b < nbeats else 0
            done = None
            if en and b < nbeats:
                in_stage += 1
                if ready:
                    seen_rounds.append(in_stage)
                    in_stage = 0
                    done = b
                    b += 1
            if en:
                checked += out_beat is not None
                pipe = [done] + pipe[:-1]
            await ctx.tick()
        assert checked == nbeats

    _run(dut, bench)
    assert seen_rounds == list(rounds)
    if mode == "banked" and banks < lanes:
        assert max(seen_rounds) > 1


def test_dense_buffer_rejects_bad_banks():
    with pytest.raises(ValueError, match="DenseBuffer banks must be a power of two at most "
                                         "words \\(8\\), not 16"):
        DenseBuffer(lanes=2, row_bits=8, words=8, depth=4, col_bits=5, mode="banked", banks=16)
    with pytest.raises(ValueError, match="DenseBuffer banks must be 1 when replicated, not 2"):
        DenseBuffer(lanes=2, row_bits=8, words=8, depth=4, col_bits=5, banks=2)
