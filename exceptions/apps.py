from django.apps import AppConfig


class ExceptionsConfig(AppConfig):
    name = "exceptions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from exceptions import checks  # noqa: F401  (registers the queue-owner system checks)
