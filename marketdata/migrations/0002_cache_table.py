from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    # The embedded default keeps the shared cache in a database table; `migrate` alone must be
    # enough to run the app. With Redis configured this does nothing.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("marketdata", "0001_initial")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
