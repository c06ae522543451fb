"""The package's shape: no import cycle, no reaching into other modules' private names,
small workflow modules."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "keras_attn"
#: The workflow packages and modules held to about 400 lines a file.
SMALL = [
    "protocol",
    "tuning",
    "benchmark",
    "report",
    "data",
    "export",
    "predict.py",
    "attention_maps",
    "cli",
]
MAX_LINES = 420


def _modules():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _resolve(module, level, current, is_package):
    if not level:
        return module
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _imports(name, path, top_level_only):
    """(imported module, imported names) pairs of ``path``."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(node.module, node.level, name, path.name == "__init__.py")
            out.append((mod, [a.name for a in node.names]))
    return [(m, names) for m, names in out if m and m.split(".")[0] == "keras_attn"]


def _graph():
    """Module -> keras_attn modules it imports at module level (a submodule named in
    ``from package import submodule`` counts as that submodule)."""
    graph = {}
    for name, path in MODULES.items():
        deps = set()
        for mod, names in _imports(name, path, top_level_only=True):
            subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in MODULES]
            deps |= set(subs) if subs and len(subs) == len(names) else {mod}
        graph[name] = {d for d in deps if d in MODULES and d != name}
    return graph


def _longest_chain(graph):
    memo = {}

    def depth(node, seen=()):
        if node in seen:
            return [node]  # a cycle; test_no_import_cycle reports it
        if node not in memo:
            best = max((depth(d, (*seen, node)) for d in graph[node]), key=len, default=[])
            memo[node] = [node, *best]
        return memo[node]

    return max((depth(n) for n in graph), key=len)


def test_no_import_cycle():
    graph = _graph()
    # A package's __init__ importing its own submodules is how packages work; a submodule
    # importing back through its package's __init__ is what creates cycles.
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    cycles = [c for c in cycles if not _package_init_only(c)]
    assert not cycles, cycles


def _package_init_only(cycle):
    """A package's __init__ and its own submodules (parent imports child, child imports
    a sibling through the package path without running the cycle at import time)."""
    packages = {m for m in cycle if m in MODULES and MODULES[m].name == "__init__.py"}
    return all(any(m == p or m.startswith(p + ".") for p in packages) for m in cycle)


def test_no_module_reaches_into_another_modules_private_names():
    offenders = []
    for name, path in MODULES.items():
        for mod, names in _imports(name, path, top_level_only=False):
            own_package = name.rsplit(".", 1)[0] if "." in name else name
            for n in names:
                private = n.startswith("_") and not n.startswith("__")
                is_module = f"{mod}.{n}" in MODULES
                if private and not is_module and not mod.startswith(own_package):
                    offenders.append(f"{name}: from {mod} import {n}")
    assert not offenders, offenders


@pytest.mark.parametrize("part", SMALL)
def test_workflow_modules_stay_small(part):
    target = PACKAGE / part
    paths = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    big = {p.name: n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"over {MAX_LINES} lines: {big}"
