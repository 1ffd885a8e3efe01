"""The house rules that import-linter's contracts (pyproject.toml, `make lint`) cannot state alone: tasks found
by autodiscovery under explicit names, no import dodged inside a function, no import circle across the apps,
and every module placed in a layer."""

import ast
import tomllib
from pathlib import Path

import grimp
import pytest
from django.conf import settings

from config.celery import app
from routing.dispatch import TaskName

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("routing", "exceptions", "audit", "config")
# Django's registration: an app's models module imports the models kept in its subpackages.
MODEL_REGISTRATION = "routing.models"


def _source_files():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.fixture(scope="module")
def registered_tasks() -> set[str]:
    app.loader.import_default_modules()  # what a worker does at start: autodiscover_tasks over TASK_PACKAGES
    return {name for name in app.tasks if not name.startswith("celery.")}


def test_every_task_work_is_handed_to_is_registered_by_autodiscovery(registered_tasks):
    assert TaskName.all() <= registered_tasks


def test_every_registered_task_is_named_in_dispatch(registered_tasks):
    assert registered_tasks == TaskName.all()


def test_beat_schedules_only_registered_tasks(registered_tasks):
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled <= registered_tasks, scheduled - registered_tasks


def test_every_task_declares_its_name():
    unnamed = []
    for path in _source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "shared_task":
                if not any(keyword.arg == "name" for keyword in node.keywords):
                    unnamed.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert unnamed == []


def _imports_inside_functions(tree: ast.AST):
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    yield function, node.lineno, node.module
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        yield function, node.lineno, alias.name


def test_no_project_import_hides_inside_a_function():
    """Only an AppConfig.ready() imports the project late (Django's hook for signal wiring)."""
    hidden = [
        f"{path.relative_to(ROOT)}:{line} {module}"
        for path in _source_files()
        for function, line, module in _imports_inside_functions(ast.parse(path.read_text()))
        if module.split(".")[0] in PACKAGES and not (path.name == "apps.py" and function.name == "ready")
    ]
    assert hidden == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the import circles, each as the set of modules in it."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            circle = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                circle.add(member)
                if member == module:
                    break
            if len(circle) > 1:
                circles.append(circle)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def test_no_import_circle_across_the_apps():
    imports = grimp.build_graph(*PACKAGES)
    graph = {}
    for module in imports.modules:
        imported = imports.find_modules_directly_imported_by(module)
        if module == MODEL_REGISTRATION:
            imported = {name for name in imported if not name.endswith(".models")}
        graph[module] = imported
    assert _strongly_connected(graph) == []


def test_every_module_sits_in_a_layer():
    """The layers contract names modules one by one, so a new module must be given its place."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [contract["layers"] for contract in contracts if contract["type"] == "layers"]
    placed = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    framework = {"apps", "settings", "settings_test", "wsgi", "asgi"}  # Django's and the servers' entry files
    unplaced = [
        _module_name(path)
        for path in _source_files()
        if path.name != "__init__.py"
        and path.stem not in framework
        and not any(_module_name(path) == name or _module_name(path).startswith(name + ".") for name in placed)
    ]
    assert unplaced == []
