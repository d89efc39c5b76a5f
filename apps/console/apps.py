from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConsoleConfig(AppConfig):
    name = "apps.console"
    label = "console"
    verbose_name = "Operator console"

    def ready(self) -> None:
        from apps.console.roles import roles_sync_after_migrate

        # After auth's own post_migrate handler (connected first), which creates the permissions.
        post_migrate.connect(roles_sync_after_migrate, dispatch_uid="console_roles_sync")
