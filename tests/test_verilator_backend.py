# amaranth: UnusedElaboratable=no
"""The Verilator backend: registers over AXI4-Lite, bus errors, a hand-driven GEMM
job checked against numpy, stream argument checks, timeouts, waveforms and the
build cache (warm hits, concurrent builders of one config)."""

import multiprocessing
import os
import shutil
import time

import numpy as np
import pytest

from accelgen.hdl.config import GemmConfig
from accelgen.hdl.regs import gemm_register_map
from accelgen.sim.device import BusError, DeviceTimeout, StreamError
from accelgen.sim import verilator_backend as vb

pytestmark = pytest.mark.verilator

CFG = GemmConfig(rows=2, cols=2, a_spad_kib=1, b_spad_kib=1, acc_kib=1)
REGS = gemm_register_map(CFG)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A build cache private to this test session, shared by the tests of this module."""
    root = tmp_path_factory.getbasetemp() / "accelgen-cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ACCELGEN_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def library(cache):
    return vb.build_library(CFG)


@pytest.fixture
def dev(library):
    with vb.VerilatorDevice(CFG) as device:
        yield device


def test_reset_at_construction(dev):
    assert dev.cycles == vb.RESET_CYCLES
    assert dev.beat_bytes == CFG.stream_bits // 8
    assert dev.manifest["top"] == CFG.top_name


def test_constant_registers_match_register_table(dev):
    consts = [r for r in REGS.registers if r.const]
    assert {"ID", "VERSION", "CFG0", "CFG1"} <= {r.name for r in consts}
    for reg in consts:
        assert dev.read(reg.offset) == reg.reset, reg.name
    assert dev.read(REGS["ID"].offset) == REGS["ID"].reset


def test_rw_register_reads_back(dev):
    assert dev.read(REGS["RQ_MULT"].offset) == REGS["RQ_MULT"].reset
    dev.write(REGS["M"].offset, 0x1234)
    assert dev.read(REGS["M"].offset) == 0x1234
    dev.reset()
    assert dev.read(REGS["M"].offset) == 0


def test_unmapped_access_is_a_bus_error(dev):
    mapped = {r.offset for r in REGS.registers}
    hole = max(o for o in range(0, 1 << REGS.addr_width, 4) if o not in mapped)
    with pytest.raises(BusError, match=f"read of 0x{hole:02x} answered SLVERR"):
        dev.read(hole)
    with pytest.raises(BusError, match=f"write of 0x00000007 to 0x{hole:02x} answered SLVERR"):
        dev.write(hole, 7)
    assert dev.read(REGS["ID"].offset) == REGS["ID"].reset       # the bus still works


def test_argument_checks(dev):
    beat = dev.beat_bytes
    for n in (0, 3, beat + 1):
        with pytest.raises(ValueError, match=f"whole number of {beat}-byte beats, not {n} bytes"):
            dev.send(bytes(n))
    with pytest.raises(ValueError, match="whole number"):
        dev.recv(beat - 1)
    with pytest.raises(ValueError, match="AXI4-Lite address width"):
        dev.read(1 << REGS.addr_width)
    with pytest.raises(ValueError, match="CSR value must be in 0..0xFFFFFFFF"):
        dev.write(REGS["M"].offset, -1)
    with pytest.raises(TypeError, match="CSR offset must be an integer"):
        dev.read("M")


def test_timeouts(dev):
    with pytest.raises(DeviceTimeout, match="no m_axis frame completed within 50 cycles"):
        dev.recv(8, timeout_cycles=50)
    status = REGS["STATUS"]
    with pytest.raises(DeviceTimeout, match=r"0x24 \(STATUS\) & 0x1 did not become 0x1"):
        dev.wait(status.offset, 0b1, 0b1, timeout_cycles=100)
    with pytest.raises(DeviceTimeout, match="read of 0x00 .ID. not answered within 0 cycles"):
        dev.read(0, timeout_cycles=0)
    dev.reset()
    assert dev.read(0) == REGS["ID"].reset


def _pack_os_2x2(A, B):
    """Hand packing of one OS job on the 2x2 int8 array (64-bit beats of four 16-bit
    words, word p at bits [16p, 16p+16), each segment padded to a whole beat)."""
    M, K = A.shape
    N = B.shape[1]
    R, C = CFG.rows, CFG.cols

    def segment(words):
        data = b"".join(bytes(np.asarray(w, np.int8).view(np.uint8)) for w in words)
        return data + bytes(-len(data) % 8)

    a_words = [np.pad(A[i * R:(i + 1) * R, k], (0, R - len(A[i * R:(i + 1) * R, k])))
               for i in range(-(-M // R)) for k in range(K)]
    b_words = [np.pad(B[k, j * C:(j + 1) * C], (0, C - len(B[k, j * C:(j + 1) * C])))
               for j in range(-(-N // C)) for k in range(K)]
    return segment(a_words) + segment(b_words)


def test_gemm_job_by_hand(dev):
    rng = np.random.default_rng(1)
    M = K = N = 2
    A = rng.integers(-128, 128, (M, K))
    B = rng.integers(-128, 128, (K, N))
    A[0, 0], B[0, 0] = -128, -128                   # the extreme product
    frame = _pack_os_2x2(A, B)
    assert len(frame) == 16
    for name, value in (("M", M), ("K", K), ("N", N), ("MODE", 0)):
        dev.write(REGS[name].offset, value)
    dev.write(REGS["CTRL"].offset, REGS["CTRL"].field("START").mask)
    dev.send(frame)
    out = dev.recv(M * N * 4)                       # one 64-bit beat per row of 2 int32
    status = dev.wait(REGS["STATUS"].offset, 0b11, 0b10)
    assert status & REGS["STATUS"].field("ERROR").mask == 0
    C = np.frombuffer(out, dtype="<i4").reshape(M, N)
    np.testing.assert_array_equal(C, A @ B)
    job_cycles = dev.read(REGS["JOB_CYCLES_LO"].offset)
    assert 0 < job_cycles < dev.cycles
    assert dev.read(REGS["MACS_LO"].offset) == M * N * K
    assert dev.read(REGS["JOBS"].offset) == 1

    # The same job again gives the same hardware cycle count: the harness is deterministic.
    dev.write(REGS["CTRL"].offset, REGS["CTRL"].field("START").mask)
    dev.send(frame)
    with pytest.raises(StreamError, match="frame of 16 bytes received where 8 bytes"):
        dev.recv(8)
    dev.wait(REGS["STATUS"].offset, 0b11, 0b10)
    assert dev.read(REGS["JOB_CYCLES_LO"].offset) == job_cycles


def test_devices_are_independent(dev):
    with vb.VerilatorDevice(CFG) as other:
        dev.write(REGS["N"].offset, 9)
        assert other.read(REGS["N"].offset) == 0
        assert dev.read(REGS["N"].offset) == 9
    with pytest.raises(RuntimeError, match="closed"):
        other.read(0)


def test_run_idle_moves_no_stream_data(dev):
    before = dev.cycles
    dev.run_idle(1000)
    assert dev.cycles == before + 1000
    with pytest.raises(ValueError, match="non-negative"):
        dev.run_idle(-1)


def test_warm_build_is_instant(library):
    t0 = time.monotonic()
    again = vb.build_library(CFG)
    assert time.monotonic() - t0 < 1.0
    assert again == library
    assert library.name == f"lib{CFG.top_name}.so"
    assert (library.parent / "manifest.json").is_file()


def _entries(root):
    return sorted(p.name for p in (root / "verilator").iterdir()
                  if p.is_dir() and not p.name.startswith((".", "runtime-")))


def test_concurrent_builders_build_once(cache, library, tmp_path, monkeypatch):
    fresh = tmp_path / "fresh-cache"
    # The design-independent Verilator runtime comes along, so the test times one
    # model build; the config's entry itself starts absent.
    for runtime in (cache / "verilator").glob("runtime-*"):
        shutil.copytree(runtime, fresh / "verilator" / runtime.name)
    monkeypatch.setenv("ACCELGEN_CACHE", str(fresh))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        paths = pool.map(vb.build_library, [CFG, CFG])
    assert paths[0] == paths[1]
    assert paths[0].is_relative_to(fresh)
    assert _entries(fresh) == [paths[0].parent.name]
    assert not list((fresh / "verilator").glob(".tmp-*"))
    with vb.VerilatorDevice(CFG) as dev:            # and the entry loads
        assert dev.library == paths[0]
        assert dev.read(REGS["ID"].offset) == REGS["ID"].reset


def test_incomplete_entry_is_rebuilt_not_loaded(cache, library, tmp_path, monkeypatch):
    fresh = tmp_path / "broken-cache"
    shutil.copytree(cache / "verilator", fresh / "verilator")
    entry = fresh / "verilator" / library.parent.name
    (entry / "build.json").unlink()                 # as if the builder had died
    monkeypatch.setenv("ACCELGEN_CACHE", str(fresh))
    monkeypatch.setattr(vb, "_build_entry", _refuse_build)
    with pytest.raises(RuntimeError, match="rebuild requested"):
        vb.build_library(CFG)
    assert not entry.exists()


def _refuse_build(*args):
    raise RuntimeError("rebuild requested")


def test_missing_tool_is_named(cache, monkeypatch):
    monkeypatch.setenv("ACCELGEN_VERILATOR", "/nonexistent/verilator")
    with pytest.raises(RuntimeError, match="needs verilator: .*accelgen doctor"):
        vb.build_library(CFG)


def test_fst_without_lz4_headers_is_explained(cache, tmp_path):
    if vb.fst_problem() is None:
        pytest.skip("the lz4 and zlib headers are installed: FST traces can be built")
    with pytest.raises(RuntimeError, match="liblz4-dev.*ends in .vcd"):
        vb.VerilatorDevice(CFG, trace=tmp_path / "wave.fst")


@pytest.mark.slow
def test_vcd_trace(cache, tmp_path):
    wave = tmp_path / "wave.vcd"
    with vb.VerilatorDevice(CFG, trace=wave) as dev:
        dev.read(REGS["ID"].offset)
        assert dev.library.parent.name != vb.build_library(CFG).parent.name
    text = wave.read_text()
    assert "aclk" in text and "s_axil_rdata" in text
    assert f"#{2 * (vb.RESET_CYCLES + 2) - 1}" in text
