"""Insights: the figures of a history built through the real workflow at known
instants (offers, answers, a timeout after midnight, a denied rejection that
continues its offer, reason codes, appointments either side of midnight in
Asia/Manila), who may read them, bad ranges, the CSV table and the query count."""

import csv
import io
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from accounts.models import User
from scheduling import insights, workflow
from scheduling.models import Appointment, AppointmentEvent, AppointmentRejection, Availability, Service
from tests.conftest import make_user

from .test_api_appointments import db_snapshot

INSIGHTS = "/api/scheduling/insights/"
MINE = "/api/scheduling/insights/mine/"
MANILA = ZoneInfo("Asia/Manila")
D = date(2026, 3, 10)  # the day the history happens on (Asia/Manila)
# The offer/answer events, the appointments by day, the rejections by reason, the therapists.
QUERY_BUDGET = 4


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A wall time in Manila, `day` days after D."""
    return datetime.combine(D + timedelta(days=day), time(hour, minute), tzinfo=MANILA)


def moment(when: datetime):
    return time_machine.travel(when, tick=False)


def iso(day: int) -> str:
    return (D + timedelta(days=day)).isoformat()


@pytest.fixture
def people(operator, service):
    def therapist(username: str, name: str):
        user = make_user(username, "therapist", name=name)
        service.therapists.add(user)
        Availability.objects.create(therapist=user, starts_at=at(-2, 0), ends_at=at(4, 0))
        return user

    return {"ana": therapist("ana", "Ana Cruz"), "bea": therapist("bea", "Bea Santos"),
            "cara": therapist("cara", "Cara Lim")}


@pytest.fixture
def history(operator, people, client_obj, service):
    """What happened around D, in Manila time (response window 30 minutes):

    A0  D-1 23:59 offered to Bea; she accepts at D 00:01 (an offer of the day before).
    A1  09:00 offered to Ana, accepted 09:02 (120 s); starts 15:00, completed 16:00.
    A2  10:00 offered to Ana, rejected 10:05 "too_far" (300 s); the rejection is accepted,
        10:15 offered to Bea, accepted 10:16 (60 s).
    A3  11:00 offered to Bea, rejected 11:01 "health"; denied 11:20 (the same offer goes
        on); accepted 11:30: one offer, accepted, 1,800 s from the offer.
    A4  23:55 offered to Bea, not answered yet (due 00:25); starts D+1 00:30 (counted on D+1).
    A5  booked at 12:05 for 07:30 that morning (23:30 UTC the day before), cancelled by
        an operator: counted on D.
    A6  booked at 13:00 for 13:20, a service nobody gives: the sweep cancels it.
    A7  23:50 offered to Ana, starts D+1 02:00; no answer by 00:20, the sweep times it
        out after midnight: an offer of D, timed out.
    """
    ana, bea = people["ana"], people["bea"]
    nobody = Service.objects.create(name="Four-hands massage", duration_minutes=60, price="2000.00")

    def book(when, starts, therapist=None, service_=service):
        with moment(when):
            return workflow.create_appointment(actor=operator, client=client_obj, service=service_, starts_at=starts,
                                               location="12 Mabini St, Makati",
                                               therapist_id=therapist.id if therapist else None).id

    def do(when, fn, **kwargs):
        with moment(when):
            return fn(**kwargs)

    a0 = book(at(-1, 23, 59), at(0, 14), bea)
    do(at(0, 0, 1), workflow.accept, actor=bea, appointment_id=a0)

    a1 = book(at(0, 9), at(0, 15), ana)
    do(at(0, 9, 2), workflow.accept, actor=ana, appointment_id=a1)
    do(at(0, 15), workflow.start, actor=ana, appointment_id=a1)
    do(at(0, 16), workflow.complete, actor=ana, appointment_id=a1)

    a2 = book(at(0, 10), at(0, 18), ana)
    do(at(0, 10, 5), workflow.reject, actor=ana, appointment_id=a2, reason="Across the city", reason_code="too_far")
    do(at(0, 10, 10), workflow.review_rejection, actor=operator, appointment_id=a2, decision="accept")
    do(at(0, 10, 15), workflow.assign, actor=operator, appointment_id=a2, therapist_id=bea.id)
    do(at(0, 10, 16), workflow.accept, actor=bea, appointment_id=a2)

    a3 = book(at(0, 11), at(0, 20), bea)
    do(at(0, 11, 1), workflow.reject, actor=bea, appointment_id=a3, reason="Back pain", reason_code="health")
    do(at(0, 11, 20), workflow.review_rejection, actor=operator, appointment_id=a3, decision="deny",
       note="Nobody else is free")
    do(at(0, 11, 30), workflow.accept, actor=bea, appointment_id=a3)

    a5 = book(at(0, 12, 5), at(0, 7, 30))
    do(at(0, 12, 6), workflow.cancel, actor=operator, appointment_id=a5, reason="Booked by mistake")

    a6 = book(at(0, 13), at(0, 13, 20), service_=nobody)
    do(at(0, 13, 1), workflow.sweep)

    a7 = book(at(0, 23, 50), at(1, 2), ana)
    a4 = book(at(0, 23, 55), at(1, 0, 30), bea)
    do(at(1, 0, 21), workflow.sweep)

    states = dict(Appointment.objects.values_list("id", "status"))
    assert [states[a] for a in (a0, a1, a2, a3, a4, a5, a6, a7)] == [
        "confirmed", "completed", "confirmed", "confirmed", "pending", "cancelled", "cancelled", "cancelled"]
    return {"a0": a0, "a4": a4, "a7": a7}


def pairings() -> list:
    """Both ways offers are paired: in Python (SQLite) and, on PostgreSQL, in SQL."""
    both = [insights._figures_in_python]
    return [*both, insights._figures_in_sql] if connection.vendor == "postgresql" else both


def figures(api, operator, **params) -> dict:
    response = api(operator).get(INSIGHTS, params)
    assert response.status_code == 200, response.content
    return response.json()


def by_name(report: dict) -> dict[str, dict]:
    return {t["name"]: t for t in report["therapists"]}


def test_the_figures_of_one_day(api, operator, people, history):
    report = figures(api, operator, **{"from": iso(0), "to": iso(0)})
    assert (report["from"], report["to"]) == (iso(0), iso(0))
    assert report["totals"] == {
        "appointments": 6,  # A0, A1, A2, A3, A5 (07:30 Manila) and A6; not A4 or A7 (after midnight)
        "completed": 1,
        "cancelled": {"operator": 1, "response_timeout": 0, "no_available_therapist": 1},
        "offers": 6,
        "accepted": 3,
        "rejected": 1,
        "timed_out": 1,
        "median_response_seconds": 210.0,  # of 120, 300, 60 and 1,800
    }
    therapists = by_name(report)
    assert therapists["Ana Cruz"] == {
        "id": people["ana"].id, "name": "Ana Cruz", "offers": 3, "accepted": 1, "rejected": 1, "timed_out": 1,
        "acceptance_rate": pytest.approx(1 / 3), "median_response_seconds": 210.0}
    # A3's denied rejection continued its offer: accepted, timed to the final answer.
    assert therapists["Bea Santos"] == {
        "id": people["bea"].id, "name": "Bea Santos", "offers": 3, "accepted": 2, "rejected": 0, "timed_out": 0,
        "acceptance_rate": pytest.approx(2 / 3), "median_response_seconds": 930.0}
    assert therapists["Cara Lim"] == {
        "id": people["cara"].id, "name": "Cara Lim", "offers": 0, "accepted": 0, "rejected": 0, "timed_out": 0,
        "acceptance_rate": None, "median_response_seconds": None}
    assert [t["name"] for t in report["therapists"]] == ["Ana Cruz", "Bea Santos", "Cara Lim"]
    # Every rejection counts here, the denied one too.
    assert report["rejection_reasons"] == [
        {"code": "too_far", "count": 1}, {"code": "health", "count": 1}, {"code": "schedule_conflict", "count": 0},
        {"code": "client_concern", "count": 0}, {"code": "other", "count": 0}]
    assert report["days"] == [{"date": iso(0), "appointments": 6, "completed": 1, "cancelled": 2}]


def test_days_split_at_midnight_in_manila(api, operator, history):
    report = figures(api, operator, **{"from": iso(-1), "to": iso(1)})
    assert report["days"] == [
        # A5 starts at 23:30 UTC on D-1, which is 07:30 on D in Manila.
        {"date": iso(-1), "appointments": 0, "completed": 0, "cancelled": 0},
        {"date": iso(0), "appointments": 6, "completed": 1, "cancelled": 2},
        {"date": iso(1), "appointments": 2, "completed": 0, "cancelled": 1},
    ]
    assert report["totals"]["cancelled"] == {"operator": 1, "response_timeout": 1, "no_available_therapist": 1}
    # A0 was offered at 23:59 the day before and answered two minutes later.
    bea = by_name(report)["Bea Santos"]
    assert (bea["offers"], bea["accepted"], bea["median_response_seconds"]) == (4, 3, 120.0)
    assert report["totals"]["offers"] == 7


def test_an_offer_belongs_to_the_day_it_was_made(api, operator, history):
    before = figures(api, operator, **{"from": iso(-1), "to": iso(-1)})
    assert by_name(before)["Bea Santos"]["offers"] == 1
    assert by_name(before)["Bea Santos"]["accepted"] == 1  # answered after midnight, still its answer
    after = figures(api, operator, **{"from": iso(1), "to": iso(1)})
    # A7 was offered at 23:50 and timed out at 00:20: both belong to D, not D+1.
    assert after["totals"]["offers"] == 0
    assert after["totals"]["timed_out"] == 0
    assert after["totals"]["appointments"] == 2


def test_the_default_range_is_the_last_30_days(api, operator, history):
    with moment(at(5, 9)):
        report = figures(api, operator)
    assert (report["from"], report["to"]) == (iso(5 - 29), iso(5))
    assert len(report["days"]) == 30
    assert report["totals"]["offers"] == 7
    with moment(at(5, 9)):
        only_from = figures(api, operator, **{"from": iso(0)})
        only_to = figures(api, operator, to=iso(0))
    assert (only_from["from"], only_from["to"]) == (iso(0), iso(5))
    assert (only_to["from"], only_to["to"]) == (iso(-29), iso(0))


def test_reassign_and_reschedule_events_make_offers(operator, people, client_obj, service):
    """`reassigned` to a therapist and `rescheduled` keeping one are offers; either
    one back to the queue (its therapist named in data.from_therapist) ends the
    open offer without a new one. Written as the reassign/reschedule transitions
    record them."""
    ana, bea = people["ana"], people["bea"]
    with moment(at(0, 9)):
        appt = workflow.create_appointment(actor=operator, client=client_obj, service=service, starts_at=at(0, 18),
                                           location="Makati", therapist_id=ana.id)

    def event(kind, when, therapist, **data):
        AppointmentEvent.objects.create(appointment_id=appt.id, kind=kind, therapist=therapist, actor=operator,
                                        from_status="pending", to_status="pending", data=data, created_at=when)

    def answer(kind, when, therapist):
        AppointmentEvent.objects.create(appointment_id=appt.id, kind=kind, therapist=therapist, actor=therapist,
                                        from_status="pending", to_status="confirmed", data={}, created_at=when)

    event("reassigned", at(0, 9, 10), bea, from_therapist=ana.id)  # Ana's offer ends unanswered; Bea's begins
    event("rescheduled", at(0, 9, 20), bea, starts_at=at(0, 19).isoformat())  # kept: a fresh offer to Bea
    answer("accepted", at(0, 9, 25), bea)
    event("reassigned", at(0, 9, 30), bea, from_therapist=bea.id)  # back to the queue: no offer
    answer("accepted", at(0, 9, 35), bea)  # cannot belong to an offer any more
    event("rescheduled", at(0, 9, 40), ana, from_therapist=ana.id)  # back to the queue: no offer
    for pairing in pairings():
        figures, everyone = pairing(D, D, None)
        assert figures[ana.id].as_dict() == {"offers": 1, "accepted": 0, "rejected": 0, "timed_out": 0,
                                             "acceptance_rate": 0.0, "median_response_seconds": None}, pairing
        assert figures[bea.id].as_dict() == {"offers": 2, "accepted": 1, "rejected": 0, "timed_out": 0,
                                             "acceptance_rate": 0.5, "median_response_seconds": 300.0}, pairing
        assert (everyone.offers, everyone.accepted) == (3, 1)


def test_the_real_reassign_and_reschedule_count_as_the_design_says(operator, people, client_obj, service):
    """Through the transitions themselves: a reassign to Bea is her offer; a
    reschedule Bea cannot take sends it back to the queue and is nobody's offer."""
    ana, bea = people["ana"], people["bea"]
    with moment(at(0, 9)):
        appt = workflow.create_appointment(actor=operator, client=client_obj, service=service, starts_at=at(0, 18),
                                           location="Makati", therapist_id=ana.id)
    with moment(at(0, 9, 5)):
        workflow.reassign(actor=operator, appointment_id=appt.id, therapist_id=bea.id, reason="Ana is stuck")
    with moment(at(0, 9, 10)):
        workflow.reschedule(actor=operator, appointment_id=appt.id, starts_at=at(5, 18), reason="Client moved")
    appt.refresh_from_db()
    assert (appt.status, appt.therapist_id) == ("pending", None)  # Bea has no availability that day
    for pairing in pairings():
        figures, everyone = pairing(D, D, None)
        assert (figures[ana.id].offers, figures[bea.id].offers, everyone.offers) == (1, 1, 2), pairing


