"""Give the `supervisors` group the training permissions, and every existing correction its example.

The group may not exist yet (the console creates it too): get_or_create, so the order of the two apps'
migrations does not matter. Permissions are normally created after migrations run; they are created here so
the grant can happen now.
"""

from django.db import migrations

PERMISSIONS = [
    ("trainingexample", "review_trainingexample", "Can review training examples"),
    ("exportbatch", "export_batches", "Can export training batches"),
    ("apitoken", "manage_apitoken", "Can create and revoke batch queue API tokens"),
]


def grant_supervisors(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    group, _ = Group.objects.get_or_create(name="supervisors")
    for model, codename, name in PERMISSIONS:
        content_type, _ = ContentType.objects.get_or_create(app_label="training", model=model)
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
        group.permissions.add(permission)


def revoke_supervisors(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="supervisors").first()
    if group is not None:
        codenames = [codename for _, codename, _ in PERMISSIONS]
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="training", codename__in=codenames))


def examples_for_corrections(apps, schema_editor):
    Correction = apps.get_model("training", "Correction")
    TrainingExample = apps.get_model("training", "TrainingExample")
    missing = Correction.objects.filter(example__isnull=True).order_by("id")
    TrainingExample.objects.bulk_create(
        [
            TrainingExample(
                correction_id=c.id,
                conversation_id=c.conversation_id,
                chosen_text=c.chosen_text,
                rejected_text=c.rejected_text,
                attributes=c.attributes,
            )
            for c in missing.iterator()
        ],
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0002_examples_batches_tokens"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(grant_supervisors, revoke_supervisors),
        migrations.RunPython(examples_for_corrections, migrations.RunPython.noop),
    ]
