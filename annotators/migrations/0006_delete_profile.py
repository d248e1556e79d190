# Profile held only the global segments, which 0005 copied onto each membership. A migration of its own, so a
# partial rollback to 0005 keeps both copies.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("annotators", "0005_membership_attributes")]

    operations = [migrations.DeleteModel(name="Profile")]
