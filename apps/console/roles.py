"""The console's roles, as Django groups with permissions.

| group | may |
|---|---|
| operators | open the console; take over, reply, hand back, close; correct bot replies; add a customer's question as an FAQ phrasing; canned responses |
| supervisors | all of that, plus create/edit FAQ entries, close conversations others hold, read the audit log, everything in apps.training (review and export), and manage users (in the admin) |

The groups are created by migration `console.0002_roles`, and kept in step after every `migrate` (and after a
test database flush) by `roles_sync` on post_migrate, so permissions that arrive later with another app's
migration (training review, say) reach the supervisors without a hand-made change. Syncing only adds: a
permission an administrator granted a group by hand is never taken away.
"""

from __future__ import annotations

OPERATORS = "operators"
SUPERVISORS = "supervisors"

_OPERATOR_PERMISSIONS = [
    "console.use_console",
    "console.handle_conversations",
    "console.correct_replies",
    "console.add_faq_phrasing",
    "console.view_cannedresponse",
    "console.add_cannedresponse",
    "console.change_cannedresponse",
    "console.delete_cannedresponse",
]

# "app_label.*" means every permission of that app.
ROLES: dict[str, list[str]] = {
    OPERATORS: _OPERATOR_PERMISSIONS,
    SUPERVISORS: [
        *_OPERATOR_PERMISSIONS,
        "console.edit_faq",
        "console.supervise_conversations",
        "console.view_audit_log",
        "faq.view_faqentry",
        "faq.add_faqentry",
        "faq.change_faqentry",
        "training.*",
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
    ],
}


def roles_sync(apps=None) -> None:
    """Create the groups if missing and grant each the permissions of ROLES that exist by now."""
    if apps is None:
        from django.apps import apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        found = []
        for spec in wanted:
            app_label, _, codename = spec.partition(".")
            perms = Permission.objects.filter(content_type__app_label=app_label)
            found.extend(perms if codename == "*" else perms.filter(codename=codename))
        group.permissions.add(*found)


def roles_sync_after_migrate(sender, apps=None, using="default", **kwargs) -> None:
    # post_migrate is sent once per app, after that app's permissions exist; sync when an app the roles name
    # has just had its permissions created.
    if sender.label in {"console", "faq", "training", "auth"}:
        roles_sync(apps)
