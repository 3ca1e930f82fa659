"""Verilog generation: ``<top>.v``, ``manifest.json``, ``<top>.h`` and ``lint.vlt``.

The manifest is the machine-readable contract of a generated design: the driver,
the testbenches and outside users read ports, CSRs and stream formats from it.
"""

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

from .config import ConfigBase, GemmConfig
from .gearbox import words_per_beat, beats_per_word
from .regs import gemm_register_map
from .top import GemmTop
from .sparse_config import SparseConfig
from .sparse_regs import sparse_register_map
from .sparse import SparseTop, sparse_stream_formats

__all__ = ["GeneratedDesign", "generate", "verilog_text", "LINT_WAIVERS", "stream_formats",
           "build_top"]

# Verilator -Wall rules that Amaranth's Verilog output triggers by construction, with
# the reason each is harmless. Waived only for the generated file.
LINT_WAIVERS = {
    "UNUSEDSIGNAL": "Amaranth keeps named intermediate signals and unused slices of "
                    "struct views (e.g. padding lanes, unused AXI prot bits).",
    "PROCASSINIT": "Amaranth gives every register an initial value in its declaration "
                   "and also assigns it in always blocks (reset and init agree).",
    "CASEINCOMPLETE": "Amaranth emits case statements without default; the signal keeps "
                      "its value assigned before the case, so no latch results.",
    "WIDTHEXPAND": "Amaranth zero/sign-extends operands implicitly in arithmetic and "
                   "comparisons; the widths are checked by Amaranth's own shape rules.",
    "WIDTHTRUNC": "Amaranth truncates wide intermediate results on assignment by design "
                  "(modular accumulator arithmetic).",
    "ASCRANGE": "Amaranth emits zero-width and one-bit parts as [0:0]-style ranges.",
    "DECLFILENAME": "All submodules live in the one generated file, named after the top.",
}


@dataclass(frozen=True)
class GeneratedDesign:
    """Paths and metadata of one generated design."""

    top: str
    out_dir: Path
    verilog: Path
    manifest: Path
    header: Path
    lint: Path

    def load_manifest(self) -> dict:
        return json.loads(self.manifest.read_text())


def build_top(config: ConfigBase, **kwargs):
    """The top-level Amaranth component of ``config``."""
    if isinstance(config, GemmConfig):
        return GemmTop(config, **kwargs)
    if isinstance(config, SparseConfig):
        return SparseTop(config, **kwargs)
    raise TypeError(f"No accelerator for config {config!r}")


def register_map(config: ConfigBase):
    if isinstance(config, GemmConfig):
        return gemm_register_map(config)
    if isinstance(config, SparseConfig):
        return sparse_register_map(config)
    raise TypeError(f"No register map for config {config!r}")


@contextlib.contextmanager
def _fast_memory_init():
    """Emit memory initial contents as one RTLIL constant.

    Amaranth 0.5.10 builds a netlist object per bit of every memory's initial
    contents (hundreds of thousands for the accumulator memory), which took a fifth
    of the time to generate Verilog; the constant it ends up writing is the same
    string this builds directly from the integers.
    """
    from amaranth.back import rtlil
    from amaranth.hdl import _nir
    original = rtlil.ModuleEmitter.emit_memory

    def emit_memory(self, cell_idx, cell):
        memory_info = self.memories[cell_idx]
        width, depth = cell.width, cell.depth
        mask = (1 << width) - 1
        total = 0
        for i, row in enumerate(cell.init):
            if row:
                total |= (row & mask) << (i * width)
        n = width * depth
        self.builder.cell("$meminit_v2", ports={
            "ADDR": self.sigspec(),
            "DATA": f"{n}'{total:0{n}b}",
            "EN": self.sigspec(_nir.Value.ones(width)),
        }, parameters={
            "MEMID": memory_info.memid,
            "ABITS": 0,
            "WIDTH": width,
            "WORDS": depth,
            "PRIORITY": 0,
        }, src_loc=cell.src_loc)

    rtlil.ModuleEmitter.emit_memory = emit_memory
    try:
        yield
    finally:
        rtlil.ModuleEmitter.emit_memory = original


def convert(top, name: str) -> str:
    """Verilog text of an Amaranth top (no source locations: stable, smaller output)."""
    with _fast_memory_init():
        return verilog.convert(top, name=name, emit_src=False)


def verilog_text(config: ConfigBase) -> str:
    """Verilog of the accelerator top for ``config``."""
    return convert(build_top(config), config.top_name)


def _ports(top) -> list:
    ports = []
    for name, member in top.signature.members.items():
        ports.append({"name": name, "direction": "input" if member.flow == wiring.In else "output",
                      "width": member.shape.width if hasattr(member.shape, "width")
                      else len(getattr(top, name))})
    return ports


