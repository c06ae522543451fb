"""The package's shape: no import cycle, no reaching into other modules' private names,
the library loading without the workflows, no deprecation shims, sub-packages whose
``__all__`` holds their entry points (functions and classes) only, the layout table up to
date. (A file's length is a review concern, not a test: docs/development.md.)"""

import ast
import importlib
import inspect
import warnings
from pathlib import Path

import pytest
from conftest import import_or_skip

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "keras_attn"


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


def _loaded_with(name, graph):
    """The keras_attn modules that ``import name`` runs: its module-level imports, followed
    through, with the packages each one sits in."""
    seen, todo = set(), [name]
    while todo:
        parts = todo.pop().split(".")
        for mod in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            if mod in MODULES and mod not in seen:
                seen.add(mod)
                todo.extend(graph[mod])
    return seen


LIBRARY = ("zoo", "layers", "insert", "export", "predict", "attention_maps", "flops")
WORKFLOWS = ("protocol", "tuning", "benchmark", "report", "cli")


def test_the_library_loads_without_the_workflows():
    """The models, layers, export, prediction and attention maps read on their own: loading
    them runs no module of the protocol, the tuner, the benchmark, the report or the CLI."""
    graph = _graph()
    for name in LIBRARY:
        loaded = _loaded_with(f"keras_attn.{name}", graph)
        workflow = sorted(m for m in loaded if m.split(".")[1:2] and m.split(".")[1] in WORKFLOWS)
        assert not workflow, f"keras_attn.{name} loads {workflow}"


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


# ------------------------------------------------------------------ the public surface

#: The sub-packages of keras_attn (every folder with an ``__init__.py``), found in the tree.
SUB_PACKAGES = sorted(
    p.parent.name for p in PACKAGE.glob("*/__init__.py") if not p.parent.name.startswith("_")
)
#: Files still holding the deprecated ``python -m keras_attn.benchmark``: the command line's
#: move to keras_attn/cli/ deletes them (then this entry goes too).
_DEPRECATIONS = {"DeprecationWarning", "PendingDeprecationWarning"}


def _deprecations(path):
    """What in ``path`` raises, warns with or subclasses a deprecation warning."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
            if bases & _DEPRECATIONS:
                found.append(f"line {node.lineno}: class {node.name} is a deprecation warning")
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in _DEPRECATIONS:
                found.append(f"line {node.lineno}: raises {exc.id}")
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "warn":
            args = [*node.args, *(k.value for k in node.keywords if k.arg == "category")]
            named = {a.id for a in args if isinstance(a, ast.Name)} & _DEPRECATIONS
            found += [f"line {node.lineno}: warns with {n}" for n in sorted(named)]
    return found


def test_no_module_raises_or_defines_a_deprecation_warning():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        if found := _deprecations(path):
            offenders[where] = found
    assert not offenders, offenders


def test_the_deprecation_check_can_fail(tmp_path):
    shim = tmp_path / "shim.py"
    shim.write_text(
        "import warnings\n"
        "class Old(DeprecationWarning): ...\n"
        "def __getattr__(name):\n"
        "    warnings.warn('moved', DeprecationWarning)\n"
        "    raise DeprecationWarning(name)\n"
    )
    assert sorted(_deprecations(shim)) == [
        "line 2: class Old is a deprecation warning",
        "line 4: warns with DeprecationWarning",
        "line 5: raises DeprecationWarning",
    ]


def _sub_package(name):
    """The imported sub-package, or a skip where it needs what is not installed (KerasTuner)."""
    return import_or_skip(f"keras_attn.{name}")


@pytest.mark.parametrize("name", SUB_PACKAGES)
def test_star_import_of_a_sub_package_is_silent(name):
    _sub_package(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(f"from keras_attn.{name} import *", {})


@pytest.mark.parametrize("name", SUB_PACKAGES)
def test_a_sub_packages_all_holds_functions_and_classes(name):
    module = _sub_package(name)
    entry = (inspect.isfunction, inspect.isclass)
    others = [n for n in module.__all__ if not any(is_(getattr(module, n, None)) for is_ in entry)]
    assert not others, f"keras_attn.{name}.__all__ holds what is not a function or class: {others}"


def test_no_name_is_public_in_two_sub_packages():
    homes = {}
    for name in SUB_PACKAGES:
        try:
            module = importlib.import_module(f"keras_attn.{name}")
        except ImportError:
            continue  # reported by the tests above
        for public in module.__all__:
            homes.setdefault(public, []).append(name)
    clashes = {public: where for public, where in homes.items() if len(where) > 1}
    assert not clashes, clashes


def test_the_top_level_keeps_its_eleven_names():
    import keras_attn

    assert sorted(keras_attn.__all__) == [
        "AttentionCNN",
        "__version__",
        "build",
        "count_trainable_params",
        "get_config",
        "insert_attention",
        "layers",
        "list_models",
        "load",
        "load_pretrained",
        "register",
    ]


def test_development_md_shows_the_layout_as_it_is():
    import layout_doc

    page = layout_doc.PAGE.read_text()
    assert page == layout_doc.page_with_table(page), (
        "docs/development.md's layout is out of date: run `python tests/layout_doc.py`"
    )
    listed = {path for path, _ in layout_doc.rows()}
    assert {
        f"src/keras_attn/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.rglob("*.py")
    } == {p + "__init__.py" if p.endswith("/") else p for p in listed}
