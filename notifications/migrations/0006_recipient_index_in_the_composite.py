"""The recipient's own index goes: (recipient, read_at, -id) leads with the same
column, and every notification written or marked read updated both.

It also let the unread count walk more than the cap. A pooled connection keeps
the plan `notifications_unread_capped` made in its first calls; made on a small
table, that plan could read the recipient's own index and sort, which visits
every item the recipient ever had, read ones included (a test: 5,303 rows for a
count of 100). With only the (recipient, read_at, -id) index left, the walk
that stops at the cap is the one plan there is.

Only the index is dropped. Django's AlterField would also drop and re-add the
foreign key, which checks every row again under a lock on a table that grows
by the minute; the key itself does not change.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

TABLE = "notifications_notification"
INDEX = "notifications_notification_recipient_id_d055f3f0"  # Django's name for the field's index


def drop(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        constraints = schema_editor.connection.introspection.get_constraints(cursor, TABLE)
    for name, info in constraints.items():
        if info["index"] and info["columns"] == ["recipient_id"] and not (info["primary_key"] or info["unique"]):
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def create(apps, schema_editor):
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {schema_editor.quote_name(INDEX)} "
                          f"ON {schema_editor.quote_name(TABLE)} (recipient_id)")


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0005_unread_capped"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="notification",
                    name="recipient",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="notifications", to=settings.AUTH_USER_MODEL),
                ),
            ],
            database_operations=[migrations.RunPython(drop, create)],
        ),
    ]
