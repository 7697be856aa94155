"""The import arrows of docs/architecture.md hold in the code (DESIGN §1's layer rules).

Every module under fusion/, sensors/ and services/ is parsed (not imported) and each of
its imports, at any depth (function-level imports too), is checked against what its
package may import. A new arrow is a design decision: change the table here and the
picture in docs/architecture.md together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "fusion": "tracklayer.fusion",
    "sensors": "tracklayer.sensors",
    "services": "tracklayer.services",
}
IO_LIBRARIES = ("grpc", "google.protobuf", "mcap", "mcap_protobuf", "sqlite3", "tracklayer.v1")

S = "tracklayer.services."
SHARED = (S + "errors", S + "limits", S + "sqlite_db", S + "fork_policy", S + "gc_policy")
#: package (module-name prefix) -> the tracklayer modules it may import, besides itself.
ALLOWED: dict[str, tuple[str, ...]] = {
    S + "wire": ("tracklayer.fusion", "tracklayer.v1", *SHARED),
    S + "rpc": ("tracklayer.fusion.domain", "tracklayer.v1", S + "wire", *SHARED),
    S + "fusion_service": ("tracklayer.fusion", "tracklayer.v1", S + "wire", S + "rpc", *SHARED),
    S + "store_service": (
        "tracklayer.fusion",
        "tracklayer.v1",
        S + "wire",
        S + "rpc",
        S + "live_map",
        *SHARED,
    ),
    S + "live_map": ("tracklayer.v1", S + "rpc", *SHARED),
    S + "clients": (
        "tracklayer.fusion",
        "tracklayer.sensors",
        "tracklayer.v1",
        S + "wire",
        S + "rpc",
        *SHARED,
    ),
    S + "evaluation": ("tracklayer.fusion", "tracklayer.v1", S + "wire", *SHARED),
    S + "offline": (
        "tracklayer.fusion",
        "tracklayer.sensors",
        "tracklayer.v1",
        S + "wire",
        *SHARED,
    ),
    S + "ops": (
        "tracklayer",
        "tracklayer.fusion",
        "tracklayer.sensors",
        "tracklayer.v1",
        S + "wire",
        S + "rpc",
        S + "fusion_service",
        S + "store_service",
        S + "clients",
        S + "evaluation",
        S + "offline",
        *SHARED,
    ),
    S + "scaleout": (
        "tracklayer.fusion",
        "tracklayer.v1",
        S + "wire",
        S + "rpc",
        S + "fusion_service",
        *SHARED,
    ),
    S + "errors": (),
    S + "limits": ("tracklayer.fusion.domain",),
    S + "sqlite_db": (S + "errors",),
    S + "fork_policy": (),
    S + "gc_policy": (),
}


def modules() -> list[tuple[str, Path]]:
    out = []
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out.append((".".join([package, *parts]), path))
    return out


def imports(name: str, path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = modules()


def test_every_package_is_found():
    names = {n for n, _ in MODULES}
    assert {
        "tracklayer.fusion.core",
        "tracklayer.sensors.simulation",
        "tracklayer.services.cli.main",
    } <= names


@pytest.mark.parametrize("layer", ["tracklayer.fusion", "tracklayer.sensors"])
def test_fusion_and_sensors_do_no_io_and_never_import_services(layer):
    bad = []
    for name, path in MODULES:
        if not within(name, (layer,)):
            continue
        for imp in imports(name, path):
            if within(imp, IO_LIBRARIES + ("tracklayer.services",)):
                bad.append(f"{name} imports {imp}")
            if layer == "tracklayer.fusion" and within(imp, ("tracklayer.sensors",)):
                bad.append(f"{name} imports {imp}")
    assert not bad, "\n".join(bad)


def test_services_imports_point_down_the_map():
    bad = []
    for name, path in MODULES:
        rule = next((p for p in ALLOWED if within(name, (p,))), None)
        if rule is None:
            continue  # cli, testing and the public shims may import anything
        for imp in imports(name, path):
            if not imp.startswith("tracklayer") or within(imp, (rule,)):
                continue
            if imp in {"tracklayer", "tracklayer.__version__"} or within(imp, ALLOWED[rule]):
                continue
            bad.append(f"{name} imports {imp}")
    assert not bad, "\n".join(bad)


def test_no_command_module_imports_another():
    prefix = S + "cli.commands"
    bad = [
        f"{name} imports {imp}"
        for name, path in MODULES
        if within(name, (prefix,))
        for imp in imports(name, path)
        if within(imp, (prefix,)) and not within(imp, (name,)) and imp != prefix
    ]
    assert not bad, "\n".join(bad)


def test_fusion_core_and_services_never_import_the_cli():
    bad = [
        f"{name} imports {imp}"
        for name, path in MODULES
        if not within(name, (S + "cli", S + "testing"))
        for imp in imports(name, path)
        if within(imp, (S + "cli",))
    ]
    assert not bad, "\n".join(bad)


def test_nats_is_used_only_by_the_scale_out_package():
    """One place knows the broker (issue 14): the rest of the services stay as they were."""
    bad = [
        f"{name} imports {imp}"
        for name, path in MODULES
        if not within(name, (S + "scaleout",))
        for imp in imports(name, path)
        if within(imp, ("nats",))
    ]
    assert not bad, "\n".join(bad)
    assert any(within(imp, ("nats",)) for n, p in MODULES if within(n, (S + "scaleout",))
               for imp in imports(n, p))  # fmt: skip
