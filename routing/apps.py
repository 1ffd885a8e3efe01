from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth import get_user_model
        from simple_history import register

        from audit.history import history_person
        from routing import signals  # noqa: F401  (connects the rule-set cache invalidation)
        from routing.governance import owner_signals  # noqa: F401  (a deactivated owner's rules: notices)

        # Owners and queue members are user accounts; track their changes with the routing models.
        user_model = get_user_model()
        if not hasattr(user_model, "history"):
            register(user_model, app=self.name, get_user=history_person)
