from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from audit.db_roles import grant_after_migrate

        # Once per migrate (sent per app: this app's), after every migration ran: the application role's grants.
        post_migrate.connect(grant_after_migrate, sender=self, dispatch_uid="audit.grant_after_migrate")
