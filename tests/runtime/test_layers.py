"""The runtime's layering, read from its imports: data flows one way, request types at the bottom, trigger adapters
at the top (docs/architecture.md draws it).

Every import counts, type-only ones and those inside functions included. A module may import only modules of its
own layer or below; there are no cycles; the longest import chain is at most six modules (package faces, the
``__init__`` modules, skipped as in the project's structure figures).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "functions" / "inference" / "modelfn_runtime"

LAYERS = [
    ("foundation", {"environment", "http", "errors", "modelcard", "digest", "aws", "observability", "identity",
                    "tokens"}),
    ("types", {"envelope"}),
    ("contract", {"validation", "limits", "tensors", "interfaces"}),
    ("model", {"session", "providers", "cuda", "custom_ops", "artifacts", "cards"}),
    ("protocols", {"protocols.*", "openapi", "openapi_schemas", "playground", "readiness", "encoding"}),
    ("service", {"service", "metering", "payloads"}),
    ("jobs", {"jobs.*"}),
    ("triggers", {"triggers.*"}),
    ("handler", {"handler", "snapstart", "usage", "authorizer"}),
]
MAX_DEPTH = 6


def layer_of(module: str) -> int:
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if module == member or member.endswith(".*") and (module == member[:-2] or module.startswith(member[:-1])):
                return index
    raise AssertionError(f"{module} has no layer: add it to LAYERS in tests/runtime/test_layers.py (and docs/architecture.md)")


def runtime_imports(root: Path = RUNTIME) -> tuple[dict[str, set[str]], set[str]]:
    """``{module: modules it imports}`` inside the runtime (names relative to the package), and the package faces."""
    modules: dict[str, ast.Module] = {}
    faces = set()
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        if name.endswith("__init__"):
            name = name.removesuffix("__init__").rstrip(".") or "__init__"
            faces.add(name)
        modules[name] = ast.parse(path.read_text())
    graph: dict[str, set[str]] = defaultdict(set)
    for name, tree in modules.items():
        package = name.split(".")[:-1] if name not in faces else name.split(".")
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name.removeprefix("modelfn_runtime.") for a in node.names if a.name.startswith("modelfn_runtime.")]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = package[: len(package) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                elif (node.module or "").startswith("modelfn_runtime"):
                    base = node.module.removeprefix("modelfn_runtime").lstrip(".")
                else:
                    continue
                subs = [f"{base}.{a.name}".lstrip(".") for a in node.names if f"{base}.{a.name}".lstrip(".") in modules]
                targets = subs or [base]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph, faces


def longest_chain(graph: dict[str, set[str]], faces: set[str]) -> list[str]:
    memo: dict[str, list[str]] = {}

    def chain(module: str) -> list[str]:
        if module not in memo:
            below = [chain(t) for t in graph[module] if t not in faces]
            memo[module] = [module, *max(below, key=len, default=[])]
        return memo[module]

    return max((chain(m) for m in list(graph) if m not in faces), key=len)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_no_module_imports_a_layer_above_it():
    graph, _ = runtime_imports()
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
              for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a)]
    assert upward == []


def test_no_import_cycles_and_short_chains():
    graph, faces = runtime_imports()
    assert cycles(graph) == []
    chain = longest_chain(graph, faces)
    assert len(chain) <= MAX_DEPTH, " -> ".join(chain)


def test_trigger_adapters_are_imported_by_the_handler_only():
    graph, _ = runtime_imports()
    importers = {a for a, targets in graph.items() for b in targets if b.startswith("triggers") and not a.startswith("triggers")}
    assert importers == {"handler"}


def test_the_trigger_interface_has_no_stubs():
    from modelfn_runtime import triggers

    for path in (RUNTIME / "triggers").glob("*.py"):
        assert "NotImplementedError" not in path.read_text(), path.name
    for trigger in [*triggers.TRIGGERS, triggers.UnsupportedTrigger()]:
        assert isinstance(trigger, triggers.Trigger) and trigger.name
