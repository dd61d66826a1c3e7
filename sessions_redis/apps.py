from django.apps import AppConfig


class SessionsRedisConfig(AppConfig):
    name = "sessions_redis"
    verbose_name = "Sessions (Redis)"

    def ready(self) -> None:
        from sessions_redis import signals  # noqa: F401  (connects the receivers)
