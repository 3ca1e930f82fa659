# amaranth: UnusedElaboratable=no
"""SparseConfig validation and JSON; the sparse design's register map, manifest, C
header, Verilator lint and Yosys latch check; the host's packing of both streams."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from accelgen import toolchain
from accelgen.hdl import SparseConfig, GemmConfig, config_from_json
from accelgen.hdl.config import config_from_dict
from accelgen.hdl.generate import generate, LINT_WAIVERS, register_map
from accelgen.hdl.sparse_regs import sparse_register_map, ID_SPARSE
from accelgen.hdl.sparse import sparse_stream_formats
from accelgen.hdl.regs import ID_GEMM
from accelgen.host.sparse import pack_entries, csr_entries, unpack_rows, to_csr
from accelgen.host import sparse_matrices as smx


def test_defaults():
    c = SparseConfig()
    assert (c.lanes, c.a_dtype, c.x_dtype, c.acc_bits, c.dense_cols) == (8, "int8", "int8", 32, 1)
    assert (c.stream_bits, c.slot_bits, c.entry_bits) == (256, 32, 22)
    assert (c.x_rows_per_beat, c.rows_per_beat, c.x_depth) == (32, 8, 128)
    assert c.x_buffer == "replicated" and c.x_buffer_bits == 8 * 4096 * 8
    assert SparseConfig(x_buffer="banked", x_banks=16).x_buffer_bits == 4096 * 8


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"lanes": 0}, ValueError, "SparseConfig.lanes must be in 1..32, not 0"),
    ({"lanes": 33}, ValueError, "SparseConfig.lanes must be in 1..32, not 33"),
    ({"lanes": 8.0}, TypeError, "SparseConfig.lanes must be an integer, not 8.0"),
    ({"a_dtype": "int32"}, ValueError, "SparseConfig.a_dtype must be one of 'int4', 'uint4', "
                                       "'int8', 'uint8', 'int16', 'uint16', not 'int32'"),
    ({"x_dtype": None}, TypeError, "SparseConfig.x_dtype must be a string"),
    ({"acc_bits": 20}, ValueError, "SparseConfig.acc_bits must be a multiple of 8, not 20"),
    ({"a_dtype": "int16", "x_dtype": "uint16", "acc_bits": 24}, ValueError,
     "SparseConfig.acc_bits must be at least the product width 32 (int16 x uint16), not 24"),
    ({"col_bits": 17}, ValueError, "SparseConfig.col_bits must be in 1..16, not 17"),
    ({"max_cols": 5000}, ValueError, "SparseConfig.max_cols must be at most 2**col_bits = 4096 "
                                     "(column indices are 12 bits), not 5000"),
    ({"max_rows": 0}, ValueError, "SparseConfig.max_rows must be in 1..2147483647, not 0"),
    ({"max_nnz": -1}, ValueError, "SparseConfig.max_nnz must be in 1..2147483647, not -1"),
    ({"dense_cols": 3}, ValueError, "SparseConfig.dense_cols must be one of 1, 2, 4, 8, not 3"),
    ({"dense_cols": True}, TypeError, "SparseConfig.dense_cols must be an integer, not True"),
    ({"x_buffer": "cached"}, ValueError, "SparseConfig.x_buffer must be one of 'replicated', "
                                         "'banked', not 'cached'"),
    ({"x_banks": 4}, ValueError, "SparseConfig.x_banks must be 1 with x_buffer='replicated' "
                                 "(each lane has its own copy), not 4"),
    ({"x_buffer": "banked", "x_banks": 6}, ValueError,
     "SparseConfig.x_banks must be a power of two at most the X rows per input beat (32), not 6"),
    ({"x_buffer": "banked", "x_banks": 64}, ValueError,
     "SparseConfig.x_banks must be a power of two at most the X rows per input beat (32), "
     "not 64"),
    ({"stream_bits": 96}, ValueError, "SparseConfig.stream_bits must be a power of two in "
                                      "32..1024, not 96"),
    ({"stream_bits": 128}, ValueError, "SparseConfig.stream_bits must hold 8 entries of 22 bits "
                                       "(int8 value, 12-bit column, 2 flags) in slots of "
                                       "stream_bits // lanes bits, i.e. be at least 256, not 128"),
    ({"lanes": 1, "stream_bits": 32, "dense_cols": 8}, ValueError,
     "SparseConfig.stream_bits must hold one row of X (8 x int8 = 64 bits), not 32"),
    ({"lanes": 1, "stream_bits": 32, "acc_bits": 64}, ValueError,
     "SparseConfig.stream_bits must hold one output row (1 x 64 = 64 bits), not 32"),
])
def test_validation_messages(kwargs, exc, message):
    with pytest.raises(exc) as info:
        SparseConfig(**kwargs)
    assert message in str(info.value)


def test_json_round_trip_hash_and_kind():
    c = SparseConfig(lanes=4, a_dtype="uint8", x_dtype="int4", acc_bits=24, dense_cols=2,
                     x_buffer="banked", x_banks=8, stream_bits=128, col_bits=10, max_cols=1000)
    text = c.to_json()
    assert json.loads(text)["kind"] == "sparse"
    assert SparseConfig.from_json(text) == c and config_from_json(text) == c
    assert config_from_dict(json.loads(text)) == c
    assert c.config_hash != SparseConfig().config_hash
    assert c.top_name == f"accelgen_sparse_{c.config_hash[:8]}"
    with pytest.raises(ValueError, match="SparseConfig data must have kind 'sparse', not 'gemm'"):
        SparseConfig.from_dict(GemmConfig().to_dict())
    with pytest.raises(ValueError, match="SparseConfig has no field\\(s\\) 'rows'"):
        SparseConfig.from_dict({"rows": 4})
    assert "L=4 P=2" in c.describe()


def test_register_map_and_dispatch():
    cfg = SparseConfig(lanes=4, dense_cols=2, x_buffer="banked", x_banks=8, stream_bits=128,
                       col_bits=10, max_cols=1000)
    rm = sparse_register_map(cfg)
    assert register_map(cfg) == rm
    assert rm["ID"].reset == ID_SPARSE != ID_GEMM
    cfg0 = rm["CFG0"]
    assert [(cfg0.reset & f.mask) >> f.lsb for f in cfg0.fields] == [4, 2, 10, 1, 8]
    assert rm["MAX_COLS"].reset == 1000 and rm["MAX_NNZ"].reset == cfg.max_nnz
    assert rm.counters == ("JOB_CYCLES", "LOAD_CYCLES", "NNZ", "LANE_BUSY_CYCLES",
                           "IN_STALL_CYCLES", "CONFLICT_STALL_CYCLES", "OUT_STALL_CYCLES")
    assert [e.name for e in rm.errors] == ["NONE", "BAD_DIM", "OVER_LIMIT", "COL_RANGE",
                                           "ROW_MISMATCH", "SHORT_STREAM", "LONG_STREAM"]
    assert max(r.offset for r in rm.registers) < 1 << rm.addr_width
    with pytest.raises(TypeError, match="sparse_register_map\\(\\) needs a SparseConfig"):
        sparse_register_map(GemmConfig())


# -- the host's stream packing against the manifest's description ----------------------------

@pytest.mark.parametrize("cfg", [
    SparseConfig(),                                                          # 32-bit slots
    SparseConfig(lanes=3, a_dtype="int4", stream_bits=64, col_bits=9, max_cols=300),  # 21-bit
])
def test_entry_packing_follows_the_manifest(cfg):
    A = smx.uniform(7, 50, 0.2, 1, lo=cfg.a.min, hi=cfg.a.max).tolil()
    A[2] = 0                                                # an empty row: a placeholder
    v, c, last, empty = csr_entries(to_csr("A", A, cfg.a))
    assert empty.sum() == 1
    raw = pack_entries(cfg, v, c, last, empty)
    assert len(raw) == -(-len(v) // cfg.lanes) * cfg.stream_bits // 8
    segment = sparse_stream_formats(cfg)["s_axis"]["segments"][1]
    fmt = {f["name"]: f for f in segment["entry"]["fields"]}
    bits = int.from_bytes(raw, "little")
    for e in range(len(v)):
        word = bits >> ((e // cfg.lanes) * cfg.stream_bits + (e % cfg.lanes) * cfg.slot_bits)

        def field(name):
            f = fmt[name]
            return word >> f["lsb"] & ((1 << f["bits"]) - 1)
        val = field("value")
        val -= (val >> (cfg.a.bits - 1)) << cfg.a.bits
        assert (val, field("col"), field("last"), field("empty")) == (v[e], c[e], last[e],
                                                                      empty[e])


def test_unpack_rows_wraps_and_orders():
    cfg = SparseConfig(lanes=2, acc_bits=24, dense_cols=2, stream_bits=128, col_bits=5,
                       max_cols=32)
    rows = np.array([[1, -2], [-(1 << 23), (1 << 23) - 1], [5, 6]])
    assert cfg.rows_per_beat == 2                   # 2 rows of 48 bits per 128-bit beat
    frame = bytearray()
    for i, r in enumerate(rows):
        for v in r:
            frame += int(v & 0xFFFFFF).to_bytes(3, "little")
        if i % 2 == 1 or i == len(rows) - 1:
            frame += bytes(-len(frame) % 16)
    np.testing.assert_array_equal(unpack_rows(cfg, bytes(frame), 3), rows)


# -- generated artifacts ----------------------------------------------------------------------

CONFIGS = [
    SparseConfig(lanes=3, stream_bits=128, col_bits=8, max_cols=200),
    SparseConfig(lanes=4, a_dtype="uint4", x_dtype="int16", acc_bits=48, dense_cols=2,
                 x_buffer="banked", x_banks=4, stream_bits=128, col_bits=7, max_cols=128),
]


@pytest.fixture(scope="module", params=CONFIGS, ids=["L3", "L4-banked-P2"])
def design(request, tmp_path_factory):
    return request.param, generate(request.param, tmp_path_factory.mktemp("gen"))


def test_manifest_contents(design):
    cfg, d = design
    man = json.loads(d.manifest.read_text())
    assert man["kind"] == "sparse" and man["top"] == cfg.top_name
    assert SparseConfig.from_dict(man["config"]) == cfg
    ports = {p["name"]: p for p in man["ports"]}
    assert ports["s_axis_tdata"]["width"] == ports["m_axis_tdata"]["width"] == cfg.stream_bits
    assert not any("__" in p for p in ports)
    text = d.verilog.read_text()
    for p in ports.values():
        assert re.search(rf"\b(input|output)\s+(\[\d+:0\]\s+)?{p['name']};", text), p["name"]
    assert [c["name"] for c in man["csrs"]] == [r.name for r in sparse_register_map(cfg).registers]
    seg_x, seg_a = man["streams"]["s_axis"]["segments"]
    assert seg_x["words_per_beat"] == cfg.x_rows_per_beat
    assert seg_a["entries_per_beat"] == cfg.lanes and seg_a["slot_bits"] == cfg.slot_bits
    assert [f["name"] for f in seg_a["entry"]["fields"]] == ["value", "col", "last", "empty"]
    assert man["streams"]["m_axis"]["row_format"]["rows_per_beat"] == cfg.rows_per_beat
    assert man["counters"][0] == "JOB_CYCLES"


def test_c_header_compiles_and_matches(design, tmp_path):
    cfg, d = design
    rmap = sparse_register_map(cfg)
    src = tmp_path / "t.c"
    checks = "\n".join(f'_Static_assert(ACCELGEN_SPARSE_{r.name} == {r.offset}u, "{r.name}");'
                       for r in rmap.registers)
    checks += "\n_Static_assert(ACCELGEN_SPARSE_ERR_COL_RANGE == 3u, \"err\");"
    src.write_text(f'#include "{d.header}"\n{checks}\nint main(void) {{ return 0; }}\n')
    gcc = toolchain.cxx()
    if not gcc.found:
        pytest.skip(gcc.problem)
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-c", str(src), "-o",
                    str(tmp_path / "t.o")], check=True)


@pytest.mark.verilator
def test_verilator_lint_wall_with_scoped_waivers(design):
    cfg, d = design
    env = toolchain.verilator_env()
    vl = toolchain.verilator().path
    r = subprocess.run([vl, "--lint-only", "-Wall", str(d.lint), str(d.verilog),
                        "--top-module", cfg.top_name], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "%Warning" not in r.stderr, r.stderr[:3000]
    vlt = d.lint.read_text()
    for rule in LINT_WAIVERS:
        assert f'lint_off -rule {rule} -file "*{cfg.top_name}.v"' in vlt


@pytest.mark.synth
def test_yosys_synth_no_latches(design):
    cfg, d = design
    ys = toolchain.yosys()
    script = (f"read_verilog {d.verilog.name}; synth -top {cfg.top_name} -run begin:fine; "
              f"select -assert-none t:$dlatch t:$adlatch t:$dlatchsr; check -assert; stat")
    r = subprocess.run([ys.path, "-q", "-l", "yosys.log", "-p", script], capture_output=True,
                       text=True, cwd=d.out_dir)
    log = (d.out_dir / "yosys.log").read_text()
    assert r.returncode == 0, r.stderr + log[-3000:]
    assert "Latch inferred" not in log and "Found and reported 0 problems" in log


def test_cli_generate_sparse(tmp_path):
    cfg = SparseConfig(lanes=2, stream_bits=64, col_bits=5, max_cols=32)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.to_json())
    r = subprocess.run([sys.executable, "-m", "accelgen.host.cli", "generate", "--config",
                        str(cfg_path), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["top"] == cfg.top_name and man["kind"] == "sparse"
