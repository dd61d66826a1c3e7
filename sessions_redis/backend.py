# Placeholder until the Redis session backend lands (issue: Redis session backend).
from django.contrib.sessions.backends.signed_cookies import SessionStore  # noqa: F401
