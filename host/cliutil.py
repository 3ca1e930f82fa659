"""Helpers shared by the CLI subcommands."""

import json
from pathlib import Path

from accelgen.hdl.config import GemmConfig, config_from_dict

__all__ = ["add_config_args", "load_config", "CliError"]


class CliError(Exception):
    """A user error: printed without a traceback, exit status 2."""


def add_config_args(parser, *, overrides: bool = True):
    parser.add_argument("--config", metavar="CFG.json",
                        help="accelerator config as JSON (GemmConfig fields; default: 8x8 int8 OS)")
    if overrides:
        parser.add_argument("--rows", type=int, help="override the config's rows")
        parser.add_argument("--cols", type=int, help="override the config's cols")
        parser.add_argument("--dataflow", choices=("os", "ws"), help="override the dataflow")


def load_config(args):
    data = {}
    if getattr(args, "config", None):
        path = Path(args.config)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CliError(f"Config file {path} does not exist") from None
        except json.JSONDecodeError as e:
            raise CliError(f"Config file {path} is not valid JSON: {e}") from None
    for key in ("rows", "cols", "dataflow"):
        v = getattr(args, key, None)
        if v is not None:
            data[key] = v
    try:
        return config_from_dict(data) if data else GemmConfig()
    except (TypeError, ValueError) as e:
        raise CliError(f"Bad config: {e}") from None
