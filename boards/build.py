"""Board builds: a bitstream of the accelerator for an amaranth-boards platform.

:func:`run_board` elaborates :class:`~.top.BoardTop` (PLL, UART bridge,
accelerator) for the board, extracts Amaranth's build plan into the cache entry,
and runs its script (Yosys, nextpnr, ecppack/icepack) with the selected tools and
a timing report. The result dict has the same fields as an out-of-context run
(:func:`.flow.run_ooc`), plus ``board``, ``bitstream``, ``clock_hz_actual``,
``pll`` and ``baud``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from accelgen import toolchain

from . import cache, report
from .flow import (DEFAULT_TARGET_MHZ, RESULT_SCHEMA, SEED, _fail, _now, _tool_info,
                   classify_nextpnr_error, dsp_breakdown, dsp_modes, dsp_prelude,
                   dsp_shortfall, fit_problems, primitives_for, summarize, synth_options)
from .runner import Progress, SynthError, forced_tools, run_tool, select_tools
from .targets import board_part, board_platform
from .top import BoardTop

__all__ = ["run_board", "BUILD_NAME"]

#: Base name of the build products (``top.bit``, ``top.bin``, ``top.tim``, ...).
BUILD_NAME = "top"


def run_board(config, board: str, *, target_mhz: float | None = None, tools: str | None = None,
              baud: int = 115200, fifo_depth: int = 64, seed: int = SEED, dsp: str = "auto",
              progress: Progress | None = None, use_cache: bool = True) -> dict:
    """Build a bitstream of ``config`` for ``board``.

    Parameters
    ----------
    config : GemmConfig
    board : str
        Board name (see :mod:`.targets`), e.g. ``"ulx3s-85f"`` or ``"icebreaker"``.
    target_mhz : float, optional
        Accelerator clock; the PLL makes the closest frequency it can. Default:
        :data:`.flow.DEFAULT_TARGET_MHZ` of the board's family.
    tools, seed, dsp, progress, use_cache
        As for :func:`.flow.run_ooc`.
    baud, fifo_depth : int
        UART rate and bridge FIFO depth (beats).

    Returns
    -------
    dict
        See the module docstring; ``bitstream`` is the path of the ``.bit``/``.bin``.

    Raises
    ------
    SynthError
        Tool missing, does not fit, or a tool failed (with the log path).
    ValueError
        Unknown board, or a clock the PLL cannot make.
    """
    platform = board_platform(board)
    part = board_part(platform)
    target = float(target_mhz if target_mhz is not None else DEFAULT_TARGET_MHZ[part.family])
    packer = "ecppack" if part.family == "ecp5" else "icepack"
    with forced_tools(["yosys", part.nextpnr_tool, packer], tools):
        found = select_tools(["yosys", part.nextpnr_tool, packer])
        env = toolchain.amaranth_build_env()
    # Check the PLL before anything slow runs (raises ValueError with the reason).
    from .top import ecp5_pll, ice40_pll
    f_in = platform.default_clk_frequency
    if abs(target * 1e6 - f_in) >= 1:
        (ecp5_pll if part.family == "ecp5" else ice40_pll)(f_in, target * 1e6)

    modes = dsp_modes(dsp, part.family)
    for mode in modes:
        try:
            return _cached_board(config, board, part, target, baud, fifo_depth, seed, mode,
                                 found, env, progress, use_cache)
        except SynthError as error:
            if mode == modes[-1] or not dsp_shortfall(error):
                raise
            if progress:
                progress("build", f"too few DSP blocks with dsp={mode!r}; trying the next mode")
    raise AssertionError("unreachable")


def _cached_board(config, board, part, target, baud, fifo_depth, seed, dsp, found, env,
                  progress, use_cache):
    # A platform can prepare one design only: each attempt gets a fresh one.
    platform = board_platform(board)
    tool_info = _tool_info(found)
    material = {"flow": "board", "config_hash": config.config_hash,
                "source_digest": cache.source_digest(), "board": type(platform).__name__,
                "device": part.code, "target_mhz": target, "baud": baud,
                "fifo_depth": fifo_depth, "seed": seed, "dsp": dsp, "tools": tool_info}
    key = cache.entry_key(material)
    if use_cache and (hit := cache.lookup(key)) is not None:
        return {**hit, "cached": True}
    if use_cache:
        cache.raise_known_misfit(key)
    root = cache.cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with cache.locked(key, f"the {type(platform).__name__} build of {config.top_name}"):
        if use_cache and (hit := cache.lookup(key)) is not None:
            return {**hit, "cached": True}
        (root / ".work").mkdir(exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=root / ".work"))
        try:
            result = _build(config, platform, part, target, baud, fifo_depth, seed, dsp, env,
                            work, progress)
        except SynthError as error:
            raise _fail(work, key, error) from None
        except BaseException:
            cache.discard(work)
            raise
        entry = cache.store_dir(key)
        result.update(tools=tool_info, material=material, cache_key=key,
                      build_dir=str(entry),
                      logs={k: str(entry / v) for k, v in result["logs"].items()},
                      bitstream=str(entry / result["bitstream"]))
        (work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        cache.discard(entry)
        os.rename(work, entry)
    return {**result, "cached": False}


def _build(config, platform, part, target, baud, fifo_depth, seed, dsp, env, work: Path,
           progress) -> dict:
    seconds = {}
    if progress:
        progress("elaborate", f"{config.describe()} on {type(platform).__name__}")
    t0 = time.monotonic()
    top = BoardTop(config, clock_hz=target * 1e6, baud=baud, fifo_depth=fifo_depth)
    hooks = primitives_for(part, dsp)
    if hooks is not None:       # vendor primitives with their registers, as out of context
        hooks.install(platform)
    plan = platform.build(
        top, name=BUILD_NAME, do_build=False, verbose=True,
        synth_opts=synth_options(part, dsp),
        script_after_read="\n".join(dsp_prelude(dsp, BUILD_NAME)) or "# dsp=all",
        script_after_synth="tee -q -o stat.json stat -json",
        nextpnr_opts=f"--report report.json --seed {seed} --timing-allow-fail")
    plan.extract(work)
    seconds["elaborate"] = round(time.monotonic() - t0, 1)
    log = work / "build.log"
    try:
        seconds["build"] = round(run_tool("sh", [f"{plan.script}.sh"], cwd=work, log=log,
                                          stage="build", progress=progress, env=env), 1)
    except SynthError as error:
        cells = _cells(work)
        if cells and (problems := fit_problems(cells, part)):
            raise SynthError("does-not-fit", f"{config.describe()} does not fit "
                             f"{type(platform).__name__} ({part.code}): needs "
                             f"{', '.join(problems)}", log) from None
        raise classify_nextpnr_error(error, config, part) from None
    cells = _cells(work) or {}
    actual_mhz = top.clock_hz_actual / 1e6
    result = summarize(work / "report.json", part, actual_mhz, cells)
    bitstream = f"{BUILD_NAME}.bit" if part.family == "ecp5" else f"{BUILD_NAME}.bin"
    result.update({
        "schema": RESULT_SCHEMA, "flow": "board", "design": config.describe(),
        "config": config.to_dict(), "config_hash": config.config_hash,
        "top": config.top_name, "source_digest": cache.source_digest(),
        "device": part.code, "family": part.family, "board": type(platform).__name__,
        "requested_mhz": target, "clock_hz_actual": top.clock_hz_actual,
        "pll": None if top.pll is None else {"primitive": top.pll.primitive,
                                             "params": top.pll.params,
                                             "f_vco_mhz": top.pll.f_vco / 1e6},
        "baud": baud, "fifo_depth": fifo_depth, "multipliers": dsp,
        "dsp": dsp_breakdown(work / f"{BUILD_NAME}.json", config),
        "seconds": seconds, "created": _now(), "bitstream": bitstream,
        "logs": {"build": "build.log", "yosys": f"{BUILD_NAME}.rpt",
                 "nextpnr": f"{BUILD_NAME}.tim", "report": "report.json"},
    })
    (work / f"{BUILD_NAME}.json").unlink(missing_ok=True)     # the netlist: large, not needed
    return result


def _cells(work: Path) -> dict | None:
    try:
        return report.yosys_cells(work / "stat.json")
    except (OSError, ValueError):
        return None
