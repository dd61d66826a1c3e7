"""Admin-only model: no table, it only gives the conversation pages a place in the admin.

``managed = False``: Django never creates or queries a table for it. It exists so the
admin index lists "Conversations" under "Chat", so permissions can be granted
(``view_conversation``, ``delete_conversation``, ``fork_conversation``), and so admin
actions are written to Django's ``LogEntry``. Conversations live in the checkpointer
(Redis db 1); see :mod:`chat.admin_service`.
"""

from django.db import models


class Conversation(models.Model):
    thread_id = models.CharField(primary_key=True, max_length=64)

    class Meta:
        managed = False
        default_permissions = ("view", "delete")
        permissions = [("fork_conversation", "Can fork a conversation from a checkpoint")]
        verbose_name = "conversation"
        verbose_name_plural = "conversations"

    def __str__(self) -> str:
        return f"conversation {self.thread_id}"
