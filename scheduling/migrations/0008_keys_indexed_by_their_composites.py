"""Three keys lose their own index, each the first column of a composite index
that serves every look-up by it: an event's appointment and therapist
(event_appointment, event_therapist) and a slot's therapist
(availability_lookup). Every transition writes an event, and a sweep batch 500
of them: each index is one more entry to write on each.

An appointment's therapist keeps its own index although appt_therapist_start
leads with it: for "these 500 therapists' bookings" (the re-offer sweep) the
planner costs the wider index above a scan of the whole table, and took one.

Only the indexes are dropped. Django's AlterField would also drop and re-add
each foreign key, which checks every row again under a lock; the keys do not change.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# (table, column): the single-column index to drop.
INDEXED_BY_A_COMPOSITE = [
    ("scheduling_appointmentevent", "appointment_id"),
    ("scheduling_appointmentevent", "therapist_id"),
    ("scheduling_availability", "therapist_id"),
]


def drop(apps, schema_editor):
    connection = schema_editor.connection
    for table, column in INDEXED_BY_A_COMPOSITE:
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, table)
        for name, info in constraints.items():
            if info["index"] and info["columns"] == [column] and not (info["primary_key"] or info["unique"]):
                schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def create(apps, schema_editor):
    for table, column in INDEXED_BY_A_COMPOSITE:
        name = schema_editor._create_index_name(table, [column])
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {schema_editor.quote_name(name)} "
                              f"ON {schema_editor.quote_name(table)} ({schema_editor.quote_name(column)})")


class Migration(migrations.Migration):

    dependencies = [
        ("scheduling", "0007_event_kinds"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='appointmentevent',
                    name='appointment',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='events', to='scheduling.appointment'),
                ),
                migrations.AlterField(
                    model_name='appointmentevent',
                    name='therapist',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='availability',
                    name='therapist',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='availability', to=settings.AUTH_USER_MODEL),
                ),
            ],
            database_operations=[migrations.RunPython(drop, create)],
        ),
    ]
