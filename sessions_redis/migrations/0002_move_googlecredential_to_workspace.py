from django.db import migrations


class Migration(migrations.Migration):
    """GoogleCredential moved to the workspace app (unmanaged: no table to move)."""

    dependencies = [
        ("sessions_redis", "0001_initial"),
    ]

    operations = [migrations.DeleteModel(name="GoogleCredential")]
