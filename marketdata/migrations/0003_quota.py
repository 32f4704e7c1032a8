from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("marketdata", "0002_cache_table")]

    operations = [
        migrations.CreateModel(
            name="QuotaWindow",
            fields=[
                ("key", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("count", models.PositiveIntegerField(default=0)),
                ("at", models.DateTimeField(blank=True, null=True)),
                ("scope", models.CharField(blank=True, default="", max_length=20)),
                ("expires_at", models.DateTimeField(blank=True, db_index=True, null=True)),
            ],
        ),
    ]
