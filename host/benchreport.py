"""Markdown of a benchmark result (:func:`accelgen.host.bench.run`).

:func:`report` writes the full ``report.md``; :func:`headline` the short table the
README quotes. Every number comes from the result dict; nothing is recomputed here
except formatting.
"""

__all__ = ["report", "headline", "readme_section", "update_readme", "fmt_s"]


def fmt_s(s) -> str:
    """Seconds with a unit that keeps three significant figures."""
    if s is None:
        return "-"
    for unit, f in (("s", 1), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        if s * f >= 1:
            return f"{s * f:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def _x(v, d=2) -> str:
    return "-" if v is None else f"{v:.{d}f}"


def _pct(v, d=1) -> str:
    return "-" if v is None else f"{v * 100:.{d}f}%"


def _err(v) -> str:
    return "-" if v is None else f"{v * 100:+.3f}%"


def _rng(r, f=_x) -> str:
    if not r:
        return "-"
    return f(r[0]) if r[0] == r[1] else f"{f(r[0])} .. {f(r[1])}"


def _cfg(res, key):
    for c in res["configs"]:
        if c["key"] == key:
            return c
    return {"label": key}


def _table(header, rows) -> list:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _src(r) -> str:
    return "RTL" if r["source"] == "rtl" else "model"


def headline(res: dict, figdir: str = "", amdahl_kinds=("gemm", "sparse")) -> str:
    """The README's table: per config, over the workloads of the run."""
    s = res["summary"]["per_config"]
    lines = []
    rows = []
    for c in res["configs"]:
        x = s.get(c["key"])
        if not x or c["kind"] != "gemm":
            continue
        rows.append([c["label"], f"{x['rtl_rows']}/{x['rows']}",
                     _rng(x["utilization"], _pct),
                     _pct(x["utilization_gmean_layers_and_square"]),
                     _rng(x["compute_to_scalesim"]), _rng(x["job_to_scalesim"]),
                     _rng(x["job_to_lower_bound"]), _rng(x["model_error"], _err),
                     _rng(x["speedup_vs_numpy_f32"]), _rng(x["speedup_vs_numpy_int"], _x0),
                     f"{c['clock_mhz']:g} ({c['clock_source']})"])
    lines += _table(["config", "RTL rows", "utilization", "U geo-mean (layers)",
                     "compute / SCALE-Sim", "job / SCALE-Sim", "job / lower bound",
                     "model error (RTL rows)", "x numpy f32", "x numpy int", "clock MHz"],
                    rows)
    srows = []
    for c in res["configs"]:
        x = s.get(c["key"])
        if not x or c["kind"] != "sparse":
            continue
        srows.append([c["label"], f"{x['rtl_rows']}/{x['rows']}",
                      _rng(x["lane_utilization"], _pct), _rng(x["job_to_lower_bound"]),
                      _rng(x["model_error"], _err), _rng(x["speedup_vs_scipy_f32"]),
                      _rng(x["speedup_vs_dense_array"]),
                      f"{c['clock_mhz']:g} ({c['clock_source']})"])
    if srows:
        lines += [""] + _table(["sparse config", "RTL rows", "lane utilization",
                                "job / lower bound", "model error (RTL rows)", "x scipy f32",
                                "x dense 8x8 array", "clock MHz"], srows)
    am = res["summary"].get("amdahl", {})
    arows = []
    firsts = []
    for kind in amdahl_kinds:
        firsts += [c for c in res["configs"] if c["kind"] == kind][:1]
    for c in firsts:
        for link, packer in ((l, p) for p in ("python", "memcpy") for l in c.get("links", [])):
            v = am.get(c["key"], {}).get(f"{link['key']}:{packer}")
            if v:
                arows.append([c["key"], link["name"], _PACKERS[packer],
                              _rng(v["host_share"], _pct),
                              _rng(v["kernel_speedup"], _x3), _rng(v["achieved_speedup"], _x3),
                              _rng(v["amdahl_bound"], _x3),
                              _rng(v["e2e_speedup_vs_numpy_f32"], _x3)])
    if arows:
        lines += [""] + _table(["config", "link", "packing", "host share", "kernel speedup s",
                                "achieved S", "Amdahl bound", "end-to-end x numpy"], arows)
    return "\n".join(lines) + "\n"


_PACKERS = {"python": "driver (Python, measured)", "memcpy": "at memcpy speed (floor)"}


def _x0(v):
    return "-" if v is None else f"{v:.1f}"


def _x3(v):
    return "-" if v is None else f"{v:.3g}"


def report(res: dict, figures: dict) -> str:
    L = []
    quick = res["quick"]
    L += [f"# accelgen bench{' (--quick)' if quick else ''}", "",
          f"Command: `{res['command']}`  ", f"Created: {res['created']}, "
          f"{res['elapsed_s']:.0f} s wall time." if "elapsed_s" in res else "", ""]
    m = res["machine"]
    t = res["tools"]
    L += [f"Machine: {m.get('cpu')}, {m.get('usable_cpus', m.get('logical_cpus'))} usable CPUs, "
          f"load average {', '.join(f'{x:.1f}' for x in m.get('load_average_1_5_15', []))} "
          f"at the end of the run; Python {m.get('python')}, numpy {m.get('numpy')} "
          f"({(m.get('blas') or {}).get('name')} {(m.get('blas') or {}).get('version')}), "
          f"scipy {m.get('scipy')}.  ",
          "Tools: " + ", ".join(f"{k} {v}" for k, v in sorted(t.items())) + ".", ""]
    L += ["Rows say where their counters come from: **RTL** = the generated Verilog run on "
          "Verilator through the driver, figures read from the accelerator's own counters "
          "(results checked bit-exact against numpy); **model** = the analytic cycle model "
          "(`accelgen.host.callmodel.predict_call`), used where simulating would take too "
          + ("long for `--quick` (more than "
             f"{res['rtl_max_macs']:,} MACs)." if quick and res["rtl_max_macs"] else "long.")
          + " Model error = (model - RTL) / RTL on job cycles.", ""]
    # configs and clocks
    L += ["## Configurations and clocks", ""]
    L += _table(["key", "config", "peak", "stream bytes/cycle", "clock"],
                [[c["key"], c["label"],
                  (f"{c['peak_macs_per_cycle']} MACs/cycle" if c["kind"] == "gemm"
                   else f"{c['peak_nnz_per_cycle']} nnz/cycle"),
                  f"{c['input_bytes_per_cycle']:g} in" + (
                      f" + {c['output_bytes_per_cycle']:g} out" if c["kind"] == "gemm" else ""),
                  f"{c['clock_mhz']:g} MHz: {c['clock_note']}"] for c in res["configs"]])
    L += ["", "## Headline", "", headline(res)]
    # gemm table
    L += ["## GEMM workloads", ""]
    wl = {w["name"]: w for w in res["workloads"]}
    base = {b["workload"]: b for b in res["baselines"]}
    rows = []
    for r in res["gemm"]:
        b = base.get(r["workload"], {})
        rows.append([r["workload"], f"{r['m']}x{r['k']}x{r['n']}", r["config"], _src(r),
                     r["jobs"], f"{r['job_cycles']:,}", _err(r["model_error"]),
                     f"{r['scalesim_cycles']:,}", _x(r["compute_to_scalesim"], 3),
                     _x(r["job_to_scalesim"], 3), _x(r["job_to_lower_bound"], 3),
                     _pct(r["utilization"]), fmt_s(r["projected_s"]),
                     fmt_s((b.get("numpy_f32") or {}).get("median_s")),
                     fmt_s((b.get("numpy_int") or {}).get("median_s")),
                     _x(r["speedup_vs_numpy_f32"]), _x(r["speedup_vs_numpy_int"], 1),
                     {True: "yes", False: "**NO**", None: "-"}[r["correct"]]])
    L += _table(["workload", "MxKxN", "config", "source", "jobs", "job cycles", "model err",
                 "SCALE-Sim", "compute/SS", "job/SS", "job/LB", "util", "projected",
                 "numpy f32", "numpy int", "x f32", "x int", "exact"], rows)
    L += ["", "SS = SCALE-Sim 3.0 closed form for the whole call (OS: ceil(M/R) ceil(N/C) "
          "(K+R+C-2) - 1; WS: ceil(K/R) ceil(N/C) (M+2R+C-2) - 1); compute/SS compares the "
          "stall-free compute span, job/SS the whole job (operand load, drain and output "
          "included). LB = max(MACs/(R C), input bytes/stream bytes, output bytes/stream "
          "bytes). Util = MACs / (job cycles x R x C); for N:M rows MACs are the kept ones "
          "(the array skips the pruned). Projected = job cycles at the clock of the config "
          "table. numpy times are medians after a warm-up (float32: BLAS sgemm on the float "
          "operands; int: numpy's own int32 loop on the int8 operands).", ""]
    notes = [b for b in res["baselines"] if b.get("numpy_int_note")]
    if notes:
        L += ["numpy int not measured for: " + ", ".join(b["workload"] for b in notes)
              + f" ({notes[0]['numpy_int_note']}).", ""]
    if "utilization" in figures:
        L += [f"![utilization]({figures['utilization']})", ""]
    if "scalesim_ratio" in figures:
        L += [f"![ratio to SCALE-Sim]({figures['scalesim_ratio']})", ""]
    # roofline
    L += ["## Roofline", "",
          "Per cycle, so it holds at any clock. Compute roof = R x C MACs/cycle; memory roof "
          "= input stream bytes/cycle. Intensity = MACs per input-stream byte as the driver's "
          "plan streams them (tiling re-sends operands); 'compulsory' counts each operand "
          "byte once.", ""]
    L += _table(["workload", "config", "intensity", "compulsory", "roof", "achieved",
                 "of roof", "bound by"],
                [[r["workload"], r["config"], _x(r["roofline"]["intensity_macs_per_byte"]),
                  _x(r["roofline"]["compulsory_intensity_macs_per_byte"]),
                  _x(r["roofline"]["attainable_macs_per_cycle"]),
                  _x(r["roofline"]["achieved_macs_per_cycle"]),
                  _pct(r["roofline"]["fraction_of_roof"]), r["roofline"]["bound_by"]]
                 for r in res["gemm"]])
    if "roofline" in figures:
        L += ["", f"![roofline]({figures['roofline']})"]
    # amdahl
    L += ["", "## Amdahl's law: end-to-end offloaded calls", "",
          "T_e2e = quantize (float32 -> int8, per tensor) + pack (`build_plan`) + link "
          "(input + result bytes / bandwidth, serial, no latency) + accelerator (job cycles "
          "at the clock) + dequantize. p = T_sw / (T_sw + T_host) with T_sw = numpy float32 "
          "(scipy CSR float32 for sparse); s = T_sw / T_acc; S = 1/((1-p) + p/s) = "
          "(T_sw + T_host) / T_e2e; bound = 1/(1-p). 'x numpy' = T_sw / T_e2e, the plain "
          "end-to-end speedup over numpy alone.", ""]
    links = {}
    for c in res["configs"]:
        for l in c.get("links", []):
            links.setdefault(l["name"], (l, []))[1].append(c["key"])
    L += _table(["link", "bandwidth", "configs", "basis"],
                [[l["name"], f"{l['bytes_per_s'] / 1e6:,.1f} MB/s", ", ".join(keys), l["basis"]]
                 for l, keys in links.values()])
    L += [""]
    L += _table(["workload", "config", "link", "packing", "quantize", "pack", "link time",
                 "dequant", "accelerator", "host share", "p", "s", "S", "bound", "x numpy"],
                [[a["workload"], a["config"], a["link"], a["packer"], fmt_s(a["t_quantize_s"]),
                  fmt_s(a["t_pack_s"]), fmt_s(a["t_link_s"]), fmt_s(a["t_dequantize_s"]),
                  fmt_s(a["t_acc_s"]), _pct(a["host_share"]), _x(a["accelerated_fraction"], 3),
                  _x3(a["kernel_speedup"]), _x3(a["achieved_speedup"]), _x3(a["amdahl_bound"]),
                  _x3(a["e2e_speedup_vs_numpy_f32"])]
                 for a in res["amdahl"] if a["config"] in ("os", "sparse")])
    L += ["", "(Rows of the first dense and the first sparse config; bench.json has every "
          "config.) Packing 'python' is the driver's measured `build_plan` (tiling and numpy "
          "bit packing); 'memcpy' replaces it by one memory copy of the frame bytes, the floor "
          "any packer (native code, a DMA scatter-gather list) can reach: the pair brackets "
          "what a better host side would buy.", ""]
    if "amdahl" in figures:
        L += [f"![Amdahl]({figures['amdahl']})", ""]
    # sparse
    if res["sparse"]:
        L += ["## Sparse MAC engine", ""]
        L += _table(["workload", "config", "rows x cols (p)", "nnz", "density", "source",
                     "job cycles", "model err", "lane U", "job/LB", "projected", "scipy f32",
                     "x scipy f32", "x scipy int", "x numpy dense", "dense array cycles",
                     "x dense array", "exact"],
                    [[r["workload"], r["config"], f"{r['rows']}x{r['cols']} ({r['p']})",
                      f"{r['nnz']:,}", f"{r['density']:.3g}", _src(r), f"{r['job_cycles']:,}",
                      _err(r["model_error"]), _pct(r["lane_utilization"]),
                      _x(r["job_to_lower_bound"], 3), fmt_s(r["projected_s"]),
                      fmt_s((base.get(r["workload"], {}).get("scipy_csr_f32") or {})
                            .get("median_s")),
                      _x(r["speedup_vs_scipy_f32"]), _x(r["speedup_vs_scipy_int"]),
                      _x(r["speedup_vs_numpy_dense_f32"]),
                      f"{r['dense_array_model_cycles']:,}", _x(r["speedup_vs_dense_array"]),
                      {True: "yes", False: "**NO**", None: "-"}[r["correct"]]]
                     for r in res["sparse"]])
        L += ["", "Lane U = nonzeros processed / (lanes x job cycles), X loading and every "
              "stall included. 'dense array' = the same product on the dense array (analytic "
              "model), A as a dense M x K operand; note its stream is the dense config's "
              "(64-bit by default) while the sparse engine's is 256-bit: part of the gap is "
              "bandwidth, not sparsity.", ""]
        if "sparse_density" in figures:
            L += [f"![sparse U against density]({figures['sparse_density']})", ""]
    # design space
    if res.get("design_space"):
        L += ["## Design space (analytic model only, not simulated)", ""]
        designs = []
        for r in res["design_space"]:
            if r["design"] not in designs:
                designs.append(r["design"])
        ws = [w["name"] for w in res["workloads"]]
        val = {(r["design"], r["workload"]): r for r in res["design_space"]}
        L += _table(["design"] + ws,
                    [[d] + [_pct(val[(d, w)]["utilization"], 0) if (d, w) in val else "-"
                            for w in ws] for d in designs])
        if "design_space" in figures:
            L += ["", f"![design space]({figures['design_space']})"]
        L += [""]
    # notes
    L += ["## Notes", ""]
    L += [f"- Verilator model build or load per config: " + ", ".join(
        f"{k} {v:.1f} s" for k, v in res.get("verilator_build_or_load_s", {}).items()) + "."]
    L += ["- Software baselines share this machine's CPUs with whatever else runs; the load "
          "average above says how busy it was. Medians after a warm-up damp, not remove, that."]
    if any(c["clock_source"] == "assumed" for c in res["configs"]):
        L += [f"- No synthesis result was cached for some configs: their projected times use "
              f"an assumed {res['assumed_mhz']:g} MHz clock (run `accelgen synth` to replace "
              f"it with the post-route Fmax). Times, speedups and the DMA bandwidth scale "
              f"with the clock; cycle counts, utilization and ratios do not."]
    for n in res.get("notes", []):
        L += [f"- {n}"]
    return "\n".join(x for x in L if x is not None) + "\n"


def workload_table(res: dict) -> str:
    """One line per dense workload: both dense configs side by side, then N:M."""
    rows = {(r["workload"], r["config"]): r for r in res["gemm"]}
    keys = [c["key"] for c in res["configs"] if c["kind"] == "gemm"]
    main = keys[:2]
    extra = keys[2:]
    base = {b["workload"]: b for b in res["baselines"]}
    head = ["workload", "MxKxN"]
    for k in main:
        head += [f"{k} source", f"{k} cycles", f"{k} util", f"{k} job/SS"]
    head += [f"{k} util (cycles)" for k in extra]
    head += ["numpy f32", f"x numpy f32 ({main[0]})" if main else "x numpy f32"]
    out = []
    for w in res["workloads"]:
        line = [w["name"], f"{w['m']}x{w['k']}x{w['n']}"]
        for k in main:
            r = rows.get((w["name"], k))
            line += ([_src(r), f"{r['job_cycles']:,}", _pct(r["utilization"]),
                      _x(r["job_to_scalesim"], 3)] if r else ["-"] * 4)
        for k in extra:
            r = rows.get((w["name"], k))
            line.append(f"{_pct(r['utilization'])} ({r['job_cycles']:,}, {_src(r)})"
                        if r else "-")
        r0 = rows.get((w["name"], main[0])) if main else None
        line += [fmt_s((base.get(w["name"], {}).get("numpy_f32") or {}).get("median_s")),
                 _x(r0["speedup_vs_numpy_f32"]) if r0 else "-"]
        out.append(line)
    return "\n".join(_table(head, out)) + "\n"


def _findings(res: dict) -> list:
    """A few sentences from the summary (templated, so a rerun keeps them true)."""
    s = res["summary"]
    pc = s["per_config"]
    out = []
    gemm = [c for c in res["configs"] if c["kind"] == "gemm"]
    if len(gemm) >= 2 and gemm[0]["key"] in pc and gemm[1]["key"] in pc:
        a, b = pc[gemm[0]["key"]], pc[gemm[1]["key"]]
        low = min((r for r in res["gemm"] if r["config"] == gemm[0]["key"]),
                  key=lambda r: r["utilization"])
        out.append(f"- Utilization (geometric mean over the square and layer shapes): "
                   f"{_pct(a['utilization_gmean_layers_and_square'])} {gemm[0]['key'].upper()}, "
                   f"{_pct(b['utilization_gmean_layers_and_square'])} "
                   f"{gemm[1]['key'].upper()}; lowest {low['workload']} "
                   f"({low['m']}x{low['k']}x{low['n']}) at {_pct(low['utilization'])}, "
                   f"bound by {low['roofline']['bound_by']}.")
        out.append(f"- Job cycles / SCALE-Sim 3.0: {_rng(a['job_to_scalesim'])} "
                   f"({gemm[0]['key'].upper()}), {_rng(b['job_to_scalesim'])} "
                   f"({gemm[1]['key'].upper()}); job cycles / lower bound "
                   f"{_rng(a['job_to_lower_bound'])} and {_rng(b['job_to_lower_bound'])}.")
        out.append(f"- Kernel speedup over numpy float32 on this machine at "
                   f"{gemm[0]['clock_mhz']:g} MHz ({gemm[0]['clock_source']}): "
                   f"{_rng(a['speedup_vs_numpy_f32'])}x; over numpy's integer matmul "
                   f"{_rng(a['speedup_vs_numpy_int'], _x0)}x.")
    am = s.get("amdahl", {}).get(gemm[0]["key"] if gemm else "", {})
    py, mc = am.get("pcie3x4:python"), am.get("pcie3x4:memcpy")
    if py and mc:
        out.append(f"- End to end over PCIe gen3 x4 the host side is "
                   f"{_rng(py['host_share'], _pct)} of the time with the driver's Python "
                   f"packing ({_rng(mc['host_share'], _pct)} if packing ran at memcpy "
                   f"speed); the Amdahl bound is {_rng(py['amdahl_bound'], _x3)}x "
                   f"({_rng(mc['amdahl_bound'], _x3)}x).")
    sp = [c for c in res["configs"] if c["kind"] == "sparse" and c["key"] in pc]
    if sp:
        out.append("- Sparse engine lane utilization: " + "; ".join(
            f"{c['key']} {_rng(pc[c['key']]['lane_utilization'], _pct)}" for c in sp) + ".")
    if s.get("model_error_rtl_rows"):
        out.append(f"- Analytic model against the RTL counters, {s['rtl_rows']} rows: "
                   f"{_rng(s['model_error_rtl_rows'], _err)}.")
    return out


def readme_section(res: dict, figdir: str) -> str:
    """The README's "Benchmarks" section: headline tables and figures of ``res``, with
    the command line that produced them. ``figdir`` is where the PNGs are, relative
    to the README."""
    figs = res.get("figures", {})
    s = res["summary"]
    m = res["machine"]
    L = ["## Benchmarks", "",
         "Produced by (figures and full report in "
         f"[`{figdir}/`]({figdir}/report.md), every number in "
         f"[`{figdir}/bench.json`]({figdir}/bench.json)):", "", "```",
         res["command"], "```", "",
         f"{res['created'][:10]}, {res['elapsed_s'] / 60:.0f} min on {m.get('cpu')} "
         f"({m.get('usable_cpus', m.get('logical_cpus'))} CPUs shared with other jobs; "
         f"software baselines are medians after a warm-up, numpy float32 with the faster of "
         f"OpenBLAS on all threads or one). Rows measured on the RTL: {s['rtl_rows']}; model "
         f"error on them "
         f"{_rng(s['model_error_rtl_rows'], _err)}. Cycle counts come from the accelerator's "
         f"own counters (Verilator); wall times project them at the clock in the last column.",
         ""] + _findings(res) + ["", headline(res, amdahl_kinds=("gemm",)), workload_table(res)]
    if any(c["clock_source"] == "assumed" for c in res["configs"]):
        some = ("some of the benchmarked configs (the clock column says which)"
                if any(c["clock_source"] != "assumed" for c in res["configs"])
                else "the benchmarked configs")
        L += [f"Clock: no synthesis result was cached for {some} when this "
              f"ran, so their times use an assumed {res['assumed_mhz']:g} MHz (`accelgen synth` "
              f"caches the post-route Fmax, which the next run picks up). Speedups scale "
              f"linearly with it; cycles, utilization and ratios do not.", ""]
    L += ["How to read it: utilization is MACs / (job cycles x R x C) over the whole call "
          "(operand streaming, fill, drain, result streaming); SCALE-Sim ratios below 1 mean "
          "fewer cycles than SCALE-Sim 3.0's stall-free count for the same array (it drains "
          "every fold; the RTL overlaps folds); the lower bound is max(compute, input bytes, "
          "output bytes) over the stream width. The Amdahl rows are end-to-end offloads of "
          "float32 calls: quantize, pack, link, accelerator, dequantize.", ""]
    for key, alt in (("utilization", "utilization by workload"),
                     ("scalesim_ratio", "ratio to the SCALE-Sim anchor"),
                     ("roofline", "roofline"), ("amdahl", "Amdahl's law"),
                     ("sparse_density", "sparse lane utilization against density"),
                     ("design_space", "design space by the model")):
        if key in figs:
            L += [f"![{alt}]({figdir}/{figs[key]})", ""]
    return "\n".join(L)


def update_readme(path, section: str) -> None:
    """Replace the README's "## Benchmarks" section (up to the next "## " heading) by
    ``section``, or append it if there is none."""
    from pathlib import Path
    p = Path(path)
    lines = p.read_text().splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip() == "## Benchmarks"), None)
    new = section.rstrip("\n").splitlines()
    if start is None:
        lines = lines + [""] + new
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        lines = lines[:start] + new + ([""] + lines[end:] if end < len(lines) else [])
    p.write_text("\n".join(lines) + "\n")
