"""ASIC-style estimate: technology-independent synthesis, gate counts, CMOS transistors.

Without a PDK, the way area scales with a config still shows in a generic gate
netlist. Yosys synthesizes the accelerator (``synth -flatten`` up to the fine
stage, ``techmap``, then ``abc -g`` onto simple gates) and this module counts the
cells and converts them to transistors with :data:`CMOS_TRANSISTORS`.

Memories are left unmapped (``memory -nomap``): mapping them to flip-flops is
both wrong for an ASIC (it would use SRAM macros) and very slow. They are
reported separately in bits, with an SRAM-cell transistor count: 6T for a
single-port cell, 8T for one write and one read port (the usual two-port
register-file cell), plus 2 per further port.

Transistor table (static CMOS, textbook counts)
-----------------------------------------------
=====================================  ====  ===============================================
cell (Yosys internal gate)             T     why
=====================================  ====  ===============================================
``$_NOT_``                              2    inverter
``$_BUF_``                              4    two inverters
``$_NAND_`` / ``$_NOR_``                4    2-input complementary gate
``$_AND_`` / ``$_OR_``                  6    NAND/NOR + inverter
``$_ANDNOT_`` / ``$_ORNOT_``            6    inverter on one input + NOR/NAND
``$_XOR_`` / ``$_XNOR_``               12    static complementary XOR
``$_AOI3_`` / ``$_OAI3_``               6    AOI21 / OAI21
``$_AOI4_`` / ``$_OAI4_``               8    AOI22 / OAI22
``$_MUX_``                             12    static 2:1 mux (AOI22 + 2 inverters)
``$_NMUX_``                            10    inverting 2:1 mux
D flip-flop ``$_DFF_*``                24    master-slave, transmission gates + 4 inverters
  + synchronous reset/set               +6   AND/OR gate on D
  + clock enable                       +12   2:1 mux on D
  + asynchronous reset/set              +4   NAND/NOR in both latches
=====================================  ====  ===============================================

These are estimates for comparing configs, not a sign-off area: a real standard-
cell library has larger cells (full adders, AOIs) that do better than this
count, and routing, clock tree and SRAM periphery are not included.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

from . import cache, report
from .runner import Progress, SynthError, run_tool, select_tools

__all__ = ["CMOS_TRANSISTORS", "ABC_GATES", "run_asic", "transistors", "sram_transistors"]

#: Transistors per Yosys internal gate cell (see the module docstring).
CMOS_TRANSISTORS = {
    "$_NOT_": 2, "$_BUF_": 4, "$_NAND_": 4, "$_NOR_": 4, "$_AND_": 6, "$_OR_": 6,
    "$_ANDNOT_": 6, "$_ORNOT_": 6, "$_XOR_": 12, "$_XNOR_": 12, "$_AOI3_": 6, "$_OAI3_": 6,
    "$_AOI4_": 8, "$_OAI4_": 8, "$_MUX_": 12, "$_NMUX_": 10,
}
DFF_BASE, DFF_SYNC_RESET, DFF_ENABLE, DFF_ASYNC = 24, 6, 12, 4

#: Gate library ABC maps onto.
ABC_GATES = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX,NMUX,AOI3,OAI3,AOI4,OAI4"

TOP = "accelgen_asic"

def _ff_transistors(cell: str) -> int | None:
    # Yosys fine-grained FF names: $_DFF_P_, $_DFF_PP0_ (async reset), $_DFFE_PP_,
    # $_DFFE_PP0P_ (async reset + enable), $_SDFF_PP0_, $_SDFFE_PP0P_, $_SDFFCE_PP0P_,
    # $_DFFSR_PNN_, $_DFFSRE_PNNP_, $_ALDFF_PP_, $_ALDFFE_PPP_, $_DLATCH_P_, ...
    m = re.match(r"^\$_([A-Z]+)_([NP01]+)_$", cell)
    if not m or ("DFF" not in m[1] and "DLATCH" not in m[1]):
        return None
    kind, pol = m[1], m[2]
    t = DFF_BASE // 2 if "DLATCH" in kind else DFF_BASE
    if kind.startswith("SDFF"):
        t += DFF_SYNC_RESET
    if kind.endswith("E"):
        t += DFF_ENABLE
    if (kind == "DFF" and len(pol) == 3) or (kind == "DFFE" and len(pol) == 4):
        t += DFF_ASYNC
    if kind.startswith(("DFFSR", "ALDFF")):
        t += 2 * DFF_ASYNC
    return t


def transistors(cells: dict[str, int]) -> dict:
    """Transistor estimate of a generic gate netlist (memories excluded).

    Returns
    -------
    dict
        ``{"logic": T, "flops": T, "flop_count": n, "unknown": {cell: n}}``;
        ``unknown`` lists cells the table does not cover (counted as zero).
    """
    logic = flops = nflops = 0
    unknown = {}
    for cell, n in cells.items():
        if cell in CMOS_TRANSISTORS:
            logic += CMOS_TRANSISTORS[cell] * n
        elif (t := _ff_transistors(cell)) is not None:
            flops += t * n
            nflops += n
        elif cell.startswith("$mem"):
            continue
        else:
            unknown[cell] = n
    return {"logic": logic, "flops": flops, "flop_count": nflops, "unknown": unknown}


def sram_transistors(bits: int, read_ports: int, write_ports: int) -> int:
    """Bit-cell transistors of a memory (6T single port, 8T 1W1R, +2 per extra port)."""
    ports = read_ports + write_ports
    per_bit = 6 if ports <= 1 else 8 + 2 * max(0, ports - 2)
    return bits * per_bit


def _memories(dump: str) -> list[dict]:
    mems = []
    for block in re.split(r"\n\s*cell ", dump)[1:]:
        header = block.split("\n", 1)[0].split()
        if not header or not header[0].startswith("$mem"):
            continue
        params = dict(re.findall(r"parameter \\(\w+) (\S+)", block))

        def num(name):
            v = params.get(name, "0")
            if "'" in v:
                width, bits = v.split("'", 1)
                return int(bits.replace("x", "0").replace("z", "0") or "0", 2)
            return int(v)

        name = header[1] if len(header) > 1 else "?"
        mems.append({"name": name.lstrip("\\"), "width": num("WIDTH"), "depth": num("SIZE"),
                     "read_ports": num("RD_PORTS"), "write_ports": num("WR_PORTS")})
    for mem in mems:
        mem["bits"] = mem["width"] * mem["depth"]
        mem["transistors"] = sram_transistors(mem["bits"], mem["read_ports"], mem["write_ports"])
    return mems


SCRIPT = """read_rtlil asic.il
hierarchy -top {top}
synth -top {top} -flatten -run begin:fine
tee -q -o memories.txt dump t:$mem_v2 t:$mem
opt -fast -full
techmap
opt -fast
abc -g {gates}
opt_clean -purge
tee -q -o stat.json stat -json
tee -q -o stat.txt stat -tech cmos
"""


def run_asic(config, *, tools: str | None = None, progress: Progress | None = None,
             use_cache: bool = True) -> dict:
    """Generic-gate synthesis of ``config`` with cell counts and a transistor estimate.

    Returns
    -------
    dict
        ``flow`` ("asic"), ``design``, ``config``, ``config_hash``, ``cells``
        (gate type -> count), ``gates`` (total gate cells), ``flops``,
        ``transistors`` ({"logic", "flops", "memory", "total"}),
        ``nand2_equivalents`` (logic and flops / 4), ``memories`` (name, width,
        depth, ports, bits, transistors), ``memory_bits``, ``seconds``,
        ``tools``, ``logs``, ``cached``.

    Raises
    ------
    SynthError
        Yosys missing or failing (with the log path).
    """
    from .flow import _fail, _now, _tool_info

    found = select_tools(["yosys"], tools)
    tool_info = _tool_info(found)
    netlist = cache.Netlist({"flow": "asic", "config_hash": config.config_hash},
                            lambda: (_rtlil(config), None))
    material = {"flow": "asic", "config_hash": config.config_hash, "netlist": netlist.digest,
                "script": SCRIPT, "gates": ABC_GATES, "tools": tool_info}
    key = cache.entry_key(material)
    if use_cache and (hit := cache.lookup(key)) is not None:
        return {**hit, "cached": True}
    root = cache.cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with cache.locked(key, f"the ASIC estimate of {config.top_name}"):
        if use_cache and (hit := cache.lookup(key)) is not None:
            return {**hit, "cached": True}
        (root / ".work").mkdir(exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=root / ".work"))
        try:
            if progress:
                progress("elaborate", config.describe())
            t0 = time.monotonic()
            (work / "asic.il").write_text(netlist.elaborated()[0])
            result = _run(config, found, work, progress, round(time.monotonic() - t0, 1))
        except SynthError as error:
            raise _fail(work, key, error) from None
        except BaseException:
            cache.discard(work)
            raise
        entry = cache.store_dir(key)
        result.update(tools=tool_info, created=_now(), material=material, cache_key=key,
                      netlist_digest=netlist.digest,
                      build_dir=str(entry), logs={"yosys": str(entry / "yosys.log")})
        (work / "asic.il").unlink(missing_ok=True)
        (work / "memories.txt").unlink(missing_ok=True)
        (work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        cache.discard(entry)
        os.rename(work, entry)
    return {**result, "cached": False}


def _rtlil(config) -> str:
    from amaranth.back import rtlil
    from accelgen.hdl.generate import build_top
    return rtlil.convert(build_top(config), name=TOP)


def _run(config, found, work: Path, progress, elaborate_s: float) -> dict:
    """Yosys on ``work/asic.il`` (written by the caller)."""
    (work / "asic.ys").write_text(SCRIPT.format(top=TOP, gates=ABC_GATES))
    yosys_s = round(run_tool(found["yosys"], ["-s", "asic.ys"], cwd=work,
                             log=work / "yosys.log", stage="yosys", progress=progress), 1)
    cells = report.yosys_cells(work / "stat.json")
    mems = _memories((work / "memories.txt").read_text(errors="replace"))
    t = transistors(cells)
    mem_t = sum(mem["transistors"] for mem in mems)
    gates = sum(n for c, n in cells.items() if c in CMOS_TRANSISTORS)
    return {
        "flow": "asic", "design": config.describe(), "config": config.to_dict(),
        "config_hash": config.config_hash, "top": config.top_name,
        "source_digest": cache.source_digest(),
        "cells": dict(sorted(cells.items(), key=lambda kv: -kv[1])),
        "gates": gates, "flops": t["flop_count"],
        "transistors": {"logic": t["logic"], "flops": t["flops"], "memory": mem_t,
                        "total": t["logic"] + t["flops"] + mem_t},
        "nand2_equivalents": round((t["logic"] + t["flops"]) / 4),
        "unknown_cells": t["unknown"],
        "memories": mems, "memory_bits": sum(mem["bits"] for mem in mems),
        "seconds": {"elaborate": elaborate_s, "yosys": yosys_s},
    }