@pytest.mark.parametrize(("first", "last"), [(-1, -1), (0, 0), (1, 1), (-1, 1), (-29, 0)])
def test_the_database_and_python_pair_offers_alike(postgres, people, history, first, last):
    """PostgreSQL pairs offers in SQL, the embedded SQLite default in Python: one rule."""
    first, last = D + timedelta(days=first), D + timedelta(days=last)
    in_sql = insights._figures_in_sql(first, last, None)
    assert in_sql == insights._figures_in_python(first, last, None)
    for therapist in people.values():
        assert insights._figures_in_sql(first, last, therapist.id) == insights._figures_in_python(
            first, last, therapist.id)


# --- Who may read them ---------------------------------------------------------------------


def test_therapists_may_not_read_the_operators_figures(api, people):
    response = api(people["ana"]).get(INSIGHTS)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert api(people["ana"]).get(INSIGHTS, {"format": "csv"}).status_code == 403


def test_no_login_is_401(api, db):
    for path in (INSIGHTS, MINE, INSIGHTS + "?format=csv"):
        response = api(None).get(path)
        assert response.status_code == 401, path
        assert response["Content-Type"] == "application/json"
        assert response.json()["code"] == "not_authenticated"


def test_a_therapist_reads_only_their_own_month(api, operator, people, history):
    with moment(at(1, 9)):
        ana = api(User.objects.get(pk=people["ana"].pk)).get(MINE)
        bea = api(people["bea"]).get(MINE)
        # No parameter asks for someone else: the answer is always the caller's own.
        bea_asking_for_ana = api(people["bea"]).get(MINE, {"therapist": people["ana"].id, "id": people["ana"].id})
        operator_response = api(operator).get(MINE)
    assert ana.status_code == 403  # Ana was disabled by A7's timeout
    assert ana.json()["code"] in ("account_disabled", "permission_denied")
    assert bea.status_code == 200, bea.content
    mine = {"from": "2026-03-01", "to": iso(1), "offers": 4, "accepted": 3, "rejected": 0, "timed_out": 0,
            "acceptance_rate": 0.75, "median_response_seconds": 120.0}
    assert bea.json() == mine
    assert bea_asking_for_ana.json() == mine
    assert operator_response.status_code == 403


