"""The layer contract of the README and DESIGN.md, checked: every import of every module under
src/pixelseg (imports inside functions included, found with ``ast``) goes to its own layer or
one below it, and no two modules import each other, directly or around a loop.

The order is the one the code really has, lowest first. It differs from the README's reading
order in one respect: ``metrics`` and ``config`` (with ``runs``, the run folder's layout, which
returns the typed config) sit below the engine, because the engine evaluates with the
confusion matrix and trains from the typed configuration, and tuning and analysis use both too.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # small helpers every layer may use; they import only each other
    ("helpers", ("pixelseg.constants", "pixelseg.errors", "pixelseg.files")),
    ("data", ("pixelseg.data",)),
    ("models", ("pixelseg.models",)),
    ("metrics", ("pixelseg.metrics",)),
    ("config", ("pixelseg.config", "pixelseg.config_overrides", "pixelseg.runs")),
    ("engine", ("pixelseg.engine",)),
    ("tuning", ("pixelseg.tuning",)),
    ("analysis", ("pixelseg.analysis",)),
    ("deploy", ("pixelseg.deploy",)),
    ("workflows", ("pixelseg.workflows",)),
    ("cli", ("pixelseg.cli", "pixelseg.__main__")),
    # the package itself: the public API re-exports from every layer; nothing imports it
    ("api", ("pixelseg",)),
]


def module_files(src: Path = SRC) -> dict[str, Path]:
    mods = {}
    for path in sorted((src / "pixelseg").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


MODULES = module_files()


def layer_of(module: str) -> int:
    best, index = "", None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, i
    if index is None:
        raise AssertionError(f"{module}: in no layer of tests/test_layers.py; add it to LAYERS")
    return index


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Lines of ``if TYPE_CHECKING:`` blocks: annotations only, never imported at run time."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(module: str, modules: dict[str, Path] = MODULES) -> list[tuple[int, str, bool]]:
    """(line, imported pixelseg module, only for type checking) for every import in the file."""
    path = modules[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    typing_only = _type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                parent = ".".join(base + ([node.module] if node.module else []))
            else:
                parent = node.module or ""
            # ``from pkg import sub`` imports the module pkg.sub; ``from pkg import name``, pkg
            targets = [
                f"{parent}.{a.name}" if f"{parent}.{a.name}" in modules else parent
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            if target == "pixelseg" or target.startswith("pixelseg."):
                while target not in modules:  # pixelseg.x.name: the module pixelseg.x
                    target = target.rpartition(".")[0]
                entry = (node.lineno, target, node.lineno in typing_only)
                if entry not in found:  # from x import a, b: one import of x
                    found.append(entry)
    return found


def _shown(path: Path) -> str:
    """.../src/pixelseg/data/low.py -> pixelseg/data/low.py"""
    text = path.as_posix()
    return text[text.rindex("/pixelseg/") + 1 :]


def layer_violations(modules: dict[str, Path] = MODULES) -> list[str]:
    """One line per import that goes up the layers, naming the file, line and both layers."""
    bad = []
    for module, path in modules.items():
        mine = layer_of(module)
        for line, target, _ in imports_of(module, modules):
            theirs = layer_of(target)
            if theirs > mine:
                allowed = ", ".join(name for name, _ in LAYERS[: mine + 1])
                bad.append(
                    f"{_shown(path)}:{line} imports {target} ({LAYERS[theirs][0]}): "
                    f"{LAYERS[mine][0]} may import only {allowed}"
                )
    return bad


def import_cycles(modules: dict[str, Path] = MODULES) -> list[list[str]]:
    """Groups of modules that import each other at run time, around a loop of any length
    (imports in functions included; ``if TYPE_CHECKING:`` imports and a module's own parent
    packages, which Python imports first anyway, left out)."""
    graph = {
        m: sorted(
            {
                t
                for _, t, typing_only in imports_of(m, modules)
                if not typing_only and t != m and not m.startswith(t + ".")
            }
        )
        for m in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for m in graph:
        if m not in index:
            visit(m)
    return cycles


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer_of(module)  # raises naming a module that no layer holds


def test_every_import_goes_down_the_layers():
    bad = layer_violations()
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycles():
    cycles = import_cycles()
    assert not cycles, "modules that import each other:\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_checker_sees_imports_in_functions_and_names_the_file(tmp_path):
    """It fails on what issue 14 found: an import inside a function that goes up a layer, and
    two modules that import each other; ``if TYPE_CHECKING:`` imports are no cycle."""
    files = {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/low.py": "def f():\n    from ..deploy.predict import load\n",
        "data/typed.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import low\n"
        ),
        "deploy/__init__.py": "",
        "deploy/predict.py": "from ..data import low, typed\n",
    }
    for name, text in files.items():
        (tmp_path / "pixelseg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pixelseg" / name).write_text(text)
    modules = module_files(tmp_path)
    assert imports_of("pixelseg.data.low", modules) == [(2, "pixelseg.deploy.predict", False)]
    assert imports_of("pixelseg.data.typed", modules) == [(3, "pixelseg.data.low", True)]
    assert layer_violations(modules) == [
        "pixelseg/data/low.py:2 imports pixelseg.deploy.predict (deploy): data may import only "
        "helpers, data"
    ]
    assert import_cycles(modules) == [["pixelseg.data.low", "pixelseg.deploy.predict"]]
