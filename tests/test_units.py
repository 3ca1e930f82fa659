# amaranth: UnusedElaboratable=no
"""Amaranth-simulator unit tests of the loader, packer, requantizer and CSR bank,
each against the numpy model of the same format or function."""

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from accelgen.hdl import GemmConfig
from accelgen.hdl.loader import Loader
from accelgen.hdl.gearbox import Packer, words_per_beat
from accelgen.hdl.requant import Requantizer, requantize_reference
from accelgen.hdl.axil import AXI4LiteCSR
from accelgen.hdl.regs import gemm_register_map
from accelgen.host.packing import pack_segment


def _sim(dut, *benches):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for b in benches:
        sim.add_testbench(b)
    sim.run()


def _beats(data: bytes, sb: int):
    bb = sb // 8
    return [int.from_bytes(data[i:i + bb], "little") for i in range(0, len(data), bb)]


@pytest.mark.parametrize("na1", [7, 3])      # A in one segment, or split around B
@pytest.mark.parametrize("wa_elems,wa_bits,wb_elems,wb_bits,sb", [
    (8, 8, 8, 8, 64),       # word == beat
    (2, 8, 3, 8, 64),       # several words per beat, different per segment
    (3, 4, 5, 16, 32),      # odd bit widths; B word larger than a beat
    (8, 16, 4, 8, 32),      # A: 4 beats per word
])
def test_loader_unpacks_the_host_format(wa_elems, wa_bits, wb_elems, wb_bits, sb, na1):
    rng = np.random.default_rng(wa_elems * 31 + sb)
    na, nb = 7, 5
    A = rng.integers(-(1 << (wa_bits - 1)), 1 << (wa_bits - 1), (na, wa_elems))
    B = rng.integers(0, 1 << wb_bits, (nb, wb_elems))
    frame = pack_segment(A[:na1], wa_bits, sb) + pack_segment(B, wb_bits, sb)
    if na1 < na:
        frame += pack_segment(A[na1:], wa_bits, sb)
    beats = _beats(frame, sb)
    dut = Loader(stream_bits=sb, a_word_bits=wa_elems * wa_bits, b_word_bits=wb_elems * wb_bits,
                 a_addr_bits=8, b_addr_bits=8, count_bits=16)
    got_a, got_b = {}, {}

    def as_word(vals, bits):
        return sum((int(v) & ((1 << bits) - 1)) << (i * bits) for i, v in enumerate(vals))

    async def source(ctx):
        ctx.set(dut.n_a, na)
        ctx.set(dut.n_a1, na1)
        ctx.set(dut.n_b, nb)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for i, b in enumerate(beats):
            ctx.set(dut.s_valid, 1)
            ctx.set(dut.s_data, b)
            ctx.set(dut.s_last, int(i == len(beats) - 1))
            await ctx.tick().until(dut.s_ready)
        ctx.set(dut.s_valid, 0)
        for _ in range(20):
            await ctx.tick()

    async def sink(ctx):
        for _ in range(len(beats) * 8 + 40):
            await ctx.tick()
            # sample write strobes of the cycle just finished through the counters
        assert ctx.get(dut.a_count) == na and ctx.get(dut.b_count) == nb

    async def monitor(ctx):
        async for _clk, _rst, a_we, a_addr, a_data, b_we, b_addr, b_data, es, el in ctx.tick().sample(
                dut.a_we, dut.a_addr, dut.a_data, dut.b_we, dut.b_addr, dut.b_data,
                dut.err_short, dut.err_long):
            if a_we:
                got_a[a_addr] = a_data
            if b_we:
                got_b[b_addr] = b_data
            assert not es and not el

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(sink)
    sim.run()
    assert got_a == {i: as_word(A[i], wa_bits) for i in range(na)}
    assert got_b == {i: as_word(B[i], wb_bits) for i in range(nb)}


@pytest.mark.parametrize("short", [True, False])
def test_loader_framing_errors(short):
    dut = Loader(stream_bits=32, a_word_bits=32, b_word_bits=32, a_addr_bits=4, b_addr_bits=4,
                 count_bits=8)
    seen = {"short": 0, "long": 0}

    async def bench(ctx):
        ctx.set(dut.n_a, 2)
        ctx.set(dut.n_a1, 2)
        ctx.set(dut.n_b, 2)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        lasts = [0, 0, 1] if short else [0, 0, 0, 0, 0, 1]
        for last in lasts:
            ctx.set(dut.s_valid, 1)
            ctx.set(dut.s_data, 0x1234)
            ctx.set(dut.s_last, last)
            *_, es, el = await ctx.tick().sample(dut.err_short, dut.err_long).until(dut.s_ready)
        ctx.set(dut.s_valid, 0)
        for _ in range(4):
            *_, es, el = await ctx.tick().sample(dut.err_short, dut.err_long)
            seen["short"] += es
            seen["long"] += el
        assert not ctx.get(dut.busy)

    async def mon(ctx):
        async for *_, es, el in ctx.tick().sample(dut.err_short, dut.err_long):
            seen["short"] += es
            seen["long"] += el

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(mon, background=True)
    sim.run()
    assert (seen["short"] > 0) == short and (seen["long"] > 0) == (not short)


