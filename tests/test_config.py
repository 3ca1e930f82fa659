"""GemmConfig: defaults, validation messages, JSON round trip, stable hash."""

import json

import pytest

from accelgen.hdl import GemmConfig, config_from_json


def test_defaults_are_8x8_int8_os():
    c = GemmConfig()
    assert (c.rows, c.cols, c.dataflow, c.a_dtype, c.b_dtype) == (8, 8, "os", "int8", "int8")
    assert c.stream_bits == 64 and c.acc_bits == 32 and c.double_buffer


def test_frozen():
    with pytest.raises(AttributeError):
        GemmConfig().rows = 4


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"rows": 0}, ValueError, "GemmConfig.rows must be in 1..64, not 0"),
    ({"cols": 65}, ValueError, "GemmConfig.cols must be in 1..64, not 65"),
    ({"rows": "8"}, TypeError, "GemmConfig.rows must be an integer, not '8'"),
    ({"rows": True}, TypeError, "GemmConfig.rows must be an integer, not True"),
    ({"dataflow": "is"}, ValueError, "GemmConfig.dataflow must be one of 'os', 'ws', not 'is'"),
    ({"a_dtype": "int3"}, ValueError, "GemmConfig.a_dtype must be one of 'int4', 'uint4', "
                                      "'int8', 'uint8', 'int16', 'uint16', not 'int3'"),
    ({"b_dtype": 8}, TypeError, "GemmConfig.b_dtype must be a string"),
    ({"acc_bits": 30}, ValueError, "GemmConfig.acc_bits must be a multiple of 8, not 30"),
    ({"a_dtype": "int16", "b_dtype": "int16", "acc_bits": 24}, ValueError,
     "GemmConfig.acc_bits must be at least the product width 32 (int16 x int16), not 24"),
    ({"stream_bits": 48}, ValueError, "GemmConfig.stream_bits must be a power of two in 32..512, "
                                      "not 48"),
    ({"stream_bits": 1024}, ValueError, "GemmConfig.stream_bits must be in 32..512, not 1024"),
    ({"acc_kib": 0}, ValueError, "GemmConfig.acc_kib must be in 1..4096, not 0"),
    ({"double_buffer": 1}, TypeError, "GemmConfig.double_buffer must be a bool, not 1"),
    ({"counter_bits": 16}, ValueError, "GemmConfig.counter_bits must be in 24..64, not 16"),
    ({"counter_bits": 65}, ValueError, "GemmConfig.counter_bits must be in 24..64, not 65"),
    ({"counter_bits": 32.0}, TypeError, "GemmConfig.counter_bits must be an integer, not 32.0"),
    ({"serial_setup": 1}, TypeError, "GemmConfig.serial_setup must be a bool, not 1"),
    ({"csr_fields_only": "yes"}, TypeError,
     "GemmConfig.csr_fields_only must be a bool, not 'yes'"),
])
def test_validation_messages(kwargs, exc, message):
    with pytest.raises(exc) as info:
        GemmConfig(**kwargs)
    assert message in str(info.value)


def test_json_round_trip_and_hash():
    c = GemmConfig(rows=4, cols=8, dataflow="ws", a_dtype="uint8", b_dtype="int4", acc_bits=24,
                   stream_bits=128, double_buffer=False)
    text = c.to_json()
    assert json.loads(text)["kind"] == "gemm"
    assert GemmConfig.from_json(text) == c
    assert config_from_json(text) == c
    assert GemmConfig.from_json(text).config_hash == c.config_hash
    assert c.config_hash != GemmConfig().config_hash
    # stable across processes and versions of Python: pinned value for the default config
    assert GemmConfig().config_hash == GemmConfig.from_json(GemmConfig().to_json()).config_hash
    assert len(c.config_hash) == 64 and c.top_name == f"accelgen_gemm_{c.config_hash[:8]}"


def test_from_dict_rejects_unknown_fields_and_kinds():
    with pytest.raises(ValueError, match="GemmConfig has no field\\(s\\) 'bogus'"):
        GemmConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="kind"):
        GemmConfig.from_dict({"kind": "sparse"})


def test_derived_depths():
    c = GemmConfig()
    assert c.a_depth == 16 * 1024 * 8 // 64 and c.acc_depth == 64 * 1024 * 8 // 256


def test_small_fpga_fields_leave_existing_configs_alone():
    # counter_bits, serial_setup and csr_fields_only came later: at their defaults they
    # stay out of the JSON, so every earlier config keeps its hash and top module name
    c = GemmConfig()
    assert not {"counter_bits", "serial_setup", "csr_fields_only"} & set(c.to_dict())
    assert c.config_hash == "c3b50cdc87d584691ca4647263c061b6209a37d159675a081c060f5d007b8bfc"
    small = GemmConfig(counter_bits=24, serial_setup=True, csr_fields_only=True)
    d = small.to_dict()
    assert (d["counter_bits"], d["serial_setup"], d["csr_fields_only"]) == (24, True, True)
    assert GemmConfig.from_json(small.to_json()) == small
    assert config_from_json(small.to_json()).config_hash == small.config_hash != c.config_hash
    assert small.describe().endswith("24-bit counters, serial setup, CSR fields only")
    assert c.describe().endswith("64-bit streams")


@pytest.mark.parametrize("kwargs, cycles", [
    ({}, 8),
    ({"serial_setup": True}, 3 + 6 * 17),                                  # OS, R, C powers of 2
    ({"serial_setup": True, "dataflow": "ws"}, 3 + 5 * 17),
    ({"serial_setup": True, "rows": 3, "cols": 5}, 3 + 6 * 17 + 2 * 18),  # ceil(M/3), ceil(N/5)
    ({"serial_setup": True, "rows": 3, "cols": 4, "dataflow": "ws"}, 3 + 5 * 17 + 18),
])
def test_setup_cycles(kwargs, cycles):
    assert GemmConfig(**kwargs).setup_cycles == cycles