def stream_formats(cfg: GemmConfig) -> dict:
    """Payload formats of the two streams (also used by the driver to pack)."""
    if isinstance(cfg, SparseConfig):
        return sparse_stream_formats(cfg)
    sb = cfg.stream_bits

    def seg(name, word_bits, elems, dtype, words, what):
        return {"name": name, "word_bits": word_bits, "elements_per_word": elems,
                "element": dtype, "words": words, "word_contents": what,
                "words_per_beat": words_per_beat(word_bits, sb) if word_bits <= sb else None,
                "beats_per_word": beats_per_word(word_bits, sb) if word_bits > sb else None}

    if cfg.dataflow == "os":
        a = seg("A", cfg.a_word_bits, cfg.rows, cfg.a_dtype, "ceil(M/R)*K",
                "word i*K+k holds A[i*R+r, k] at element r (rows past M are zero)")
        b = seg("B", cfg.b_word_bits, cfg.cols, cfg.b_dtype, "ceil(N/C)*K",
                "word j*K+k holds B[k, j*C+c] at element c (columns past N are zero)")
        out_order = ("for i in ceil(M/R) tiles, j in ceil(N/C) tiles (j inner): rows "
                     "i*R+r < M, each row holding C[i*R+r, j*C+c] at lane c")
    else:
        a = seg("A", cfg.a_word_bits, cfg.rows, cfg.a_dtype, "ceil(K/R)*M",
                "word kt*M+m holds A[m, kt*R+r] at element r (k past K is zero)")
        b = seg("B", cfg.b_word_bits, cfg.cols, cfg.b_dtype, "ceil(K/R)*ceil(N/C)*R",
                "word (jt*ceil(K/R)+kt)*R+r holds B[kt*R+r, jt*C+c] at element c (zero padded)")
        out_order = ("for j in ceil(N/C) tiles, m in 0..M-1: row holding C[m, j*C+c] at lane c")
    row = {"lanes": cfg.cols, "lane_bits": cfg.acc_bits, "row_bits": cfg.acc_word_bits}
    row8 = {"lanes": cfg.cols, "lane_bits": 8, "row_bits": cfg.cols * 8}
    for r in (row, row8):
        r["rows_per_beat"] = words_per_beat(r["row_bits"], sb) if r["row_bits"] <= sb else None
        r["beats_per_row"] = beats_per_word(r["row_bits"], sb) if r["row_bits"] > sb else None
    packing = ("word_bits <= tdata: floor(tdata/word_bits) words per beat, word p at bits "
               "[p*word_bits, (p+1)*word_bits), a segment's last beat zero-padded and the next "
               "segment starting on a new beat; word_bits > tdata: ceil(word_bits/tdata) beats "
               "per word, low bits first. Elements little-endian within a word, two's complement.")
    return {
        "s_axis": {"direction": "in", "tdata_bits": sb, "byte_order": "little-endian",
                   "frame": ("one frame per job, TLAST on the last beat: OS: A words of tile 0 "
                             "(the first K words), then all B words, then the remaining A words "
                             "(if any); WS: all A words, then all B words"),
                   "segments": [a, b], "packing": packing},
        "m_axis": {"direction": "out", "tdata_bits": sb, "byte_order": "little-endian",
                   "frame": "one frame per job (none with MODE.NO_OUTPUT), TLAST on the last beat",
                   "row_order": out_order,
                   "row_formats": {"acc": {**row, "element": f"int{cfg.acc_bits}"},
                                   "requant": {**row8, "element": "int8"}},
                   "packing": packing.replace("word", "row")},
    }


def _tool_versions() -> dict:
    try:
        from accelgen.toolchain import tool_versions
    except ImportError:      # pragma: no cover - root package always present when installed
        return {}
    return tool_versions()


def manifest(config: ConfigBase, top_component=None) -> dict:
    top = top_component if top_component is not None else build_top(config)
    rmap = register_map(config)
    import amaranth
    try:
        from accelgen import __version__ as accelgen_version
    except ImportError:      # pragma: no cover
        accelgen_version = "unknown"
    return {
        "top": config.top_name,
        "kind": config.KIND,
        "config": config.to_dict(),
        "config_hash": config.config_hash,
        "clock": {"name": "aclk", "reset": "aresetn", "reset_active_low": True,
                  "reset_synchronous": True},
        "ports": _ports(top),
        "csr_bus": {"protocol": "AXI4-Lite", "data_bits": 32, "addr_bits": rmap.addr_width},
        "csrs": rmap.to_manifest(),
        "counters": list(rmap.counters),
        "errors": [{"code": e.code, "name": e.name, "description": e.description}
                   for e in rmap.errors],
        "streams": stream_formats(config),
        "lint_waivers": sorted(LINT_WAIVERS),
        "tools": {"accelgen": accelgen_version, "amaranth": amaranth.__version__,
                  **_tool_versions()},
    }


def lint_config(top: str) -> str:
    lines = ["`verilator_config", f"// Lint waivers for {top}.v, generated by accelgen.",
             "// Scoped to this generated file only; each rule with the reason it is harmless.", ""]
    for rule, why in LINT_WAIVERS.items():
        lines.append(f"// {rule}: {why}")
        lines.append(f'lint_off -rule {rule} -file "*{top}.v"')
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def generate(config: ConfigBase, out_dir) -> GeneratedDesign:
    """Write ``<top>.v``, ``manifest.json``, ``<top>.h`` and ``lint.vlt`` into ``out_dir``."""
    if not isinstance(config, ConfigBase):
        raise TypeError(f"generate() needs an accelerator config, not {config!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    top_name = config.top_name
    t0 = time.monotonic()
    top = build_top(config)
    text = convert(top, top_name)
    man = manifest(config, top)
    man["generation_seconds"] = round(time.monotonic() - t0, 3)
    rmap = register_map(config)
    paths = GeneratedDesign(top_name, out, out / f"{top_name}.v", out / "manifest.json",
                            out / f"{top_name}.h", out / "lint.vlt")
    _atomic_write(paths.verilog, text)
    _atomic_write(paths.manifest, json.dumps(man, indent=2) + "\n")
    _atomic_write(paths.header, rmap.to_c_header(f"{top_name.upper()}_H", top_name))
    _atomic_write(paths.lint, lint_config(top_name))
    return paths
