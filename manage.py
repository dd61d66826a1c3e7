#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
from pathlib import Path

PROJECT_PACKAGES = {"agenticpal", "chat", "sessions_redis", "workspace", "tests"}


def _missing_dependency(exc: ImportError) -> None:
    """A python without the dependencies: say how to run this instead of a traceback."""
    if not exc.name or exc.name.partition(".")[0] in PROJECT_PACKAGES:
        raise exc  # a bug of ours, not a missing package
    venv = Path(__file__).resolve().parent / ".venv" / "bin" / "python"
    python = os.path.relpath(venv) if venv.exists() else ".venv/bin/python"
    command = " ".join([sys.argv[0] or "manage.py", *sys.argv[1:]])
    sys.stderr.write(
        f"{sys.executable} does not have AgenticPal's dependencies (no module named "
        f"{exc.name!r}). Run manage.py with the project's virtualenv:\n"
        f"    {python} {command}\n"
        "or use make (`make run`, `make redis`, `make test`)"
        + ("." if venv.exists() else "; `make run` creates .venv first.")
        + "\n"
    )
    sys.exit(1)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agenticpal.settings")
    try:
        from django.core.exceptions import ImproperlyConfigured
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        _missing_dependency(exc)

    try:
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 -- load settings: bad values stop here, in one line
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Configuration error: {exc}\n")
        sys.exit(2)
    except ImportError as exc:  # django is there, another dependency is not
        _missing_dependency(exc)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
