"""Top critical paths from nextpnr's post-route SDF.

nextpnr's JSON report has one critical path per clock pair: the worst one. To
pipeline a design one wants the next few as well, so this module runs a small
static timing analysis over the routed delays nextpnr writes with ``--sdf``: cell
arcs (``IOPATH``), routing (``INTERCONNECT``) and setup checks (``SETUPHOLD``),
all at their max corner, the same figures nextpnr's own report uses.

Start points are register outputs (an arc from a clock pin, ``CLK*``); end points
are register inputs with a setup check. :func:`top_paths` returns the worst path
into each *group* of end points (a register bus: bit suffixes and the cell-type
decoration nextpnr adds are folded away), worst first, so sixteen bits of one
accumulator count once.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from pathlib import Path

__all__ = ["parse_sdf", "top_paths", "endpoint_group"]

_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_DELAY = re.compile(r"\((-?[\d.]*):(-?[\d.]*):(-?[\d.]*)\)")


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)


def _max(triple: str) -> float:
    m = _DELAY.match(triple)
    if not m:
        return 0.0
    vals = [float(v) for v in m.groups() if v not in ("", "-")]
    return max(vals) if vals else 0.0


def _split_pin(pin: str) -> tuple[str, str]:
    m = re.match(r"^(.*?)(?<!\\)/([^/]*)$", pin)
    if m is None:
        return "", _unescape(pin)
    return _unescape(m[1]), _unescape(m[2])


def parse_sdf(path) -> dict:
    """Parse an SDF file from nextpnr.

    Returns
    -------
    dict
        ``timescale_ps`` (picoseconds per unit), ``arcs`` (list of
        ``(inst, from_port, to_port, delay)``), ``wires`` (list of
        ``((inst, port), (inst, port), delay)``), ``setups`` (list of
        ``(inst, port, clock_port, setup)``), ``types`` (inst -> cell type).
    """
    text = Path(path).read_text(errors="replace")
    scale = 1.0
    m = re.search(r"\(TIMESCALE\s+(\d+)\s*(ps|ns)\)", text)
    if m:
        scale = float(m[1]) * (1000.0 if m[2] == "ns" else 1.0)
    arcs, wires, setups, types = [], [], [], {}
    for chunk in re.split(r"\(CELL\b", text)[1:]:
        head = re.match(r"\s*\(CELLTYPE \"([^\"]*)\"\)\s*\(INSTANCE ([^)]*)\)", chunk)
        if head is None:
            continue
        ctype, inst, body = head[1], _unescape(head[2].strip()), chunk[head.end():]
        types[inst] = ctype
        for a in re.finditer(r"\(IOPATH (\S+) (\S+) (\([^)]*\))", body):
            arcs.append((inst, _unescape(a[1]), _unescape(a[2]), _max(a[3]) * scale))
        for w in re.finditer(r"\(INTERCONNECT (\S+) (\S+) (\([^)]*\))", body):
            wires.append((_split_pin(w[1]), _split_pin(w[2]), _max(w[3]) * scale))
        for c in re.finditer(r"\(SETUPHOLD \((?:pos|neg)edge (\S+)\) \((?:pos|neg)edge (\S+)\) "
                             r"(\([^)]*\))", body):
            setups.append((inst, _unescape(c[1]), _unescape(c[2]), _max(c[3]) * scale))
    return {"timescale_ps": scale, "arcs": arcs, "wires": wires, "setups": setups,
            "types": types}


def endpoint_group(inst: str) -> str:
    """The register group a cell belongs to, indices folded.

    ``design.core.array.pe_1_2.acc_TRELLIS_FF_Q_12`` -> ``design.core.array.pe_*.acc``,
    ``design.core.requant.prod3_TRELLIS_FF_Q_47`` -> ``design.core.requant.prod*``.
    """
    name = re.sub(r"_(TRELLIS|SB|ICESTORM|DP16KD|MULT18X18D|CCU2C|LUT4|PFUMX|L6MUX21)\w*$", "",
                  inst)
    name = re.sub(r"(\$[\w$]*)$", "", name) or inst
    return ".".join(re.sub(r"\d+(_\d+)*", "*", part) for part in name.split("."))


def top_paths(sdf, count: int = 10) -> list[dict]:
    """The worst register-to-register path into each end-point group, worst first.

    Parameters
    ----------
    sdf : path or dict
        An SDF file or :func:`parse_sdf` output.
    count : int
        How many groups to return.

    Returns
    -------
    list of dict
        ``delay_ns`` (clock-to-out + logic + routing + setup), ``group``,
        ``start``, ``end`` (``inst/port``) and ``path``: the pins in order with
        their arrival time in ns.
    """
    data = sdf if isinstance(sdf, dict) else parse_sdf(sdf)
    succ = defaultdict(list)
    indeg = defaultdict(int)
    start = {}
    clock_ports = {(i, c) for i, _, c, _ in data["setups"]}
    for inst, a, b, d in data["arcs"]:
        if a.upper().startswith("CLK") or (inst, a) in clock_ports:
            node = (inst, b)
            start[node] = max(start.get(node, 0.0), d)
        else:
            succ[(inst, a)].append(((inst, b), d))
            indeg[(inst, b)] += 1
    for src, dst, d in data["wires"]:
        if dst in clock_ports or dst[1].upper().startswith("CLK"):
            continue
        succ[src].append((dst, d))
        indeg[dst] += 1
    nodes = set(succ) | set(indeg) | set(start)
    arrival = {n: start[n] for n in start}
    pred = {}
    queue = deque(n for n in nodes if indeg[n] == 0)
    while queue:
        n = queue.popleft()
        for m, d in succ.get(n, ()):
            if n in arrival and arrival[n] + d > arrival.get(m, -1.0):
                arrival[m] = arrival[n] + d
                pred[m] = n
            indeg[m] -= 1
            if indeg[m] == 0:
                queue.append(m)
    best = {}
    for inst, port, _, setup in data["setups"]:
        node = (inst, port)
        if node not in arrival:
            continue
        total = arrival[node] + setup
        group = endpoint_group(inst)
        if group not in best or total > best[group][0]:
            best[group] = (total, node)
    out = []
    for group, (total, node) in sorted(best.items(), key=lambda kv: -kv[1][0])[:count]:
        chain = [node]
        while chain[-1] in pred:
            chain.append(pred[chain[-1]])
        chain.reverse()
        out.append({"delay_ns": round(total / 1000, 3), "group": group,
                    "start": "/".join(chain[0]), "end": "/".join(node),
                    "path": [{"pin": "/".join(p), "arrival_ns": round(arrival[p] / 1000, 3)}
                             for p in chain]})
    return out
