"""The admin's handle on ``credentials:<email>`` (an unmanaged model: no table).

It gives the "Google credentials" page a place under "Google Workspace" in the
admin, per-page permissions (``view_…`` to look, ``delete_…`` to revoke) and a
content type for ``LogEntry``. The data stays in Redis (:mod:`workspace.credentials`).
"""

from django.db import models


class GoogleCredential(models.Model):
    user_email = models.CharField(primary_key=True, max_length=254)

    class Meta:
        managed = False
        default_permissions = ("view", "delete")
        verbose_name = "Google credential"
        verbose_name_plural = "Google credentials"

    def __str__(self) -> str:
        return f"Google credentials of {self.user_email}"
