"""The folder tree's rules, read from the source: imports run one way, and each outside service has one seam.

- No import cycle among Driftline's modules (function-local imports count: they only hide a cycle; imports
  under ``if TYPE_CHECKING:`` are annotations that never run, and do not).
- confluent-kafka and aiokafka clients are constructed in producers/kafka.py only, and faust gets its broker
  from there too.
- The environment is read in stream_processors/config.py only.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("detectors", "producers", "stream_processors")
SCANNED = (*PACKAGES, "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources(folders=SCANNED) -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            out[_module_name(path)] = (path, ast.parse(path.read_text(), str(path)))
    return out


def _imports(name: str, tree: ast.Module, is_package: bool, modules: set[str]) -> set[str]:
    """The project modules ``name`` imports, anywhere in its body; ``from pkg import mod`` counts as ``pkg.mod``."""
    found = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module)
    return {m for m in found if m in modules and m != name}


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        test = node.test if isinstance(node, ast.If) else None
        if test is not None and (getattr(test, "id", None) == "TYPE_CHECKING" or
                                 getattr(test, "attr", None) == "TYPE_CHECKING"):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def import_graph(folders=PACKAGES) -> dict[str, set[str]]:
    sources = _sources(folders)
    modules = set(sources)
    return {name: _imports(name, tree, path.name == "__init__.py", modules) for name, (path, tree) in sources.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_local_and_from_imports():
    graph = import_graph()
    assert "stream_processors.config" in graph["stream_processors.cli"]
    assert "producers.kafka" in graph["producers.sdk"]  # from producers import kafka
    assert "stream_processors.faust_app.app" in graph["stream_processors.cli.worker"]  # imported inside run_worker


def test_type_checking_imports_are_not_edges_but_other_conditional_imports_are():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a.b\nelse:\n    import a.c\n"
                     "if flag:\n    import a.d\nif typing.TYPE_CHECKING:\n    import a.e\n")
    assert _imports("x", tree, False, {"a.b", "a.c", "a.d", "a.e"}) == {"a.c", "a.d"}


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert cycles == [], f"import cycles among Driftline modules: {cycles}"


# The one rule of column kinds (numeric, categorical, boolean) lives in detectors.kinds; replay, which turns
# files into events, uses it too, so a column replayed and the same column seen by the worker get one kind.
ONE_RULE_IMPORTS = {"producers.replay": {"detectors.kinds"}}


def test_dependencies_point_one_way():
    for name, imported in import_graph().items():
        top = name.split(".")[0]
        allowed = {"detectors": {"detectors"}, "producers": {"producers"},
                   "stream_processors": {"detectors", "producers", "stream_processors"}}[top]
        outside = {m for m in imported if m.split(".")[0] not in allowed} - ONE_RULE_IMPORTS.get(name, set())
        assert not outside, (name, outside)


def test_kinds_are_inferred_by_one_rule():
    """No second kind rule: only detectors.kinds decides a value's kind (replay only reads pandas dtypes first)."""
    graph = import_graph()
    assert "detectors.kinds" in graph["producers.replay"]
    assert "detectors.kinds" in graph["stream_processors.profile_registry"]


_CLIENTS = {"Producer", "Consumer", "AdminClient", "AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaClient"}
_KAFKA_SEAM = "producers.kafka"


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def test_kafka_clients_are_built_in_producers_kafka_only():
    offenders = []
    for name, (path, tree) in _sources().items():
        if name == _KAFKA_SEAM:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called_name(node) in _CLIENTS:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {_called_name(node)}(...)")
            if isinstance(node, ast.Call) and _called_name(node) == "App":
                if any(k.arg in ("broker", "broker_credentials") for k in node.keywords):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} faust.App(broker=...)")
            if isinstance(node, ast.Constant) and node.value in ("bootstrap.servers", "security.protocol"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert offenders == []


def test_the_kafka_seam_builds_every_client_kind():
    _path, tree = _sources(("producers",))[_KAFKA_SEAM]
    built = {_called_name(n) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert {"Producer", "Consumer", "AdminClient"} <= built


_REDIS_SEAM = "stream_processors.config"
_REDIS_CLIENTS = {"Redis", "StrictRedis", "RedisCluster", "from_url", "ConnectionPool"}


def _redis_client_calls(tree: ast.Module) -> list[tuple[int, str]]:
    return [(node.lineno, _called_name(node)) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and _called_name(node) in _REDIS_CLIENTS]


def test_redis_clients_are_built_in_config_only():
    offenders = [f"{path.relative_to(ROOT)}:{line} {called}(...)"
                 for name, (path, tree) in _sources().items() if name != _REDIS_SEAM
                 for line, called in _redis_client_calls(tree)]
    assert offenders == []
    _path, tree = _sources(("stream_processors",))[_REDIS_SEAM]
    assert {called for _line, called in _redis_client_calls(tree)} & {"from_url", "RedisCluster"}


def _reads_environment(tree: ast.Module) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" \
                and node.attr in ("environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"):
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "os" \
                and any(a.name in ("environ", "environb", "getenv", "getenvb") for a in node.names):
            lines.append(node.lineno)
    return lines


def test_the_environment_is_read_in_config_only():
    readers = {name: lines for name, (_path, tree) in _sources().items() if (lines := _reads_environment(tree))}
    assert set(readers) == {"stream_processors.config"}, readers


def test_the_environment_check_sees_both_spellings():
    assert _reads_environment(ast.parse("import os\nx = os.environ.get('A')")) == [2]
    assert _reads_environment(ast.parse("from os import getenv")) == [1]
