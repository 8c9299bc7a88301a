"""The package's layers, read from its own imports: nothing imports upward, and there are no import circles."""

import ast
from pathlib import Path

import edgeseg

ROOT = Path(edgeseg.__file__).parent
# Bottom to top. A module may import its own layer and the ones below it.
LAYERS = [
    {"edgeseg", "edgeseg.choice", "edgeseg.contract", "edgeseg.errors", "edgeseg.io", "edgeseg.progress", "edgeseg.quiet", "edgeseg.runs",
     "edgeseg.stop_signals"},
    {"edgeseg.runtime"},
    {"edgeseg.data"},
    {"edgeseg.evaluation"},
    {"edgeseg.trainer"},
    {"edgeseg.export"},
    {"edgeseg.benchmarks"},
    {"edgeseg.cli", "edgeseg.__main__"},
]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in layer if m != "edgeseg"):
            return i
    assert module == "edgeseg", module
    return 0


def _imports() -> dict[str, set[str]]:
    graph = {}
    for path in ROOT.rglob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgeseg"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("edgeseg")}
        graph[_module(path)] = found
    return graph


def test_nothing_imports_up_the_layers():
    upward = [f"{m} -> {i}" for m, targets in _imports().items() for i in targets if _layer(i) > _layer(m)]
    assert not upward, upward


def test_there_are_no_import_circles():
    graph = _imports()
    modules = set(graph)

    def resolve(name):  # "from edgeseg.x import y" may name a module or a package's attribute
        return name if name in modules else None

    edges = {m: {t for t in map(resolve, targets) if t and t != m} for m, targets in graph.items()}
    circles, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for t in edges[m]:
            if state.get(t) == "open":
                circles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not circles, circles


def test_tests_that_train_are_marked_slow():
    """Every test that trains or exports a model says so (``-m "not slow"`` is the quick suite)."""
    import re

    tests = Path(__file__).parent
    unmarked = []
    for path in tests.glob("test_*.py"):
        text = path.read_text()
        if re.search(r"^pytestmark = pytest\.mark\.slow", text, re.M):
            continue
        tree = ast.parse(text)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                body = ast.get_source_segment(text, node)
                marks = " ".join(ast.unparse(d) for d in node.decorator_list)
                if re.search(r"_interrupted_run\(|interrupted_training\(|\btrain\(config|export_model\(", body) \
                        and "slow" not in marks:
                    unmarked.append(f"{path.name}::{node.name}")
    assert not unmarked, unmarked


def test_the_trainer_holds_only_what_needs_tensorflow():
    """TF-free code that other layers use (data, metrics, evaluation, labelling) lives below the trainer: every
    trainer module but the package's own ``__init__`` imports TensorFlow or Keras, at its top or in a function."""
    free = []
    for path in sorted((ROOT / "trainer").glob("*.py")):
        if path.name == "__init__.py":
            continue
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
        if not names & {"tensorflow", "keras"}:
            free.append(path.name)
    assert not free, free
