"""Figures of a benchmark result (matplotlib, Agg backend: no display needed).

Each function takes the dict of :func:`accelgen.host.bench.run` and a path, writes
one PNG and returns the path, or ``None`` when the result holds nothing to plot.
Rows measured on the RTL are drawn solid; rows predicted by the model are hatched
or hollow, and the legends say so.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt              # noqa: E402 - after the backend is chosen
import numpy as np                           # noqa: E402

__all__ = ["utilization", "scalesim_ratio", "roofline", "amdahl", "sparse_density",
           "design_space", "write_all"]

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
_DPI = 120


def _gemm_matrix(res, field):
    workloads = [w["name"] for w in res["workloads"]]
    keys = [c["key"] for c in res["configs"] if c["kind"] == "gemm"
            and any(r["config"] == c["key"] for r in res["gemm"])]
    val = {(r["workload"], r["config"]): r for r in res["gemm"]}
    return workloads, keys, val


def _label(res, key):
    for c in res["configs"]:
        if c["key"] == key:
            return c["label"]
    return key


def _short(res, key):
    for c in res["configs"]:
        if c["key"] == key and c["kind"] == "sparse":
            cfg = c["config"]
            buf = ("replicated X" if cfg["x_buffer"] == "replicated"
                   else f"{cfg['x_banks']}-bank X")
            return f"{key} (L={cfg['lanes']}, {buf})"
    return key


def _hbars(res, path, field, xlabel, title, ref=None, xfmt=None):
    workloads, keys, val = _gemm_matrix(res, field)
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(workloads) * max(1, len(keys) / 2) + 1.8))
    h = 0.8 / len(keys)
    y = np.arange(len(workloads))
    for i, key in enumerate(keys):
        for j, w in enumerate(workloads):
            r = val.get((w, key))
            if r is None:
                continue
            model = r["source"] == "model"
            ax.barh(y[j] - 0.4 + h * (i + 0.5), r[field], height=h, color=_COLORS[i],
                    alpha=0.45 if model else 1.0, hatch="//" if model else None,
                    edgecolor=_COLORS[i], linewidth=0.6)
    ax.set_yticks(y, workloads)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if ref is not None:
        ax.axvline(ref, color="k", linewidth=0.8, linestyle="--")
    if xfmt:
        ax.xaxis.set_major_formatter(xfmt)
    from matplotlib.patches import Patch
    handles = [Patch(color=_COLORS[i], label=_label(res, k)) for i, k in enumerate(keys)]
    handles += [Patch(facecolor="white", edgecolor="k", label="measured on RTL (Verilator)"),
                Patch(facecolor="white", edgecolor="k", hatch="//", label="analytic model")]
    ax.legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def utilization(res, path):
    from matplotlib.ticker import PercentFormatter
    return _hbars(res, path, "utilization", "utilization = MACs / (job cycles x R x C)",
                  "PE utilization by workload (whole call: load, compute, drain, stalls)",
                  ref=1.0, xfmt=PercentFormatter(1.0))


def scalesim_ratio(res, path):
    return _hbars(res, path, "job_to_scalesim",
                  "job cycles / SCALE-Sim 3.0 stall-free cycles (lower is better; < 1 beats it)",
                  "Ratio to the SCALE-Sim anchor (same array, dataflow and shape)", ref=1.0)


def roofline(res, path):
    rows = res["gemm"]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5))
    roofs = {}
    for c in res["configs"]:
        if c["kind"] == "gemm" and any(r["config"] == c["key"] for r in rows):
            roofs.setdefault((c["peak_macs_per_cycle"], c["input_bytes_per_cycle"]),
                             []).append(c["label"])
    for d in res.get("design_space", []):
        roofs.setdefault((d["peak_macs_per_cycle"], d["input_bytes_per_cycle"]),
                         []).append(d["design"] + " (model)")
    I_all = [r["roofline"]["intensity_macs_per_byte"] for r in rows]
    xs = np.logspace(np.log10(min(I_all + [1]) / 2), np.log10(max(I_all + [100]) * 2), 200)
    for i, ((peak, bw), labels) in enumerate(sorted(roofs.items())):
        ax.plot(xs, np.minimum(peak, xs * bw), color="0.35" if i == 0 else "0.7",
                linewidth=1.2, linestyle="-" if i == 0 else ":")
        ax.text(peak / bw, peak * 1.04, f"{peak} MACs/cycle, {bw:g} B/cycle", fontsize=7,
                va="bottom", ha="left", color="0.3")
    keys = [c["key"] for c in res["configs"] if c["kind"] == "gemm"]
    markers = ["o", "s", "^", "D", "v"]
    for i, key in enumerate(keys):
        pts = [r for r in rows if r["config"] == key]
        for src, face in (("rtl", _COLORS[i]), ("model", "none")):
            sel = [r for r in pts if r["source"] == src]
            if not sel:
                continue
            ax.scatter([r["roofline"]["intensity_macs_per_byte"] for r in sel],
                       [r["roofline"]["achieved_macs_per_cycle"] for r in sel],
                       marker=markers[i % len(markers)], facecolors=face,
                       edgecolors=_COLORS[i], s=36, zorder=3,
                       label=f"{_label(res, key)} ({'RTL' if src == 'rtl' else 'model'})")
    for r in rows:
        # label the points off the roof (the ones worth a look), not the crowd on it
        rf = r["roofline"]
        if r["config"] == keys[0] and (rf["bound_by"] == "stream" or
                                       rf["fraction_of_roof"] < 0.9):
            ax.annotate(r["workload"], (r["roofline"]["intensity_macs_per_byte"],
                                        r["roofline"]["achieved_macs_per_cycle"]),
                        fontsize=6, xytext=(3, -8), textcoords="offset points", color="0.25")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operational intensity (MACs per input-stream byte, as streamed)")
    ax.set_ylabel("MACs per cycle")
    ax.set_title("Roofline (per cycle; roofs: peak = R x C, slope = stream bytes/cycle)")
    ax.grid(which="both", alpha=0.2)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def amdahl(res, path, config=None):
    rows = [a for a in res["amdahl"]]
    if not rows:
        return None
    config = config or rows[0]["config"]
    rows = [a for a in rows if a["config"] == config]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    p = np.linspace(0, 0.9999, 400)
    for s, idx in ((1.0, 360), (2.0, 360), (5.0, 340), (20.0, 300), (float("inf"), 250)):
        S = 1 / ((1 - p) + (p / s if s != float("inf") else 0))
        ax.plot(p, S, color="0.6", linewidth=0.9,
                linestyle="--" if s == float("inf") else "-")
        lab = "s = inf (Amdahl bound)" if s == float("inf") else f"s = {s:g}"
        ax.text(p[idx], S[idx], lab, fontsize=7, color="0.4", va="bottom", ha="right")
    links = []
    for a in rows:
        if a["link"] not in links:
            links.append(a["link"])
    names = {}
    for c in res["configs"]:
        if c["key"] == config:
            names = {l["key"]: l["name"] for l in c.get("links", [])}
    markers = ["o", "s", "^"]
    for i, key in enumerate(links):
        for packer, face, what in (("python", _COLORS[i], "driver's Python packing"),
                                   ("memcpy", "none", "packing at memcpy speed")):
            sel = [a for a in rows if a["link"] == key and a.get("packer", "python") == packer]
            if not sel:
                continue
            ax.scatter([a["accelerated_fraction"] for a in sel],
                       [a["achieved_speedup"] for a in sel], facecolors=face,
                       edgecolors=_COLORS[i], marker=markers[i % 3], s=30, zorder=3,
                       label=f"{names.get(key, key)}, {what}")
            if i == 0 and packer == "memcpy":
                for a in sel:
                    ax.annotate(a["workload"], (a["accelerated_fraction"],
                                                a["achieved_speedup"]),
                                fontsize=6, xytext=(3, 3), textcoords="offset points",
                                color="0.3")
    top = max(a["achieved_speedup"] for a in rows)
    ax.set_ylim(0.8, max(10.0, 3 * top))
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel("accelerated fraction p = T_sw / (T_sw + T_host)")
    ax.set_ylabel("speedup S = 1 / ((1 - p) + p / s)")
    ax.set_title(f"Amdahl's law, offloaded calls on {_label(res, config)}\n"
                 "(s = kernel speedup over numpy float32; host share: quantize, pack, link, "
                 "dequantize)", fontsize=9)
    ax.grid(which="both", alpha=0.2)
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def sparse_density(res, path):
    rows = res["sparse"]
    if not rows:
        return None
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    keys = []
    for r in rows:
        if r["config"] not in keys:
            keys.append(r["config"])
    sweep_names = {w["name"] for w in res["sparse_workloads"] if "density" in w["tags"]}
    for i, key in enumerate(keys):
        sweep = sorted((r for r in rows if r["config"] == key and r["workload"] in sweep_names),
                       key=lambda r: r["density"])
        other = [r for r in rows if r["config"] == key and r["workload"] not in sweep_names]
        if sweep:
            ax.plot([r["density"] for r in sweep], [r["lane_utilization"] for r in sweep],
                    color=_COLORS[i], marker="o", label=f"{_short(res, key)}: uniform sweep")
            for r in sweep:
                if r["source"] == "model":
                    ax.scatter([r["density"]], [r["lane_utilization"]], facecolors="white",
                               edgecolors=_COLORS[i], zorder=4)
        for r in other:
            ax.scatter([r["density"]], [r["lane_utilization"]], color=_COLORS[i], marker="^",
                       facecolors=_COLORS[i] if r["source"] == "rtl" else "white")
            ax.annotate(r["workload"].replace("sparse.", ""), (r["density"],
                                                               r["lane_utilization"]),
                        fontsize=6, xytext=(3, 2), textcoords="offset points")
        if sweep:
            ax2.plot([r["density"] for r in sweep], [r["job_cycles"] for r in sweep],
                     color=_COLORS[i], marker="o", label=_short(res, key))
    sweep0 = sorted((r for r in rows if r["config"] == keys[0] and r["workload"] in sweep_names),
                    key=lambda r: r["density"])
    if sweep0:
        ax2.plot([r["density"] for r in sweep0], [r["dense_array_model_cycles"] for r in sweep0],
                 color="k", linestyle="--",
                 label=f"dense 8x8 array ({sweep0[0]['dense_array_config']}), model")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("density (nnz / (rows x cols))")
    ax.set_ylabel("lane utilization U = nnz / (lanes x job cycles)")
    ax.set_title("Sparse engine: lane utilization against density\n(filled: RTL, hollow: "
                 "model; triangles: structured matrices)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("density")
    ax2.set_ylabel("job cycles (SpMV, 1024 x 1024)")
    ax2.set_title("Sparse engine against the dense array on the same SpMV", fontsize=10)
    ax2.grid(which="both", alpha=0.3)
    ax2.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def design_space(res, path):
    rows = res.get("design_space") or []
    if not rows:
        return None
    designs = []
    for r in rows:
        if r["design"] not in designs:
            designs.append(r["design"])
    workloads = [w["name"] for w in res["workloads"]]
    U = np.full((len(designs), len(workloads)), np.nan)
    for r in rows:
        U[designs.index(r["design"]), workloads.index(r["workload"])] = r["utilization"]
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(designs) + 2.6))
    im = ax.imshow(U, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(workloads)), workloads, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(designs)), designs, fontsize=7)
    for i in range(len(designs)):
        for j in range(len(workloads)):
            if not np.isnan(U[i, j]):
                ax.text(j, i, f"{U[i, j]:.0%}", ha="center", va="center", fontsize=6,
                        color="w" if U[i, j] < 0.6 else "k")
    fig.colorbar(im, ax=ax, label="utilization (analytic model)")
    ax.set_title("Design space by the analytic model (not simulated)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def write_all(res, out: Path) -> dict:
    """Every figure into ``out``; returns ``{name: file name}`` of those written."""
    out = Path(out)
    made = {}
    for name, fn in (("utilization", utilization), ("scalesim_ratio", scalesim_ratio),
                     ("roofline", roofline), ("amdahl", amdahl),
                     ("sparse_density", sparse_density), ("design_space", design_space)):
        path = out / f"{name}.png"
        if fn(res, path) is not None:
            made[name] = path.name
    return made
