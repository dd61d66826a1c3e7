from django.db import migrations, models


def move_content_type(apps, schema_editor):
    """Keep the permissions granted on the page: its content type changes app, not id."""
    content_type = apps.get_model("contenttypes", "ContentType")
    old = content_type.objects.filter(app_label="sessions_redis", model="googlecredential")
    if not content_type.objects.filter(app_label="workspace", model="googlecredential").exists():
        old.update(app_label="workspace")


def restore_content_type(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.filter(app_label="workspace", model="googlecredential").update(
        app_label="sessions_redis"
    )


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("sessions_redis", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="GoogleCredential",
            fields=[
                ("user_email", models.CharField(max_length=254, primary_key=True, serialize=False)),
            ],
            options={
                "verbose_name": "Google credential",
                "verbose_name_plural": "Google credentials",
                "managed": False,
                "default_permissions": ("view", "delete"),
            },
        ),
        migrations.RunPython(move_content_type, restore_content_type),
    ]
