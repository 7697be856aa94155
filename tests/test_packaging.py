"""The wheel installs everything under one import namespace, ``tracklayer`` (DESIGN §8).

The wheel is built offline from a clean copy of the sources (``pip wheel
--no-build-isolation`` uses this venv's setuptools; no network), so that a
stale ``build/`` directory in the working tree cannot hide a packaging mistake.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
_IGNORE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "*.mcap", "*.sqlite*", "*.egg-info", ".pytest_cache"
)


def _source_dirs() -> dict[str, Path]:
    """Import package -> source directory, for the top mappings (tracklayer, tracklayer.x)."""
    return {pkg: ROOT / src for pkg, src in PACKAGE_DIRS.items()}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for directory in {Path(d).parts[0] for d in PACKAGE_DIRS.values()}:
        shutil.copytree(ROOT / directory, src / directory, ignore=_IGNORE)
    dist = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation"]
        + ["--no-cache-dir", "-q", "-w", str(dist)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"pip wheel failed:\n{run.stdout}\n{run.stderr}"
    (path,) = dist.glob("tracklayer-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def _names(wheel: zipfile.ZipFile) -> set[str]:
    return set(wheel.namelist())


def test_wheel_adds_only_tracklayer_and_its_dist_info_at_the_top(wheel):
    top = {PurePosixPath(n).parts[0] for n in _names(wheel)}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert len(dist_info) == 1 and next(iter(dist_info)).startswith("tracklayer-")
    assert top - dist_info == {"tracklayer"}


def test_wheel_declares_tracklayer_as_its_only_top_level_package(wheel):
    (top_level,) = [n for n in _names(wheel) if n.endswith(".dist-info/top_level.txt")]
    assert wheel.read(top_level).decode().split() == ["tracklayer"]


def test_wheel_carries_the_generated_code_and_its_stubs(wheel):
    names = _names(wheel)
    protos = sorted((ROOT / "proto" / "tracklayer" / "v1").glob("*.proto"))
    assert protos
    for proto in protos:
        for suffix in ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi"):
            assert f"tracklayer/v1/{proto.stem}{suffix}" in names


def test_wheel_carries_every_python_module_of_the_source_tree(wheel):
    # Packages are listed explicitly in pyproject.toml: a new subpackage that is not
    # listed there would silently be left out of non-editable installs.
    names = _names(wheel)
    missing = []
    for pkg, src in _source_dirs().items():
        prefix = PurePosixPath(*pkg.split("."))
        for path in src.rglob("*.py"):
            rel = path.relative_to(src)
            if "__pycache__" in rel.parts:
                continue
            wheel_name = str(prefix.joinpath(*rel.parts))
            if wheel_name not in names:
                missing.append(wheel_name)
    assert not missing, f"modules missing from the wheel: {missing}"


def test_wheel_carries_the_built_in_scenario_files(wheel):
    names = _names(wheel)
    scenario_dir = _source_dirs()["tracklayer.sensors"] / "scenarios"
    data = sorted(p.name for p in scenario_dir.glob("*") if p.suffix in (".toml", ".tle"))
    for name in data:
        assert f"tracklayer/sensors/scenarios/{name}" in names
    if not data:
        pytest.skip("no built-in scenario files in the source tree yet")


def test_wheel_installs_the_tracklayer_console_script(wheel):
    (entry_points,) = [n for n in _names(wheel) if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "[console_scripts]" in text
    assert "tracklayer = tracklayer.services.cli:main" in text
