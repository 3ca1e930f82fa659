"""``accelgen generate``: Verilog, manifest, C header and lint waivers for a config."""

import sys

from .cliutil import add_config_args, load_config

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "generate", help="generate Verilog, manifest.json, the C header and lint.vlt",
        description="Generate the accelerator of a config: <top>.v, manifest.json (ports, "
                    "CSRs, stream formats, config, tool versions), <top>.h and lint.vlt.")
    add_config_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    return p


def run(args) -> int:
    from accelgen.hdl.generate import generate
    cfg = load_config(args)
    print(f"generating {cfg.describe()} ({cfg.top_name}) ...", file=sys.stderr)
    d = generate(cfg, args.out)
    for path in (d.verilog, d.manifest, d.header, d.lint):
        print(path)
    return 0
