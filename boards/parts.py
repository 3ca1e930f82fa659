"""Lattice ordering codes: parse ``LFE5U-85F-6BG381C`` or ``iCE40UP5K-SG48`` into a part.

A :class:`Part` knows its family (``"ecp5"`` or ``"ice40"``), device, package and
speed grade, the nextpnr arguments that select it, and the resources it has (for
utilization reports and early "does not fit" answers).

Accepted codes (case-insensitive; a trailing ``TR`` tape-and-reel suffix is ignored)::

    LFE5U-85F-6BG381C      LFE5U-<12|25|45|85>F-<speed><package><C|I>
    LFE5UM-45F-8MG285I     LFE5UM-... (SERDES), LFE5UM5G-... (5G SERDES)
    iCE40UP5K-SG48I        iCE40<device>-<package>[I]
    iCE40HX8K-CT256        iCE40LP1K-CM36, iCE40UP3K-UWG30, ...

ECP5 package letters are the ordering-code abbreviations: ``BG`` caBGA, ``MG``
csfBGA, ``TG`` TQFP. ECP5 speed grades are 6, 7, 8 (8 only for LFE5UM5G, which
comes in speed 8 only). iCE40 parts have no speed grade in nextpnr's timing model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from collections.abc import Mapping

__all__ = ["Part", "parse_part", "ECP5_DEVICES", "ICE40_DEVICES", "PART_EXAMPLES"]

PART_EXAMPLES = ("LFE5U-85F-6BG381C", "LFE5U-25F-6BG256C", "iCE40UP5K-SG48")


@dataclass(frozen=True)
class _Device:
    nextpnr_flag: str
    packages: Mapping[str, str]        # ordering-code package -> nextpnr package name
    resources: Mapping[str, int]       # resource -> count available
    speeds: tuple[str, ...] = ()


_ECP5_PACKAGES_SMALL = {"BG256": "CABGA256", "BG381": "CABGA381", "MG285": "CSFBGA285",
                        "TG144": "TQFP144"}
# Lattice data-sheet figures (FPGA-DS-02012, ECP5 family table): LUT4s, registers,
# 18x18 multipliers, 18 Kbit EBR blocks. nextpnr's report gives the authoritative
# counts of a run; these answer "how big is it" before any tool runs.
_ECP5_RES = {
    12: {"LUT4": 12096, "FF": 12096, "MULT18X18D": 28, "EBR": 32},
    25: {"LUT4": 24288, "FF": 24288, "MULT18X18D": 28, "EBR": 56},
    45: {"LUT4": 43848, "FF": 43848, "MULT18X18D": 72, "EBR": 108},
    85: {"LUT4": 83640, "FF": 83640, "MULT18X18D": 156, "EBR": 208},
}
_ECP5_PKG = {
    12: _ECP5_PACKAGES_SMALL,
    25: _ECP5_PACKAGES_SMALL,
    45: {**_ECP5_PACKAGES_SMALL, "BG554": "CABGA554"},
    85: {"BG381": "CABGA381", "MG285": "CSFBGA285", "BG554": "CABGA554", "BG756": "CABGA756"},
}


def _ecp5_devices() -> dict[str, _Device]:
    out = {}
    for size in (12, 25, 45, 85):
        out[f"LFE5U-{size}F"] = _Device(f"--{size}k", _ECP5_PKG[size], _ECP5_RES[size],
                                        ("6", "7", "8"))
        if size != 12:
            out[f"LFE5UM-{size}F"] = _Device(f"--um-{size}k", _ECP5_PKG[size], _ECP5_RES[size],
                                             ("6", "7", "8"))
            out[f"LFE5UM5G-{size}F"] = _Device(f"--um5g-{size}k", _ECP5_PKG[size],
                                               _ECP5_RES[size], ("8",))
    return out


#: ECP5 devices by ordering-code prefix.
ECP5_DEVICES: Mapping[str, _Device] = _ecp5_devices()

#: iCE40 devices: nextpnr flag, ordering-code package -> nextpnr package, resources
#: (iCE40 data sheets: logic cells (LUT4 + FF each), 4 Kbit EBR, SPRAM, DSP).
ICE40_DEVICES: Mapping[str, _Device] = {
    "iCE40LP384": _Device("--lp384", {"SG32": "qn32", "CM36": "cm36", "CM49": "cm49"},
                          {"LUT4": 384, "FF": 384, "EBR": 0}),
    "iCE40LP1K": _Device("--lp1k", {"SWG16": "swg16tr", "CM36": "cm36", "CM49": "cm49",
                                    "CM81": "cm81", "CM121": "cm121", "QN84": "qn84",
                                    "CB81": "cb81", "CB121": "cb121"},
                         {"LUT4": 1280, "FF": 1280, "EBR": 16}),
    "iCE40LP4K": _Device("--lp4k", {"CM81": "cm81:4k", "CM121": "cm121:4k", "CM225": "cm225:4k"},
                         {"LUT4": 3520, "FF": 3520, "EBR": 20}),
    "iCE40LP8K": _Device("--lp8k", {"CM81": "cm81", "CM121": "cm121", "CM225": "cm225"},
                         {"LUT4": 7680, "FF": 7680, "EBR": 32}),
    "iCE40HX1K": _Device("--hx1k", {"VQ100": "vq100", "TQ144": "tq144", "CB132": "cb132"},
                         {"LUT4": 1280, "FF": 1280, "EBR": 16}),
    "iCE40HX4K": _Device("--hx4k", {"TQ144": "tq144:4k", "BG121": "bg121:4k",
                                    "CB132": "cb132:4k"},
                         {"LUT4": 3520, "FF": 3520, "EBR": 20}),
    "iCE40HX8K": _Device("--hx8k", {"CM225": "cm225", "CT256": "ct256", "BG121": "bg121",
                                    "CB132": "cb132", "TQ144": "tq144"},
                         {"LUT4": 7680, "FF": 7680, "EBR": 32}),
    "iCE40UP3K": _Device("--up3k", {"SG48": "sg48", "UWG30": "uwg30"},
                         {"LUT4": 2800, "FF": 2800, "EBR": 20, "SPRAM": 4, "SB_MAC16": 4}),
    "iCE40UP5K": _Device("--up5k", {"SG48": "sg48", "UWG30": "uwg30"},
                         {"LUT4": 5280, "FF": 5280, "EBR": 30, "SPRAM": 4, "SB_MAC16": 8}),
}

_ECP5_RE = re.compile(r"^(LFE5U(?:M5G|M)?-\d+F)-(\d)([A-Z]+\d+)([CI])$")
_ICE40_RE = re.compile(r"^(ICE40(?:LP|HX|UP)\d+K?|ICE40LP384)-([A-Z]+\d+)(I)?$")


@dataclass(frozen=True)
class Part:
    """One FPGA part, as selected by a Lattice ordering code.

    Members
    -------
    code : str
        The ordering code in canonical spelling, e.g. ``"LFE5U-85F-6BG381C"``.
    family : str
        ``"ecp5"`` or ``"ice40"``.
    device : str
        Device name, e.g. ``"LFE5U-85F"`` or ``"iCE40UP5K"``.
    package : str
        nextpnr package name, e.g. ``"CABGA381"`` or ``"sg48"``.
    speed : str or None
        ECP5 speed grade ``"6"``/``"7"``/``"8"``; ``None`` on iCE40.
    grade : str
        Temperature grade, ``"C"`` (commercial) or ``"I"`` (industrial).
    resources : mapping of str to int
        Resources available: ``LUT4``, ``FF``, ``EBR``, and ``MULT18X18D`` (ECP5) or
        ``SB_MAC16`` / ``SPRAM`` (iCE40 UltraPlus).
    """

    code: str
    family: str
    device: str
    package: str
    speed: str | None
    grade: str
    resources: Mapping[str, int] = field(compare=False)
    nextpnr_flag: str = field(compare=False, repr=False, default="")

    def nextpnr_args(self) -> list[str]:
        """Arguments that select this part in ``nextpnr-ecp5`` / ``nextpnr-ice40``."""
        args = [self.nextpnr_flag, "--package", self.package]
        if self.family == "ecp5":
            args += ["--speed", self.speed]
        return args

    @property
    def nextpnr_tool(self) -> str:
        return f"nextpnr-{self.family}"

    def __str__(self) -> str:
        return self.code


def _suggest(options) -> str:
    return ", ".join(sorted(options))


def parse_part(code: str) -> Part:
    """Parse a Lattice ordering code.

    Parameters
    ----------
    code : str
        E.g. ``"LFE5U-85F-6BG381C"``, ``"LFE5U-25F-6BG256C"``, ``"iCE40UP5K-SG48"``.

    Returns
    -------
    Part

    Raises
    ------
    TypeError
        If ``code`` is not a string.
    ValueError
        If the code is malformed, or names a device, package or speed grade that
        does not exist; the message says which part is wrong and lists valid values.
    """
    if not isinstance(code, str):
        raise TypeError(f"Part code must be a string such as 'LFE5U-85F-6BG381C', not {code!r}")
    raw = code
    text = code.strip().upper()
    if text.endswith("TR"):
        text = text[:-2]
    if text.startswith("LFE5"):
        m = _ECP5_RE.match(text)
        if m is None:
            raise ValueError(
                f"ECP5 part code must look like LFE5U-85F-6BG381C "
                f"(device-speed+package+grade), not {raw!r}")
        device, speed, pkg, grade = m.groups()
        if device not in ECP5_DEVICES:
            raise ValueError(f"ECP5 device in part code {raw!r} must be one of "
                             f"{_suggest(ECP5_DEVICES)}, not {device!r}")
        dev = ECP5_DEVICES[device]
        if pkg not in dev.packages:
            raise ValueError(f"Package of {device} must be one of {_suggest(dev.packages)}, "
                             f"not {pkg!r} (in part code {raw!r})")
        if speed not in dev.speeds:
            raise ValueError(f"Speed grade of {device} must be one of {', '.join(dev.speeds)}, "
                             f"not {speed!r} (in part code {raw!r})")
        canon = f"{device}-{speed}{pkg}{grade}"
        return Part(canon, "ecp5", device, dev.packages[pkg], speed, grade, dev.resources,
                    dev.nextpnr_flag)
    if text.startswith("ICE40"):
        m = _ICE40_RE.match(text)
        if m is None:
            raise ValueError(f"iCE40 part code must look like iCE40UP5K-SG48 "
                             f"(device-package), not {raw!r}")
        device_u, pkg, grade = m.groups()
        device = "iCE40" + device_u[5:]
        if device not in ICE40_DEVICES:
            raise ValueError(f"iCE40 device in part code {raw!r} must be one of "
                             f"{_suggest(ICE40_DEVICES)}, not {device!r}")
        dev = ICE40_DEVICES[device]
        if pkg not in dev.packages:
            raise ValueError(f"Package of {device} must be one of {_suggest(dev.packages)}, "
                             f"not {pkg!r} (in part code {raw!r})")
        canon = f"{device}-{pkg}{grade or ''}"
        return Part(canon, "ice40", device, dev.packages[pkg], None, grade or "C",
                    dev.resources, dev.nextpnr_flag)
    raise ValueError(f"Part code must be a Lattice ECP5 (LFE5U-85F-6BG381C) or iCE40 "
                     f"(iCE40UP5K-SG48) ordering code, not {raw!r}")
