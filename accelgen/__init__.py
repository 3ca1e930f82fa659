"""accelgen: generate, verify and synthesize ML accelerators in Amaranth HDL.

The subpackages live in top-level folders of the source tree (``hdl/``,
``sim/``, ``host/``, ``boards/``) and are installed as ``accelgen.hdl``,
``accelgen.sim``, ``accelgen.host`` and ``accelgen.boards``.
"""

from pathlib import Path as _Path

__all__ = ["__version__"]

__version__ = "0.1.0"


def _source_tree_path() -> list[str]:
    # In a source checkout this folder sits beside hdl/, sim/, ... rather than
    # containing them. When the checkout shadows an installed copy (the current
    # directory is the repository root), let `accelgen.hdl` find `<root>/hdl`.
    # An installed wheel has the subpackages inside this folder and skips this.
    here = _Path(__file__).resolve().parent
    root = here.parent
    if (here / "hdl").is_dir() or not (root / "pyproject.toml").is_file():
        return []
    if not any((root / sub / "__init__.py").is_file() for sub in ("hdl", "sim", "host", "boards")):
        return []
    return [str(root)]


__path__ += _source_tree_path()  # noqa: F821 (module attribute of a package)
