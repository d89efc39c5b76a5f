"""The operators and supervisors groups with their permissions (apps.console.roles)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def roles_create(apps, schema_editor):
    from apps.console.roles import roles_sync

    # Permissions are normally created after all migrations (post_migrate); create them now so the groups can
    # be granted them in this migration.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    roles_sync(apps)


def roles_delete(apps, schema_editor):
    from apps.console.roles import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("faq", "0001_initial"),
        ("training", "0001_initial"),
    ]

    operations = [migrations.RunPython(roles_create, roles_delete)]
