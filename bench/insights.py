"""7. Insights: `GET /api/scheduling/insights/` over the default range (the last 30
days) with 100,000 appointment events in it, timed over HTTP against one daphne
process (JSON, and the CSV table), with its query count taken in this process,
and the same report computed in this process alone (no HTTP, no auth), so the
server's share and the computation's share can be told apart.

The history is written in bulk (like `data.py`) in the shapes the workflow
leaves: offers accepted after a few minutes, rejected with a reason code (the
rejection accepted and offered again, or denied and then accepted), timed out,
and bookings cancelled before anyone was offered them, spread evenly over the
30 days. Whatever the earlier benchmarks already wrote in the range counts
towards the 100,000.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import timedelta

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from scheduling import insights
from scheduling.models import Appointment, AppointmentEvent, AppointmentRejection

from . import data
from .clients import timed_gets
from .harness import servers, sized, summarize

Status = Appointment.Status
Reason = Appointment.CancellationReason
Kind = AppointmentEvent.Kind
CODES = AppointmentRejection.ReasonCode.values
PATH = "/api/scheduling/insights/"


def events_in_range() -> int:
    first, last = insights.default_range()
    start, end = insights.day_bounds(first, last)
    return AppointmentEvent.objects.filter(created_at__gte=start, created_at__lt=end).count()


def fill(world: data.World, therapists: list[User], target: int, *, seed: int = 16) -> int:
    """Add histories until the default range holds `target` events; returns how many it added."""
    rng = random.Random(seed)
    first, _ = insights.default_range()
    start, _ = insights.day_bounds(first, first)
    now = timezone.now()
    span = (now - timedelta(hours=2) - (start + timedelta(hours=1))).total_seconds()
    missing = target - events_in_range()
    added = 0
    op = world.operator.id
    while missing > 0:
        specs, histories, rejections = [], [], []
        while missing > 0 and len(specs) < data.BATCH:
            offered = start + timedelta(hours=1, seconds=rng.random() * span)
            therapist, other = rng.sample(therapists, 2)
            t, u = therapist.id, other.id
            answer = offered + timedelta(seconds=rng.randint(20, 900))
            starts = offered + timedelta(hours=rng.randint(2, 30))
            bucket = rng.randrange(20)
            created = (Kind.CREATED, "", Status.PENDING, None, op, offered - timedelta(minutes=2), {})
            assigned = (Kind.ASSIGNED, Status.PENDING, Status.PENDING, t, op, offered, {})
            spec = {"starts_at": starts, "therapist": therapist, "assigned_at": offered,
                    "response_deadline": offered + timedelta(minutes=30)}
            accepted = (Kind.ACCEPTED, Status.PENDING, Status.CONFIRMED, t, t, answer, {})
            if bucket < 10 and starts + timedelta(hours=1) < now:  # accepted, and the session given
                spec.update(status=Status.COMPLETED, responded_at=answer)
                history = [created, assigned, accepted,
                           (Kind.STARTED, Status.CONFIRMED, Status.IN_PROGRESS, t, t, starts, {}),
                           (Kind.COMPLETED, Status.IN_PROGRESS, Status.COMPLETED, t, t,
                            starts + timedelta(hours=1), {})]
            elif bucket < 10 or bucket >= 18:  # accepted, the session still ahead
                spec.update(status=Status.CONFIRMED, responded_at=answer)
                history = [created, assigned, accepted]
            elif bucket < 13:  # rejected, the rejection accepted, offered to someone else who accepts
                code = rng.choice(CODES)
                reviewed = answer + timedelta(minutes=rng.randint(1, 20))
                spec.update(status=Status.CONFIRMED, therapist=other, assigned_at=reviewed, responded_at=reviewed)
                history = [created, assigned,
                           (Kind.REJECTED, Status.PENDING, Status.REJECTED, t, t, answer, {"reason_code": code}),
                           (Kind.REJECTION_ACCEPTED, Status.REJECTED, Status.PENDING, t, op, reviewed, {}),
                           (Kind.ASSIGNED, Status.PENDING, Status.PENDING, u, op, reviewed, {}),
                           (Kind.ACCEPTED, Status.PENDING, Status.CONFIRMED, u, u,
                            reviewed + timedelta(seconds=rng.randint(20, 900)), {})]
                rejections.append((len(specs), t, code, answer, "accept", reviewed))
            elif bucket < 15:  # rejected, denied, then accepted: one offer
                code = rng.choice(CODES)
                reviewed = answer + timedelta(minutes=rng.randint(1, 20))
                spec.update(status=Status.CONFIRMED, responded_at=reviewed)
                history = [created, assigned,
                           (Kind.REJECTED, Status.PENDING, Status.REJECTED, t, t, answer, {"reason_code": code}),
                           (Kind.REJECTION_DENIED, Status.REJECTED, Status.PENDING, t, op, reviewed, {}),
                           (Kind.ACCEPTED, Status.PENDING, Status.CONFIRMED, t, t,
                            reviewed + timedelta(minutes=2), {})]
                rejections.append((len(specs), t, code, answer, "deny", reviewed))
            elif bucket < 17:  # nobody answered: timed out
                spec.update(status=Status.CANCELLED, cancellation_reason=Reason.RESPONSE_TIMEOUT,
                            cancelled_at=offered + timedelta(minutes=30))
                history = [created, assigned, (Kind.TIMED_OUT, Status.PENDING, Status.CANCELLED, t, None,
                                               offered + timedelta(minutes=30), {})]
            else:  # cancelled by an operator before anyone was offered it
                spec.update(status=Status.CANCELLED, therapist=None, assigned_at=None, response_deadline=None,
                            cancellation_reason=Reason.OPERATOR, cancelled_at=offered)
                history = [created, (Kind.CANCELLED, Status.PENDING, Status.CANCELLED, None, op, offered, {})]
            specs.append(spec)
            histories.append(history)
            missing -= len(history)
            added += len(history)
        _write(world, specs, histories, rejections)
        if missing <= 0:
            missing = target - events_in_range()
    return added


def _write(world: data.World, specs: list[dict], histories: list[list[tuple]], rejections: list[tuple]) -> None:
    now = timezone.now()
    appts = []
    for i, spec in enumerate(specs):
        client = world.clients[i % len(world.clients)]
        appts.append(Appointment(client=client, service=world.service, location=client.address,
                                 ends_at=spec["starts_at"] + timedelta(hours=1), created_by=world.operator,
                                 updated_at=now, **spec))
    appts = Appointment.objects.bulk_create(appts, batch_size=data.BATCH)
    AppointmentEvent.objects.bulk_create([
        AppointmentEvent(appointment_id=appt.id, kind=kind, from_status=from_status, to_status=to_status,
                         therapist_id=therapist_id, actor_id=actor_id, created_at=at, data=extra)
        for appt, history in zip(appts, histories, strict=True)
        for kind, from_status, to_status, therapist_id, actor_id, at, extra in history
    ], batch_size=data.BATCH)
    AppointmentRejection.objects.bulk_create([
        AppointmentRejection(appointment_id=appts[i].id, therapist_id=t, reason="Cannot make it", reason_code=code,
                             created_at=at, review_decision=decision, reviewed_by=world.operator, reviewed_at=reviewed)
        for i, t, code, at, decision, reviewed in rejections
    ], batch_size=data.BATCH)


def in_process(count: int) -> dict:
    """The report alone, computed in this process: the floor under the HTTP figure."""
    first, last = insights.default_range()
    insights.insights(first, last)  # warm the connection and the plan cache
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        insights.insights(first, last)
        samples.append((time.perf_counter() - started) * 1000)
    return summarize(samples)


def count_queries(world: data.World) -> int:
    """The whole request's queries, the token look-up included."""
    client = Client(HTTP_HOST="127.0.0.1")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(PATH, headers=world.token_header(world.operator))
    if response.status_code != 200:
        raise RuntimeError(f"{PATH} answered {response.status_code}: {response.content[:200]!r}")
    return len(queries)