@pytest.mark.parametrize("row_bits,sb", [(64, 64), (16, 64), (24, 64), (96, 32), (256, 64)])
def test_packer_matches_host_format(row_bits, sb):
    rng = np.random.default_rng(row_bits + sb)
    nrows = 7
    rows = [int(rng.integers(0, 1 << 62)) & ((1 << row_bits) - 1) for _ in range(nrows)]
    dut = Packer(sb, [row_bits, 8])
    out = []

    async def src(ctx):
        ctx.set(dut.fmt, 0)
        for i, r in enumerate(rows):
            ctx.set(dut.i_valid, 1)
            ctx.set(dut.i_data, r)
            ctx.set(dut.i_last, int(i == nrows - 1))
            await ctx.tick().until(dut.i_ready)
        ctx.set(dut.i_valid, 0)

    async def sink(ctx):
        ctx.set(dut.o_ready, 1)
        while True:
            *_, v, d, last = await ctx.tick().sample(dut.o_valid, dut.o_data, dut.o_last)
            if v:
                out.append(d)
                if last:
                    return

    _sim(dut, src, sink)
    # host format: rows as byte-aligned words of row_bits (elements of 8 bits)
    words = np.array([[(r >> (8 * e)) & 0xFF for e in range(row_bits // 8)] for r in rows])
    expected = _beats(pack_segment(words, 8, sb), sb)
    assert out == expected


@pytest.mark.parametrize("mult,shift,relu,acc", [
    (1, 0, False, 32), (3, 7, True, 32), (65535, 20, False, 32), (1000, 63, False, 32),
    (77, 1, True, 32),
    # around the datapath's width (P = acc + 17): shifts up to P carried, past it flagged
    (65535, 48, False, 32), (65535, 49, False, 32), (65535, 50, True, 32),
    (65535, 33, False, 16), (65535, 34, False, 16), (40000, 32, False, 16),
    (65535, 63, False, 64), (12345, 40, False, 64)])
def test_requantizer_matches_reference(mult, shift, relu, acc):
    rng = np.random.default_rng(mult + shift)
    lanes = 4
    lo, hi = -(1 << (acc - 1)), (1 << (acc - 1)) - 1
    rows = rng.integers(lo, hi, (6, lanes), dtype=np.int64, endpoint=True)
    rows[0] = [lo, hi, 0, -1]
    dut = Requantizer(lanes, acc)
    got = []

    async def bench(ctx):
        ctx.set(dut.enable, 1)
        ctx.set(dut.mult, mult)
        ctx.set(dut.shift, shift)
        ctx.set(dut.relu, relu)
        for r in list(rows) + [None] * (dut.latency + 1):
            ctx.set(dut.i_valid, r is not None)
            if r is not None:
                for lane in range(lanes):
                    ctx.set(dut.i_data[lane], int(r[lane]))
            await ctx.tick()
            if ctx.get(dut.o_valid):
                v = ctx.get(dut.o_data)
                got.append([((v >> (8 * l)) & 0xFF) - (256 if (v >> (8 * l)) & 0x80 else 0)
                            for l in range(lanes)])

    _sim(dut, bench)
    np.testing.assert_array_equal(np.array(got), requantize_reference(rows, mult, shift, relu))


def test_csr_bank_reads_writes_and_errors():
    cfg = GemmConfig(rows=2, cols=2, a_spad_kib=1, b_spad_kib=1, acc_kib=1)
    rmap = gemm_register_map(cfg)
    dut = AXI4LiteCSR(rmap)
    b = dut.bus

    async def write(ctx, addr, data, strb=0xF):
        ctx.set(b.awaddr, addr)
        ctx.set(b.wdata, data)
        ctx.set(b.wstrb, strb)
        ctx.set(b.awvalid, 1)
        ctx.set(b.wvalid, 1)
        await ctx.tick().until(b.awready)
        ctx.set(b.awvalid, 0)
        ctx.set(b.wvalid, 0)
        ctx.set(b.bready, 1)
        *_, resp = await ctx.tick().sample(b.bresp).until(b.bvalid)
        ctx.set(b.bready, 0)
        return resp

    async def read(ctx, addr):
        ctx.set(b.araddr, addr)
        ctx.set(b.arvalid, 1)
        await ctx.tick().until(b.arready)
        ctx.set(b.arvalid, 0)
        ctx.set(b.rready, 1)
        *_, data, resp = await ctx.tick().sample(b.rdata, b.rresp).until(b.rvalid)
        ctx.set(b.rready, 0)
        return data, resp

    async def bench(ctx):
        for r in rmap.registers:
            data, resp = await read(ctx, r.offset)
            assert resp == 0
            if r.const or r.access == "RW":
                assert data == r.reset, r.name
        assert (await read(ctx, 0xFC))[1] == 2                     # unmapped read
        assert await write(ctx, 0xFC, 1) == 2                       # unmapped write
        assert await write(ctx, rmap.offset("ID"), 1) == 2          # read-only
        assert await write(ctx, rmap.offset("M"), 0x1234) == 0
        assert await read(ctx, rmap.offset("M")) == (0x1234, 0)
        assert await write(ctx, rmap.offset("M"), 0xABCD, strb=0b0010) == 0
        assert await read(ctx, rmap.offset("M")) == (0xAB34, 0)
        ctx.set(dut.cnt_JOB_CYCLES, (7 << 32) | 9)
        assert await read(ctx, rmap.offset("JOB_CYCLES_LO")) == (9, 0)
        ctx.set(dut.cnt_JOB_CYCLES, (8 << 32) | 10)               # changes after the LO read
        assert await read(ctx, rmap.offset("JOB_CYCLES_HI")) == (7, 0)   # latched
        # the read mux is two-stage (groups of 2**GROUP_BITS words): an unmapped word
        # sharing a mapped word's low address bits reads 0 with SLVERR and latches nothing
        words = {r.offset >> 2 for r in rmap.registers}
        lo = rmap.offset("JOB_CYCLES_LO") >> 2
        alias = next(w for w in range(lo % 8, 1 << (rmap.addr_width - 2), 8) if w not in words)
        assert await read(ctx, alias * 4) == (0, 2)
        assert await read(ctx, rmap.offset("JOB_CYCLES_HI")) == (7, 0)
        assert await read(ctx, rmap.offset("JOB_CYCLES_LO")) == (10, 0)
        assert await read(ctx, rmap.offset("JOB_CYCLES_HI")) == (8, 0)

    _sim(dut, bench)


def test_csr_write_only_register_is_a_one_cycle_pulse():
    """A WO register holds the written value for exactly the strobe cycle, 0 otherwise
    (the tops take the soft reset straight from its bit)."""
    cfg = GemmConfig(rows=2, cols=2, a_spad_kib=1, b_spad_kib=1, acc_kib=1)
    rmap = gemm_register_map(cfg)
    dut = AXI4LiteCSR(rmap)
    b = dut.bus
    seen = []

    async def bench(ctx):
        ctx.set(b.awaddr, rmap.offset("CTRL"))
        ctx.set(b.wdata, 0b11)
        ctx.set(b.wstrb, 0xF)
        ctx.set(b.awvalid, 1)
        ctx.set(b.wvalid, 1)
        ctx.set(b.bready, 1)
        for _ in range(6):
            await ctx.tick()
            ctx.set(b.awvalid, 0)
            ctx.set(b.wvalid, 0)
            seen.append((ctx.get(dut.wo_CTRL), ctx.get(dut.wo_CTRL_stb)))

    _sim(dut, bench)
    assert seen == [(0b11, 1)] + [(0, 0)] * 5


def test_loader_discards_a_cut_off_frame_even_past_a_new_start():
    """No TLAST where the frame should end (LONG): the frame's tail is still coming and
    must not become the next job's operands, even when that job starts first."""
    dut = Loader(stream_bits=32, a_word_bits=32, b_word_bits=32, a_addr_bits=4, b_addr_bits=4,
                 count_bits=8)
    got = {}

    async def send(ctx, data, last):
        ctx.set(dut.s_valid, 1)
        ctx.set(dut.s_data, data)
        ctx.set(dut.s_last, last)
        await ctx.tick().until(dut.s_ready)
        ctx.set(dut.s_valid, 0)

    async def start(ctx):
        for name, v in (("n_a", 1), ("n_a1", 1), ("n_b", 1)):
            ctx.set(getattr(dut, name), v)
        ctx.set(dut.cancel, 1)       # what the core does when a job is accepted...
        ctx.set(dut.start, 1)        # ...and then starts the loader
        await ctx.tick()
        ctx.set(dut.cancel, 0)
        ctx.set(dut.start, 0)

    async def bench(ctx):
        await start(ctx)
        await send(ctx, 0x11, 0)
        await send(ctx, 0x22, 0)          # last word, but no TLAST: LONG
        for _ in range(3):
            await ctx.tick()
        await start(ctx)                  # the next job starts before the tail arrives
        await send(ctx, 0xDEAD, 1)        # tail of the old frame
        await send(ctx, 0x33, 0)
        await send(ctx, 0x44, 1)
        for _ in range(3):
            await ctx.tick()
        assert ctx.get(dut.a_count) == 1 and ctx.get(dut.b_count) == 1

    async def mon(ctx):
        async for *_, a_we, a_data, b_we, b_data in ctx.tick().sample(
                dut.a_we, dut.a_data, dut.b_we, dut.b_data):
            if a_we:
                got.setdefault("a", []).append(a_data)
            if b_we:
                got.setdefault("b", []).append(b_data)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(mon, background=True)
    sim.run()
    assert got == {"a": [0x11, 0x33], "b": [0x22, 0x44]}