def test_an_active_therapist_sees_their_timeouts_and_rejections(api, operator, people, client_obj, service):
    ana = people["ana"]
    with moment(at(0, 9)):
        first = workflow.create_appointment(actor=operator, client=client_obj, service=service, starts_at=at(0, 15),
                                            location="Makati", therapist_id=ana.id)
    with moment(at(0, 9, 4)):
        workflow.reject(actor=ana, appointment_id=first.id, reason="Busy", reason_code="schedule_conflict")
    with moment(at(0, 10)):
        response = api(ana).get(MINE)
    assert response.json() == {"from": "2026-03-01", "to": iso(0), "offers": 1, "accepted": 0, "rejected": 1,
                               "timed_out": 0, "acceptance_rate": 0.0, "median_response_seconds": 240.0}


# --- Bad ranges ----------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "2026-13-01"}, "from"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-02-30"}, "to"),
    ({"from": "20260301"}, "from"),
    ({"from": "2026-W10-1"}, "from"),
    ({"from": "0001-01-01", "to": "0001-01-02"}, "from"),
    ({"from": "2026-03-10", "to": "2026-03-09"}, "to"),
    ({"from": "2025-01-01", "to": "2026-03-10"}, "to"),
], ids=["month-13", "word", "feb-30", "compact", "week-date", "year-one", "ends-before-start", "too-long"])
def test_a_bad_range_is_400_and_changes_nothing(api, operator, history, params, field):
    before = db_snapshot()
    for extra in ({}, {"format": "csv"}):
        response = api(operator).get(INSIGHTS, {**params, **extra})
        assert response.status_code == 400, response.content
        assert response["Content-Type"] == "application/json"
        body = response.json()
        assert body["code"] == "invalid" and body["detail"]
        assert field in body["errors"], body
    assert db_snapshot() == before


