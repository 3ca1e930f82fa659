"""Board targets: amaranth-boards platforms by name.

Any Lattice ECP5 or iCE40 platform of amaranth-boards can be a target. A name is
resolved in this order:

1. an alias of :data:`ALIASES` (``ulx3s-85f``, ``icebreaker``, ...);
2. ``module:Class`` (``amaranth_boards.versa_ecp5:VersaECP5Platform``, or any
   importable module, so out-of-tree platforms work too);
3. an amaranth-boards class name, with or without ``_Platform``/``Platform``,
   case-insensitive (``ULX3S_45F``, ``OrangeCrabR0_2_85F``);
4. an amaranth-boards module name whose module defines exactly one platform
   (``versa_ecp5``, ``icesugar``).

The ULX3S platforms list ``openFPGALoader`` as a required tool even to build;
accelgen builds bitstreams only, so :func:`board_platform` drops it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import lru_cache

from .parts import Part, parse_part

__all__ = ["ALIASES", "board_platform", "board_part", "list_boards", "PROGRAMMERS"]

#: Short names of the boards accelgen documents and tests.
ALIASES = {
    "ulx3s": "amaranth_boards.ulx3s:ULX3S_85F_Platform",
    "ulx3s-85f": "amaranth_boards.ulx3s:ULX3S_85F_Platform",
    "ulx3s-45f": "amaranth_boards.ulx3s:ULX3S_45F_Platform",
    "ulx3s-25f": "amaranth_boards.ulx3s:ULX3S_25F_Platform",
    "ulx3s-12f": "amaranth_boards.ulx3s:ULX3S_12F_Platform",
    "icebreaker": "amaranth_boards.icebreaker:ICEBreakerPlatform",
}

#: Programming tools that are not needed to build a bitstream.
PROGRAMMERS = ("openFPGALoader", "iceprog", "ujprog", "fujprog", "dfu-util", "ecpprog")


def _norm(name: str) -> str:
    name = name.lower().replace("-", "_")
    for suffix in ("_platform", "platform"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.strip("_")


def _platform_classes(module) -> list[type]:
    from amaranth.build import Platform
    return [obj for name, obj in vars(module).items()
            if inspect.isclass(obj) and issubclass(obj, Platform) and not name.startswith("_")
            and obj.__module__ == module.__name__ and not inspect.isabstract(obj)]


@lru_cache(maxsize=1)
def _catalog() -> dict[str, tuple[str, list[type]]]:
    import amaranth_boards
    out = {}
    for info in pkgutil.iter_modules(amaranth_boards.__path__):
        if info.name.startswith("_") or info.ispkg:
            continue
        try:
            module = importlib.import_module(f"amaranth_boards.{info.name}")
        except Exception:       # a board module with missing optional imports
            continue
        out[info.name] = (module.__name__, _platform_classes(module))
    return out


def _is_lattice(cls) -> str | None:
    # By device name: in Amaranth 0.5 ECP5 and MachXO platforms share one class.
    device = str(getattr(cls, "device", ""))
    if device.upper().startswith("LFE5"):
        return "ecp5"
    if device.upper().startswith("ICE40"):
        return "ice40"
    return None


def list_boards() -> list[str]:
    """Names of the amaranth-boards platforms accelgen can build for (ECP5 and iCE40)."""
    names = []
    for _, classes in _catalog().values():
        for cls in classes:
            if _is_lattice(cls):
                names.append(cls.__name__)
    return sorted(set(names))


def _resolve(name: str) -> type:
    spec = ALIASES.get(name.lower(), name)
    if ":" in spec:
        module_name, cls_name = spec.split(":", 1)
        try:
            module = importlib.import_module(module_name)
            return getattr(module, cls_name)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"Board {name!r} names {spec}, which cannot be loaded: {e}") from None
    want = _norm(spec)
    catalog = _catalog()
    for _, classes in catalog.values():
        for cls in classes:
            if _norm(cls.__name__) == want:
                return cls
    if want in catalog:
        classes = catalog[want][1]
        if len(classes) == 1:
            return classes[0]
        raise ValueError(f"Board module {want!r} defines several platforms; name one of "
                         f"{', '.join(c.__name__ for c in classes)}")
    raise ValueError(f"Board must be an alias ({', '.join(sorted(ALIASES))}), an amaranth-boards "
                     f"ECP5/iCE40 platform ({', '.join(list_boards())}) or module:Class, "
                     f"not {name!r}")


def board_platform(name: str):
    """An instance of the named board's platform, ready to build bitstreams.

    Parameters
    ----------
    name : str
        See the module docstring.

    Returns
    -------
    amaranth.build.Platform
        A subclass instance whose ``required_tools`` leaves out programmers.

    Raises
    ------
    ValueError
        Unknown board, or a board that is not ECP5 or iCE40 (the open flow here
        covers those two families).
    """
    if not isinstance(name, str):
        raise TypeError(f"Board name must be a string, not {name!r}")
    cls = _resolve(name)
    if _is_lattice(cls) is None:
        raise ValueError(f"Board {name!r} ({cls.__name__}) is not a Lattice ECP5 or iCE40 "
                         f"board; accelgen's open-toolchain flow builds for those families only")

    class BuildOnly(cls):
        @property
        def required_tools(self):
            return [t for t in super().required_tools if t not in PROGRAMMERS]

    BuildOnly.__name__ = BuildOnly.__qualname__ = cls.__name__
    return BuildOnly()


def board_part(platform) -> Part:
    """The :class:`~.parts.Part` of a platform (its device, package and speed grade)."""
    family = _is_lattice(type(platform))
    if family == "ecp5":
        return parse_part(f"{platform.device}-{platform.speed}{platform.package}C")
    return parse_part(f"{platform.device}-{platform.package}")
