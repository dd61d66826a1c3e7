from django.apps import AppConfig


class AgenticPalConfig(AppConfig):
    """The project package as an app: its start-up checks and its static files (favicon)."""

    name = "agenticpal"
    verbose_name = "AgenticPal"

    def ready(self) -> None:
        from agenticpal import checks

        checks.register()
