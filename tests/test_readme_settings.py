"""Every environment variable the product reads is in README's "Configuration (environment)" table, and the
README's commands run from a fresh clone as printed."""

import ast
import re

from config import env
from tests.conftest import ROOT

PACKAGES = ("config", "routing", "exceptions", "audit")
ENV_HELPERS = {name for name in dir(env) if name.startswith("env_")}  # config/env.py's readers
# Read, but not settings anyone sets: Django's own selector of the settings module, and the flag manage.py
# raises for `migrate` alone (README: Database roles).
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE", "HANDOFF_DATABASE_AS_OWNER"}
# The test suite's settings: defaults for the tests, and knobs only tests turn.
TEST_SETTINGS = ROOT / "config" / "settings_test.py"


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and getattr(node.value, "id", None) == "os"


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _reads_environment(call: ast.Call, helpers: set[str]) -> bool:
    func = call.func
    name = getattr(func, "id", None) or getattr(func, "attr", None)
    return (
        name in helpers
        or (isinstance(func, ast.Attribute) and func.attr in {"get", "setdefault"} and _is_os_environ(func.value))
        or (name == "getenv" and getattr(getattr(func, "value", None), "id", None) == "os")
    )


def _wrappers(tree: ast.AST) -> set[str]:
    """Functions of the module that read the variable named by their first parameter (`_positive(name, 2)`)."""
    found = set()
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef) and function.args.args:
            first = function.args.args[0].arg
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and node.args
                    and getattr(node.args[0], "id", None) == first
                    and _reads_environment(node, ENV_HELPERS)
                ):
                    found.add(function.name)
    return found


def environment_reads(tree: ast.AST) -> set[str]:
    """Names read through config/env.py's helpers (or a function of the module wrapping one),
    os.environ.get/setdefault/[...] and os.getenv."""
    helpers = ENV_HELPERS | _wrappers(tree)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and _literal(node.args[0]):
            if _reads_environment(node, helpers):
                names.add(_literal(node.args[0]))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_os_environ(node.value):
            if _literal(node.slice):
                names.add(_literal(node.slice))
    return names


def product_environment_reads() -> dict[str, set[str]]:
    """Variable name → the files that read it, over the product's packages and manage.py (not the test settings,
    tests or bench)."""
    files = [ROOT / "manage.py"] + [
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and path != TEST_SETTINGS
    ]
    found: dict[str, set[str]] = {}
    for path in files:
        for name in environment_reads(ast.parse(path.read_text(), filename=str(path))):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def configuration_table() -> set[str]:
    """The backticked names in the first column of the Configuration (environment) table."""
    names = set()
    for line in readme_section("Configuration (environment)").splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_the_scan_finds_every_way_a_variable_is_read():
    source = """
import os
from config.env import env_int
A = env_int("HELPER", 1)
B = os.environ.get("GET")
C = os.environ["ITEM"]
D = os.getenv("GETENV")
os.environ.setdefault("SETDEFAULT", "1")
os.environ["WRITTEN"] = "1"
E = f"{env_int('IN_FSTRING', 8)}-23"
def positive(name, default):
    return max(1, env_int(name, default))
F = positive("WRAPPED", 2)
G = positive(3, "NOT_A_NAME")
"""
    assert environment_reads(ast.parse(source)) == {
        "HELPER",
        "GET",
        "ITEM",
        "GETENV",
        "SETDEFAULT",
        "IN_FSTRING",
        "WRAPPED",
    }


def test_every_environment_variable_the_product_reads_is_in_the_readme_table():
    reads = product_environment_reads()
    assert "DJANGO_SECRET_KEY" in reads and "HANDOFF_PROXY_COUNT" in reads  # the scan sees settings.py
    documented = configuration_table()
    missing = {name: sorted(files) for name, files in reads.items() if name not in documented | NOT_SETTINGS}
    assert not missing, (
        "Add these to README's 'Configuration (environment)' table (variable, default, what it does): "
        + "; ".join(f"{name} (read in {', '.join(files)})" for name, files in sorted(missing.items()))
    )


def test_the_readme_table_lists_nothing_the_product_does_not_read():
    stale = configuration_table() - set(product_environment_reads())
    assert not stale, f"README's configuration table lists variables nothing reads: {sorted(stale)}"


def test_readme_and_docs_commands_use_the_projects_virtualenv():
    """A fresh clone has Django only in .venv (make demo creates it): a bare `python manage.py` fails with
    "No module named 'django'", so every command line in the README and docs/ says `.venv/bin/python manage.py`."""
    lines = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for line in path.read_text().splitlines()
    ]
    bare = [line for line in lines if re.search(r"(?<!\.venv/bin/python )\bmanage\.py [a-z]", line)]
    assert not bare, "Write these as `.venv/bin/python manage.py …`:\n" + "\n".join(bare)
    bare_tools = [line for line in lines if re.search(r"(?<!\.venv/bin/)\b(celery|gunicorn) (-A|-c|config\.)", line)]
    assert not bare_tools, "Write these as `.venv/bin/celery …` / `.venv/bin/gunicorn …`:\n" + "\n".join(bare_tools)
