"""Settings for the test suite: the project's settings with test-friendly environment.

Redis URLs are replaced at run time by ``tests/conftest.py`` with servers the suite
starts itself; the default below is never connected to.
"""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1")  # unused: conftest overrides
os.environ.setdefault("DATABASE_URL", "sqlite://:memory:")
os.environ["AGENTICPAL_ENV_FILE"] = os.devnull  # a developer's .env must not leak into tests

os.environ.setdefault("AGENTICPAL_OFFLINE_WORD_DELAY", "0.02")
from agenticpal.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
