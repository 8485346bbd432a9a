"""The package's layers: data → nn → losses → config → models → training → metrics / inference →
cli / api. No module imports a higher layer, no import cycle, no private name across packages."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gankit"
RANKS = {"errors": 0, "version": 0, "io": 0, "runtime": 0, "distributed": 0, "data": 1, "nn": 2, "losses": 3,
         "config": 4, "models": 5, "training": 6, "inference": 6, "metrics": 7, "serve": 8, "cli": 8, "api": 8,
         "bench": 8, "launch": 9, "__init__": 9, "__main__": 9}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported gankit module, imported names) of every import statement, top-level or nested."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gankit"):
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("gankit")]
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, list[tuple[str, list[str]]]]:
    return {module_name(p): imports(p) for p in SRC.rglob("*.py")}


def test_every_module_has_a_layer():
    assert {layer(m) for m in graph()} <= set(RANKS)


def test_no_import_from_a_lower_layer_to_a_higher_one():
    bad = [f"{m} → {target}" for m, deps in graph().items() for target, _ in deps
           if RANKS[layer(target)] > RANKS[layer(m)]]  # fmt: skip
    assert not bad, "layer inversions:\n" + "\n".join(bad)


def test_models_and_metrics_never_import_training():
    bad = [f"{m} → {t}" for m, deps in graph().items() for t, _ in deps
           if layer(m) in ("models", "metrics", "inference") and layer(t) == "training"]  # fmt: skip
    assert not bad


def test_no_import_cycles():
    full = graph()
    g = {m: {t for t, _ in deps if t in full} for m, deps in full.items()}
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in g[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " → ".join([*stack[stack.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for m in g:
        if m not in state:
            visit(m, [m])


def test_no_private_name_imported_from_another_package():
    bad = [f"{m} imports {t}.{n}" for m, deps in graph().items() for t, names in deps for n in names
           if n.startswith("_") and layer(t) != layer(m)]  # fmt: skip
    assert not bad
