"""Conversations (checkpoints in Redis db 1) in the admin; pages in :mod:`chat.admin_views`."""

from django.contrib import admin

from chat.admin_views import ConversationAdmin
from chat.models import Conversation

admin.site.register(Conversation, ConversationAdmin)
