"""The package's shape: imports point one way, modules and functions stay small, __all__ sorted.

The layers are docs/design.md section 5 (linked from the README's "Development"), as data;
a module may import from its own layer and the layers below it, never above.
Imports under ``if TYPE_CHECKING:`` are for annotations only and do not count.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "deliverystate"

#: Lowest first: the packages (and the public modules at the root).  A name is a module
#: (``errors``) or a package (``rules``, with its modules).
LAYERS: list[set[str]] = [
    {"errors"},
    {"rules"},
    {"callbacks"},
    {"stores"},
    {"tracking"},
    {"diagrams", "simulate"},
    {"cli", "web", "postgres", "forward", "testing", "pytest_plugin", "__init__"},
]
#: Inside a package, lowest first; a package not named here (cli, web, testing) is one layer.
INNER: dict[str, list[set[str]]] = {
    #: Time, then the catalog, the lifecycle over it, the policy, the records, reconciliation.
    "rules": [
        {"_time"},
        {"_catalog"},
        {"_lifecycle"},
        {"_policy"},
        {"_events"},
        {"_reconcile"},
        {"_records"},
        {"__init__"},
    ],
    #: Code tables and JSON decoding, what a parse returns, fields, the fast path, the parser.
    "callbacks": [
        {"_formats", "_decode", "_results", "_archive", "_providers"},
        {"_fields", "_meta", "_twilio", "_vonage", "_smpp"},
        {"_fastpath", "_envelope"},
        {"_parse"},
        {"__init__"},
    ],
    #: Protocol, hooks and the message table's columns, unit of work and row encodings, the
    #: memory store and the SQL stores' parts (feeds included), the drivers, then the package.
    "stores": [
        {"_protocol", "_hooks", "_names", "_columns"},
        {"_work", "_rows"},
        {"_memfeed", "_sqlbase"},
        {"_memory", "_sqlread", "_retention", "_sqlfeed", "_sqlintake", "_sqlrows"},
        {"_sql"},
        {"_sqlite", "_postgres", "_pgschema", "_pgpool", "_pgfeed", "_pgarrays"},
        {"__init__"},
    ],
    #: What the tracker uses, the tracker, what uses the tracker, then the package.
    "tracking": [
        {"_collector", "_wire", "_receipts", "_listing", "_follow", "_prune", "_stats"},
        {"_deadlines", "_trend"},
        {"_tracker"},
        {"_replay"},
        {"__init__"},
    ],
}
MODULES = sorted(SRC.rglob("*.py"))


def module_name(path: Path) -> str:
    """deliverystate.x.y for src/deliverystate/x/y.py (packages without __init__)."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """The deliverystate modules ``path`` imports, outside TYPE_CHECKING blocks."""
    return imports_of(
        path.read_text(encoding="utf-8"), module_name(path), package=path.name == "__init__.py"
    )


def imports_of(source: str, module: str, *, package: bool) -> set[str]:
    """The deliverystate modules ``source`` (the text of ``module``) imports."""
    tree = ast.parse(source)
    here = module if package else module.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = here.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("deliverystate"):
                continue
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("deliverystate"))
    return {name for name in found if exists(name)}


def exists(module: str) -> bool:
    """Whether ``module`` is a module or package of the source tree."""
    path = SRC.parent / module.replace(".", "/")
    return path.is_dir() or path.with_suffix(".py").exists()


def layer_of(module: str) -> tuple[int, int]:
    """(layer, layer inside its package) of a deliverystate module."""
    parts = module.split(".")[1:] or ["__init__"]
    top = parts[0]
    layer = next(i for i, names in enumerate(LAYERS) if top in names)
    inner = 0
    if top in INNER:
        name = (parts[1:] or ["__init__"])[0]
        inner = next(i for i, names in enumerate(INNER[top]) if name in names)
    return layer, inner


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_point_down_the_layers(path: Path) -> None:
    """No module imports from a layer above its own."""
    here = layer_of(module_name(path))
    upward = sorted(m for m in imported_modules(path) if layer_of(m) > here)
    assert upward == [], f"{module_name(path)} (layer {here}) imports upward: {upward}"


def test_the_check_sees_an_upward_import() -> None:
    """An import of the tracker from the unit of work, or of the web app from events, is caught."""
    for source, module in [
        ("from ..tracking import Tracker", "deliverystate.stores._work"),
        ("from ..web import create_app", "deliverystate.rules._events"),
        ("import deliverystate.cli", "deliverystate.rules._catalog"),
    ]:
        (target,) = imports_of(source, module, package=False) - {"deliverystate"}
        assert layer_of(target) > layer_of(module), (source, module)
    typing_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..web import x\n"
    assert imports_of(typing_only, "deliverystate.rules._events", package=False) == set()


def test_every_module_has_a_layer() -> None:
    """A new module must be placed in the layers before it can be imported."""
    for path in MODULES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_modules_and_functions_stay_small(path: Path) -> None:
    """No module over 500 lines, no function over 80."""
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 500
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= 80, f"{node.name} is {length} lines"


def isort_key(name: str) -> tuple[int, str]:
    """isort's order (ruff's RUF022): CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_all_is_explicit_and_sorted(path: Path) -> None:
    """Each module declares __all__, sorted, and every name in it exists."""
    module = importlib.import_module(module_name(path))
    names = module.__dict__.get("__all__")
    assert names is not None, f"{module.__name__} has no __all__"
    assert list(names) == sorted(names, key=isort_key)
    for name in names:
        assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"


def test_the_design_sections_cited_by_tests_and_benchmarks_exist() -> None:
    """Every "docs/design.md section N" quoted in tests or benchmarks names a real section."""
    root = SRC.parent.parent
    design = (root / "docs" / "design.md").read_text(encoding="utf-8")
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", design, flags=re.M)}
    cited = set()
    for path in [*(root / "tests").glob("*.py"), *(root / "bench").glob("*.py")]:
        cited |= {int(n) for n in re.findall(r"docs/design\.md section (\d+)", path.read_text())}
    assert cited
    assert cited <= sections


def test_the_root_holds_at_most_twelve_modules_and_every_package_has_a_layer() -> None:
    """The package root stays small: the layers are folders, each placed in LAYERS."""
    modules = sorted(p.stem for p in SRC.glob("*.py"))
    packages = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists())
    assert len(modules) <= 12, modules
    placed = set().union(*LAYERS)
    assert set(modules) | set(packages) <= placed, sorted(set(modules) | set(packages) - placed)


def test_the_rules_and_the_parser_load_no_store() -> None:
    """Importing the rules or the callback parser loads neither a store nor SQLite."""
    code = (
        "import sys, deliverystate.rules, deliverystate.callbacks, deliverystate.rules._records\n"
        "loaded = sorted(m for m in sys.modules if m == 'sqlite3' or '.stores' in m)\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
