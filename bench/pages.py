"""4. Dashboards and lists at 100, 1,000 and 10,000 appointments: the operator
dashboard page (session cookie), the first page of the appointments API and
the first page of the events feed (token), timed over HTTP against one server
process, and their query counts taken in this process with Django's test
client. The table grows between levels with a realistic mix of states (see
`data.history`), each booking with its events.
"""

from __future__ import annotations

import asyncio

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from scheduling.models import Appointment

from . import data
from .clients import timed_gets
from .harness import servers, sized

TARGETS = {
    "operator_page": "/operator/",
    "appointments_api": "/api/scheduling/appointments/",
    "events_feed": "/api/scheduling/events/?after=0",
    "therapist_appointments_api": "/api/scheduling/appointments/",
}


def _headers(world: data.World, name: str, therapist: User) -> dict[str, str]:
    if name == "operator_page":
        return {"Cookie": f"sessionid={world.sessions[world.operator.id]}"}
    if name == "therapist_appointments_api":
        return world.token_header(therapist)
    return world.token_header(world.operator)


def count_queries(world: data.World, therapist: User) -> dict[str, int]:
    counts = {}
    for name, path in TARGETS.items():
        client = Client(HTTP_HOST="127.0.0.1")
        if name == "operator_page":
            client.force_login(world.operator)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, headers=_headers(world, name, therapist) if name != "operator_page" else {})
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")
        counts[name] = len(queries)
    return counts


def run(world: data.World) -> dict:
    levels = [100, 1000, 10000]
    requests = sized(30, 10)
    therapists = data.create_therapists(world, 50, prefix="dash")
    results = {}
    with servers("daphne", 1) as (server,):
        for level in levels:
            missing = level - Appointment.objects.count()
            if missing > 0:
                data.history(world, therapists, missing)
            connection.close()
            queries = count_queries(world, therapists[0])
            timings = asyncio.run(_time_all(server, world, therapists[0], requests))
            results[str(level)] = {name: {**timings[name], "queries": queries[name]} for name in TARGETS}
    return {"requests_each": requests, "levels": results}


async def _time_all(server, world: data.World, therapist: User, count: int) -> dict:
    return {name: await timed_gets(server, path, _headers(world, name, therapist), count=count)
            for name, path in TARGETS.items()}