def run(world: data.World) -> dict:
    target = sized(100_000, 20_000)
    requests = sized(30, 10)
    therapists = data.create_therapists(world, 50, prefix="insights")
    started = time.perf_counter()
    added = fill(world, therapists, target)
    fill_seconds = time.perf_counter() - started
    # As autovacuum would leave them: a table just bulk-written is slow to read
    # the first times (hint bits, no visibility map), which no real day is.
    with connection.cursor() as cursor:
        for model in (AppointmentEvent, Appointment, AppointmentRejection):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    events = events_in_range()
    queries = count_queries(world)
    report = insights.insights(*insights.default_range())
    computed = in_process(requests)
    connection.close()
    headers = world.token_header(world.operator)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with servers("daphne", 1) as (server,):
        json_timing = asyncio.run(timed_gets(server, PATH, headers, count=requests))
        csv_timing = asyncio.run(timed_gets(server, PATH + "?format=csv", headers, count=requests))
    return {
        # The machine's load around the timed requests: compare runs only at similar loads.
        "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "events_in_range": events,
        "events_added": added,
        "fill_seconds": round(fill_seconds, 1),
        "range": [report["from"], report["to"]],
        "offers": report["totals"]["offers"],
        "therapists": len(report["therapists"]),
        "median_response_seconds": report["totals"]["median_response_seconds"],
        "queries": queries,
        "requests_each": requests,
        "http_json": json_timing,
        "http_csv": csv_timing,
        "in_process_ms": computed,
    }
