from django.apps import AppConfig


class SessionsRedisConfig(AppConfig):
    name = "sessions_redis"
    verbose_name = "Sessions (Redis)"
