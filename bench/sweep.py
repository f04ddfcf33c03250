"""3. The deadline sweep: overdue appointments cancelled per second at 1,000,
10,000 and 100,000 due, the queries per batch, and the peak memory it took.

`workflow.sweep()` runs in this process against PostgreSQL exactly as the
command runs it (`realtime.sending_in_background()`), with Redis behind the
channel layer as in production (nobody listens, but every message is still
sent). The due appointments belong to therapists shared 20 to one, as on a bad
day; every operator gets one digest per batch.

Memory: the kernel's peak-RSS mark of this process is reset just before the
sweep (`/proc/self/clear_refs`), so `peak_rss_growth_mb` is what the sweep
itself added on top of the data it was given; it must not grow with the backlog.

Then the same with automatic re-offer on (AUTO_REOFFER): every timeout goes on
to the next available therapist within the same batch, at 1,000 and 10,000 due.

Re-offer variant: the due appointments are of a service of their own, given by
their late therapists (20 appointments each) and as many free ones, all with
availability over the whole span. They start in 75-minute slots, as many at a
time as there are late therapists, each at an address of its own, so a free
therapist can take one slot in two (60 minutes, then 30 to travel): half the
bookings get a new offer and the other half wait for the operators, which
exercises both paths. Reported: appointments handled per second, offers made,
waiting.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

from django.db import connection
from django.db.models import CharField, F, Value
from django.db.models.functions import Cast, Concat
from django.test.utils import CaptureQueriesContext, override_settings

from notifications import realtime
from scheduling import workflow
from scheduling.models import Appointment, AppointmentEvent, Service

from . import data
from .harness import sized

BATCH_SIZE = 500


class PublishMeter:
    def __init__(self):
        self.seconds = 0.0
        self.messages = 0
        self.calls = 0
        self._original = realtime.publish

    def __enter__(self) -> PublishMeter:
        def timed(messages):
            started = time.perf_counter()
            try:
                return self._original(messages)
            finally:
                self.seconds += time.perf_counter() - started
                self.messages += len(messages)
                self.calls += 1

        realtime.publish = timed
        return self

    def __exit__(self, *exc) -> None:
        realtime.publish = self._original


def _rss_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class QueryMeter:
    """Counts and times this connection's statements without keeping their SQL
    (a sweep of 100,000 would otherwise hold hundreds of MB of captured
    statements and the memory figure would measure the bench, not the sweep)."""

    def __init__(self):
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.count += 1


def sweep_once(world: data.World, due: int) -> dict:
    therapists = data.create_therapists(world, max(5, due // 20), prefix="sweep", service=world.other_service)
    for start in range(0, due, 20_000):
        data.overdue(world, therapists, min(20_000, due - start))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would have by the time a backlog builds up
    gc.collect()
    rss_before = _rss_kb("VmRSS")
    peak_reset = _reset_peak_rss()
    queries = QueryMeter()
    with connection.execute_wrapper(queries), PublishMeter() as published:
        started = time.perf_counter()
        cpu_started = time.process_time()
        with realtime.sending_in_background():
            counts = workflow.sweep(batch_size=BATCH_SIZE)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    peak = _rss_kb("VmHWM")
    if counts.timed_out != due:
        raise RuntimeError(f"sweep timed out {counts.timed_out}, expected {due}")
    batches = -(-due // BATCH_SIZE)
    db_seconds = seconds - published.seconds
    return {
        "due": due,
        "seconds": round(seconds, 3),
        "per_second": round(due / seconds, 1),
        "queries": queries.count,
        "batches": batches,
        "queries_per_batch": round(queries.count / batches, 1),
        "therapists_disabled": counts.therapists_disabled,
        # This process's CPU (Python side); the rest of `seconds` is mostly waiting on PostgreSQL and Redis.
        "cpu_seconds": round(cpu_seconds, 3),
        "db_seconds": round(queries.seconds, 3),
        "publish_seconds": round(published.seconds, 3),
        "messages_published": published.messages,
        "per_second_without_publish": round(due / db_seconds, 1) if db_seconds > 0 else None,
        "rss_before_mb": round(rss_before / 1024, 1) if rss_before else None,
        "peak_rss_growth_mb": round((peak - rss_before) / 1024, 1) if peak_reset and peak and rss_before else None,
    }


def reoffer_once(world: data.World, due: int) -> dict:
    service = Service.objects.create(name=f"Re-offer bench ({due})", duration_minutes=60, price="800.00")
    per_group = max(5, due // 20)
    late = data.create_therapists(world, per_group, prefix=f"late{due}-", service=service)
    free = data.create_therapists(world, per_group, prefix=f"free{due}-", service=service)
    appts = data.overdue(world, late, due, service=service)
    # Every booking at a home of its own: the travel buffer applies between any two.
    Appointment.objects.filter(id__in=[a.id for a in appts]).update(
        location=Concat(F("location"), Value(", visit "), Cast(F("id"), CharField())))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    with override_settings(AUTO_REOFFER=True), CaptureQueriesContext(connection) as queries, \
            PublishMeter() as published:
        started = time.perf_counter()
        cpu_started = time.process_time()
        with realtime.sending_in_background():
            counts = workflow.sweep(batch_size=BATCH_SIZE)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    if counts.timed_out != due:
        raise RuntimeError(f"sweep timed out {counts.timed_out}, expected {due}")
    ids = [a.id for a in appts]
    offered = Appointment.objects.filter(id__in=ids, therapist__in=free, status="pending").count()
    waiting = Appointment.objects.filter(id__in=ids, therapist__isnull=True, status="pending").count()
    auto_events = AppointmentEvent.objects.filter(appointment_id__in=ids, kind="assigned",
                                                  actor__isnull=True).count()
    if offered != counts.reoffered or auto_events != offered or offered + waiting != due:
        raise RuntimeError(f"re-offer counts disagree: {offered=} {waiting=} {auto_events=} {counts=}")
    batches = -(-due // BATCH_SIZE)
    return {
        "due": due,
        "free_therapists": len(free),
        "seconds": round(seconds, 3),
        "per_second": round(due / seconds, 1),
        "reoffered": offered,
        "waiting": waiting,
        "queries": len(queries),
        "batches": batches,
        "queries_per_batch": round(len(queries) / batches, 1),
        "cpu_seconds": round(cpu_seconds, 3),
        "db_seconds": round(sum(float(q["time"]) for q in queries.captured_queries), 3),
        "publish_seconds": round(published.seconds, 3),
        "messages_published": published.messages,
    }


def run(world: data.World) -> dict:
    levels = [1000, 10000, 100000] if not sized(0, 1) else [100, 1000, 3000]
    reoffer_levels = [1000, 10000] if not sized(0, 1) else [1000, 3000]
    return {"batch_size": BATCH_SIZE, "operators": len(world.operators),
            "levels": {str(due): sweep_once(world, due) for due in levels},
            "reoffer_levels": {str(due): reoffer_once(world, due) for due in reoffer_levels}}
