"""`notifications_unread_capped(recipient, cap)` on PostgreSQL: a recipient's
unread count, stopping at `cap` entries of the (recipient, read_at, -id) index.

Written as a query inside every counting statement, the planner chose by its
estimate of a recipient's unread rows, which lags behind a table that grows by
the minute: estimating a handful, it scanned the table or built a bitmap of all
of the recipient's entries (read ones not yet vacuumed included) and sorted
them, so the "bounded" count grew with the backlog. The function keeps the one
plan that stops at the cap: an ordered walk of the index. Other databases count
with the plain query (`notifications.delivery._capped_unread`).
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION notifications_unread_capped(recipient bigint, cap bigint) RETURNS bigint
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
BEGIN
    RETURN (SELECT COUNT(*) FROM (
        SELECT 1 FROM notifications_notification n
        WHERE n.recipient_id = recipient AND n.read_at IS NULL
        ORDER BY n.read_at, n.id DESC
        LIMIT cap) capped);
END
$$
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS notifications_unread_capped(bigint, bigint)")


class Migration(migrations.Migration):
    dependencies = [("notifications", "0004_push_subscriptions")]

    operations = [migrations.RunPython(create, drop)]
