"""Admin-only models: no tables, they only give the Redis pages a place in the admin.

``managed = False`` and no fields but the key: Django never creates, queries or
migrates a table for them. It exists so that the admin index lists "Sessions"
under "Sessions (Redis)", so permissions can be granted per page
(``view_…`` to look, ``delete_…`` to act), and so every admin action is written to
Django's ``LogEntry`` with a content type. The data itself stays in Redis db 0; see
:mod:`sessions_redis.admin_service`.
"""

from django.db import models


class RedisSession(models.Model):
    session_id = models.CharField(primary_key=True, max_length=64)

    class Meta:
        managed = False
        default_permissions = ("view", "delete")
        verbose_name = "session"
        verbose_name_plural = "sessions"

    def __str__(self) -> str:
        return f"session {self.session_id}"
