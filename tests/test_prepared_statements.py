"""On PostgreSQL a statement run again on a kept connection is parsed and planned
once: values travel apart from the SQL (server-side binding) and psycopg prepares
a statement after DB_PREPARE_THRESHOLD runs; 0 turns that off for a pooler in
transaction mode."""

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import connection

from scheduling import workflow
from scheduling.models import Appointment
from tests.servers import ROOT


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def locks_prepared() -> int:
    return sum("FOR UPDATE" in sql and '"scheduling_appointment"' in sql for sql in prepared_statements())


@pytest.mark.services
@pytest.mark.usefixtures("postgres")
def test_a_transitions_lock_is_prepared_once_it_has_run_often_enough(make_appointment, therapist):
    threshold = connection.connection.prepare_threshold
    assert threshold == 5 and connection.settings_dict["OPTIONS"]["server_side_binding"] is True
    appointments = [make_appointment("pending", therapist, starts_in=timedelta(hours=3 + 2 * i))
                    for i in range(threshold + 1)]
    # Creating them took the lock fewer times than the threshold: not prepared yet.
    assert locks_prepared() == 0
    for appt in appointments:
        workflow.accept(actor=therapist, appointment_id=appt.pk)
    assert locks_prepared() == 1
    # Once prepared it stays one statement, whichever appointment it locks.
    assert set(Appointment.objects.filter(pk__in=[a.pk for a in appointments]).values_list("status", flat=True)) == {
        "confirmed"}


def options_with(**env: str) -> dict:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "guitara.settings", **env}
    code = ("import json, django; django.setup(); from django.conf import settings; "
            "o = settings.DATABASES['default'].get('OPTIONS', {}); "
            "print(json.dumps({k: o.get(k) for k in ('server_side_binding', 'prepare_threshold')}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True,
                            text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def test_preparing_can_be_turned_off_for_a_pooler_in_transaction_mode():
    url = "postgres://postgres@127.0.0.1:5432/guitara"
    assert options_with(DATABASE_URL=url) == {"server_side_binding": True, "prepare_threshold": 5}
    assert options_with(DATABASE_URL=url, DB_PREPARE_THRESHOLD="1") == {
        "server_side_binding": True, "prepare_threshold": 1}
    assert options_with(DATABASE_URL=url, DB_PREPARE_THRESHOLD="0") == {
        "server_side_binding": True, "prepare_threshold": None}
    # SQLite has neither.
    assert options_with(DATABASE_URL="") == {"server_side_binding": None, "prepare_threshold": None}
