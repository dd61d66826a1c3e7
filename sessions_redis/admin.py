"""Sessions in the admin (pages in :mod:`sessions_redis.admin_views`)."""

from django.contrib import admin

from sessions_redis.admin_views import RedisSessionAdmin
from sessions_redis.models import RedisSession

admin.site.register(RedisSession, RedisSessionAdmin)
