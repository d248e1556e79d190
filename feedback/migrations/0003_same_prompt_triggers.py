from django.db import migrations

from feedback.db_triggers import drop, install


class Migration(migrations.Migration):
    dependencies = [("feedback", "0002_initial")]
    operations = [migrations.RunPython(install, drop)]
