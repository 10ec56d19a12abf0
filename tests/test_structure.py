"""The shape of the code: modules that depend one way, and one path for a ticket's state.

- Every module of ``bot`` and ``storage`` imports on its own in a fresh interpreter (no module
  works only because another of ours was imported first; the libraries are loaded once and
  each module is imported in a forked child that holds none of ours).
- The import graph — every import, at module level or inside a function, except those only
  for type checkers — has no cycle: a module that needs a shared piece gets it from a lower
  layer, never by importing inside a function to dodge a cycle.
- A ticket's state is assigned in one place, ``bot.lifecycle.apply`` (which asks the state
  table first); no code calls a repository ``transition`` or writes the state column itself.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "storage")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The modules of ours that ``path`` imports at run time (anywhere in the file). A
    package's own submodules importing their siblings through it (``from pkg import parse``)
    do not depend on the package: it is being imported already when they run."""
    found: set[str] = set()
    ancestors = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module not in ancestors:
                found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in modules}


def test_the_import_graph_has_no_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) - {name} for name, path in modules.items()}
    done: set[str] = set()
    cycles: list[list[str]] = []

    def walk(name: str, stack: list[str]) -> None:
        if name in stack:
            cycles.append([*stack[stack.index(name) :], name])
            return
        if name in done:
            return
        for dep in sorted(graph[name]):
            walk(dep, [*stack, name])
        done.add(name)

    for name in sorted(graph):
        walk(name, [])
    assert not cycles, "\n".join(" → ".join(c) for c in cycles)


#: Run in a subprocess: import the third-party libraries once, then for each module fork a
#: child in which nothing of ours is loaded yet, and import that module alone there.
_FRESH = r"""
import importlib, os, sys
for lib in ("aiohttp", "sqlalchemy", "sqlalchemy.ext.asyncio", "pydantic", "pydantic_settings",
            "alembic", "telegram", "slack_sdk", "slack_bolt", "cryptography", "numpy", "jieba",
            "prometheus_client", "apscheduler", "defusedxml", "av", "faster_whisper"):
    importlib.import_module(lib)
assert not [m for m in sys.modules if m.split(".")[0] in ("bot", "storage")]
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as exc:
            print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(name)
print(" ".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    names = sorted(_modules())
    assert len(names) > 50
    result = subprocess.run(
        [sys.executable, "-c", _FRESH, *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]


def _state_assignments(path: Path) -> list[tuple[int, str]]:
    """``<something>.state = …`` in ``path``: (line, the something)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                if isinstance(t, ast.Attribute) and t.attr == "state":
                    out.append((node.lineno, ast.unparse(t.value)))
    return out


def test_a_ticket_s_state_changes_only_through_the_lifecycle() -> None:
    modules = _modules()
    sources = {name: path.read_text(encoding="utf-8") for name, path in modules.items()}
    callers = [name for name, text in sources.items() if "repo.transition" in text]
    assert callers == []
    # The state attribute is assigned for tickets only by lifecycle.apply; the SLA clocks'
    # own ``state`` (the state a stay clock measures) is theirs.
    allowed = {("bot.lifecycle", "ticket"), ("bot.sla.clocks", "clock"), ("bot.errors", "self")}
    found = {
        (name, owner, line)
        for name, path in modules.items()
        for line, owner in _state_assignments(path)
    }
    assert {(name, owner) for name, owner, _ in found} <= allowed, sorted(found)
    assert ("bot.lifecycle", "ticket") in {(name, owner) for name, owner, _ in found}
    # Storage has no shortcut either: no function of its moves a ticket (the unit of work's
    # writer stores what the lifecycle decided, with a compare-and-set on the version).
    defined = {
        node.name
        for name, path in modules.items()
        if name.startswith("storage.")
        for node in ast.walk(ast.parse(sources[name]))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    assert not defined & {"transition", "set_state", "bump_version", "set_ticket_fields"}
