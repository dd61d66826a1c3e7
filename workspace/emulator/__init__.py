"""A local Google Workspace (Calendar v3, Gmail v1, Tasks v1) for development and tests.

``create_app()`` returns a Starlette app that speaks Google's REST paths, shapes and
errors over seeded, per-user, in-memory data; see ``app`` for the API and ``seed`` for
the sample week. No Django import: it runs standalone (``python -m workspace.emulator``).
"""

from .app import create_app

__all__ = ["create_app"]
