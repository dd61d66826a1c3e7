"""Sessions and Google credentials in the admin (pages in :mod:`sessions_redis.admin_views`)."""

from django.contrib import admin

from sessions_redis.admin_views import GoogleCredentialAdmin, RedisSessionAdmin
from sessions_redis.models import GoogleCredential, RedisSession

admin.site.register(RedisSession, RedisSessionAdmin)
admin.site.register(GoogleCredential, GoogleCredentialAdmin)