def test_an_unknown_format_is_404(api, operator):
    response = api(operator).get(INSIGHTS, {"format": "xml"})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- CSV -----------------------------------------------------------------------------------


def test_csv_is_the_per_therapist_table(api, operator, people, history):
    response = api(operator).get(INSIGHTS, {"from": iso(0), "to": iso(0), "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="insights-{iso(0)}-to-{iso(0)}.csv"')
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["id", "name", "offers", "accepted", "rejected", "timed_out", "acceptance_rate",
                       "median_response_seconds"]
    table = {row[1]: row for row in rows[1:]}
    assert table["Ana Cruz"][:6] == [str(people["ana"].id), "Ana Cruz", "3", "1", "1", "1"]
    assert float(table["Ana Cruz"][6]) == pytest.approx(1 / 3)
    assert float(table["Ana Cruz"][7]) == 210.0
    assert table["Cara Lim"] == [str(people["cara"].id), "Cara Lim", "0", "0", "0", "0", "", ""]
    assert len(rows) == 4


def test_csv_defuses_spreadsheet_formulas(api, operator, db):
    make_user("eve", "therapist", name="=HYPERLINK(1) Evil")
    response = api(operator).get(INSIGHTS, {"format": "csv"}, HTTP_ACCEPT="text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][1] == "'=HYPERLINK(1) Evil"


def test_accept_text_csv_gives_csv_too(api, operator, people):
    response = api(operator).get(INSIGHTS, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")


# --- A fixed number of queries -------------------------------------------------------------


def bulk_history(n: int, service, client_obj, therapists, operator) -> None:
    """n appointments of the last days, each offered once and answered in turn:
    accepted, rejected (with a rejection row), timed out, or still open."""
    now = timezone.now()
    appts = []
    for i in range(n):
        starts = now - timedelta(days=i % 20, hours=i % 7)
        status = ("confirmed", "rejected", "cancelled", "pending")[i % 4]
        appts.append(Appointment(client=client_obj, service=service, therapist=therapists[i % len(therapists)],
                                 status=status, starts_at=starts, ends_at=starts + timedelta(hours=1),
                                 location=f"Room {i}", updated_at=now,
                                 cancellation_reason="response_timeout" if status == "cancelled" else ""))
    appts = Appointment.objects.bulk_create(appts, batch_size=2000)
    events = []
    for i, a in enumerate(appts):
        offered = a.starts_at - timedelta(hours=3)
        events.append(AppointmentEvent(appointment=a, kind="assigned", therapist_id=a.therapist_id, actor=operator,
                                       from_status="pending", to_status="pending", created_at=offered))
        answer = {"confirmed": "accepted", "rejected": "rejected", "cancelled": "timed_out"}.get(a.status)
        if answer:
            events.append(AppointmentEvent(appointment=a, kind=answer, therapist_id=a.therapist_id,
                                           from_status="pending", to_status=a.status,
                                           created_at=offered + timedelta(seconds=60 + i % 120)))
    AppointmentEvent.objects.bulk_create(events, batch_size=5000)
    AppointmentRejection.objects.bulk_create([
        AppointmentRejection(appointment=a, therapist_id=a.therapist_id, reason="Busy", created_at=a.starts_at,
                             reason_code=("too_far", "health")[a.id % 2])
        for a in appts if a.status == "rejected"], batch_size=2000)


@pytest.mark.parametrize("n", [10, 10_000])
def test_the_figures_cost_a_fixed_number_of_queries(api, operator, client_obj, service, people,
                                                    django_assert_max_num_queries, n):
    bulk_history(n, service, client_obj, list(people.values()), operator)
    client = api(operator)
    with django_assert_max_num_queries(QUERY_BUDGET):
        response = client.get(INSIGHTS)
    assert response.status_code == 200
    totals = response.json()["totals"]
    assert totals["appointments"] == n
    assert totals["offers"] == n
    assert (totals["accepted"], totals["rejected"], totals["timed_out"]) == (
        len(range(0, n, 4)), len(range(1, n, 4)), len(range(2, n, 4)))
    assert sum(r["count"] for r in response.json()["rejection_reasons"]) == len(range(1, n, 4))
    with django_assert_max_num_queries(QUERY_BUDGET):
        assert client.get(INSIGHTS, {"format": "csv"}).status_code == 200
    with django_assert_max_num_queries(1):
        assert api(people["bea"]).get(MINE).status_code == 200
    if n == 10_000 and connection.vendor == "postgresql":
        first, last = insights.default_range()
        assert insights._figures_in_sql(first, last, None) == insights._figures_in_python(first, last, None)
