"""Every variable the settings, ``config.py`` and ``make run`` read from the environment
is in the README's configuration table, and every row of the table is read somewhere."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READ_BY_SETTINGS = ["agenticpal/settings.py", "agenticpal/config.py", "agenticpal/serve.py"]
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$")
# Functions of the project that take a variable's name and read it.
READERS = {"positive_int", "seconds", "redis_url", "port", "_hsts_seconds", "_proxy_ssl_header"}
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE"}


def _is_environment(node: ast.expr) -> bool:
    """``env`` (django-environ's reader, or serve.py's environment dict), ``os.environ``."""
    if isinstance(node, ast.Name):
        return node.id in {"env", "environ"}
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def names_read(path: Path) -> set[str]:
    """The constant variable names a module passes to something that reads the environment."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Subscript) and _is_environment(node.value):
            args = [node.slice]  # os.environ["NAME"]
        elif isinstance(node, ast.Call):
            func = node.func
            reads = (
                (isinstance(func, ast.Name) and func.id in READERS | {"_port"})
                or (isinstance(func, ast.Attribute) and _is_environment(func.value))
                or (isinstance(func, ast.Attribute) and func.attr == "getenv")
            )
            if not reads or (isinstance(func, ast.Attribute) and func.attr == "setdefault"):
                continue
            args = node.args[:2]  # serve.py's _port(env, "PORT", 8000)
        else:
            continue
        for arg in args:
            value = arg.value if isinstance(arg, ast.Constant) else None
            if isinstance(value, str) and ENV_NAME.match(value) and value not in NOT_SETTINGS:
                found.add(value)
    return found


def readme_table() -> set[str]:
    """The variables named in the first column of the README's configuration table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows, "no table under ## Configuration"
    names: set[str] = set()
    for row in rows:
        first = row.split("|")[1]
        names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first))
    return names


def test_the_scanner_sees_each_way_of_reading() -> None:
    settings = names_read(ROOT / "agenticpal/settings.py")
    assert {"DEBUG", "SECRET_KEY", "SESSION_TTL_SECONDS", "REDIS_URL", "DATABASE_URL"} <= settings
    assert {"EMBEDDED_REDIS_PORT", "WORKSPACE_APPROVE_DRAFTS", "SECURE_HSTS_SECONDS"} <= settings
    assert {"HOST", "PORT", "EMBEDDED_REDIS_PORT"} <= names_read(ROOT / "agenticpal/serve.py")
    assert "AGENTICPAL_ENV_FILE" in names_read(ROOT / "agenticpal/config.py")


def test_every_variable_read_is_in_the_readme_table() -> None:
    read = set().union(*(names_read(ROOT / path) for path in READ_BY_SETTINGS))
    missing = read - readme_table()
    assert not missing, f"add these to the README's configuration table: {sorted(missing)}"


def test_every_row_of_the_table_is_read() -> None:
    read: set[str] = set()
    for package in ("agenticpal", "sessions_redis", "workspace", "chat"):
        for path in (ROOT / package).rglob("*.py"):
            read |= names_read(path)
    stale = readme_table() - read
    assert not stale, f"the README documents variables nothing reads: {sorted(stale)}"
