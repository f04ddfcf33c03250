"""Automatic re-offer (AUTO_REOFFER): a booking that loses its therapist goes to
the next available one at once, with an adaptive window; it waits for the
operators (needs_attention) when nobody can take it, when it starts within 10
minutes, after REOFFER_MAX automatic offers, or when an operator holds it to
assign by hand."""

from datetime import datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from accounts.models import User
from notifications.models import Notification
from scheduling import workflow
from scheduling.models import Appointment, AppointmentEvent
from scheduling.text import when as hhmm
from tests.conftest import make_therapist, make_user
from tests.scheduling.test_auto_cancel_overdue import bulk_overdue

APPTS = "/api/scheduling/appointments/"
WINDOW = timedelta(minutes=django_settings.RESPONSE_DEADLINE_MINUTES)


@pytest.fixture(autouse=True)
def reoffer_on(settings):
    settings.AUTO_REOFFER = True
    settings.REOFFER_MAX = 3
    return settings


@pytest.fixture
def offer_overdue(make_appointment):
    """An offer to `therapist` made so long ago that its deadline passed a minute ago."""
    def factory(therapist, *, starts_in=timedelta(hours=3), **kw) -> Appointment:
        with time_machine.travel(timezone.now() - WINDOW - timedelta(minutes=1)):
            return make_appointment("pending", therapist, starts_in=starts_in + WINDOW + timedelta(minutes=1), **kw)
    return factory


def events(appt) -> list[tuple]:
    return [(e.kind, e.actor_id, e.therapist_id, e.from_status, e.to_status)
            for e in AppointmentEvent.objects.filter(appointment=appt).order_by("id")]


def last_event(appt, kind) -> AppointmentEvent:
    return AppointmentEvent.objects.filter(appointment=appt, kind=kind).latest("id")


def test_a_timeout_goes_straight_to_the_next_therapist_with_a_fresh_window(
        offer_overdue, therapist, therapist_b, operator, operator2):
    appt = offer_overdue(therapist)

    counts = workflow.sweep()

    appt.refresh_from_db()
    therapist.refresh_from_db()
    assert (appt.status, appt.therapist_id, appt.cancellation_reason, appt.auto_offers) == (
        "pending", therapist_b.id, "", 1)
    assert appt.response_deadline - appt.assigned_at == WINDOW  # three hours ahead: the normal window
    assert appt.assigned_at > timezone.now() - timedelta(seconds=30)
    assert not therapist.is_active  # the late therapist is still disabled
    assert counts.as_dict() == {"timed_out": 1, "therapists_disabled": 1, "no_available_therapist": 0,
                                "reminded": 0, "escalated": 0}
    assert counts.reoffered == 1
    # Every automatic step is an event with no actor and data.auto.
    assert events(appt)[-2:] == [
        ("timed_out", None, therapist.id, "pending", "pending"),
        ("assigned", None, therapist_b.id, "pending", "pending"),
    ]
    assert last_event(appt, "timed_out").data["auto"] is True
    assert last_event(appt, "assigned").data == {
        "auto": True, "auto_offer": 1, "response_deadline": appt.response_deadline.isoformat()}
    # The late therapist hears of it, the next one gets the offer, operators a digest.
    assert Notification.objects.get(recipient=therapist, kind="timed_out").message.endswith(
        "it was taken back from you and your account is disabled. Ask an operator to re-enable it.")
    offer = Notification.objects.get(recipient=therapist_b, kind="assigned", appointment=appt)
    assert f"#{appt.id}" in offer.message
    for op in (operator, operator2):
        digest = Notification.objects.get(recipient=op, kind="timeouts")
        assert digest.appointment_id is None
        assert digest.message == (f"1 appointment not answered in time: #{appt.id}; 1 offered to the next "
                                  "therapist, 1 therapist disabled.")
    assert not Notification.objects.filter(kind="needs_attention").exists()


def test_the_automatic_window_is_half_the_time_left_when_that_is_shorter(offer_overdue, therapist, therapist_b):
    appt = offer_overdue(therapist, starts_in=timedelta(minutes=40))

    with time_machine.travel(timezone.now(), tick=False):
        workflow.sweep()
        now = timezone.now()

    appt.refresh_from_db()
    assert appt.therapist_id == therapist_b.id
    assert appt.response_deadline == now + (appt.starts_at - now) / 2
    assert timedelta(minutes=19) < appt.response_deadline - now < timedelta(minutes=21)


def test_the_sweep_prints_where_each_booking_went(offer_overdue, therapist, therapist_b):
    appt = offer_overdue(therapist)
    out = StringIO()

    call_command("auto_cancel_overdue", stdout=out)

    appt.refresh_from_db()
    lines = out.getvalue().splitlines()
    missed = datetime.fromisoformat(last_event(appt, "timed_out").data["response_deadline"])
    assert lines[0] == (f"#{appt.id} timed out: no response from Ana Cruz by {hhmm(missed)}"
                        f"; Ana Cruz disabled; offered to Bea Santos, answer by "
                        f"{hhmm(appt.response_deadline)}")
    assert lines[-1].startswith("Handled: 1 without a response (1 therapist(s) disabled), "
                                "1 offered to the next therapist, 0 cancelled with no available therapist;")

    dry = StringIO()
    Appointment.objects.filter(pk=appt.pk).update(response_deadline=timezone.now() - timedelta(seconds=1))
    appt.refresh_from_db()
    call_command("auto_cancel_overdue", "--dry-run", stdout=dry)
    assert dry.getvalue().splitlines() == [
        f"[dry run] would be #{appt.id} timed out: no response from Bea Santos by "
        f"{hhmm(appt.response_deadline)}; Bea Santos disabled; it goes on to "
        "the next available therapist",
        "Dry run: 1 without a response (1 therapist(s) would be disabled), each to go on to the next available "
        "therapist; 0 would be cancelled with no available therapist.",
    ]


def test_an_accepted_rejection_goes_to_the_next_therapist_never_back(
        make_appointment, therapist, therapist_b, operator, api):
    appt = make_appointment("rejected", therapist)

    response = api(operator).post(f"{APPTS}{appt.id}/review_rejection/", {"review_decision": "accept"},
                                  format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "pending"
    assert body["therapist"]["id"] == therapist_b.id
    assert body["auto_offers"] == 1
    assert [e[0] for e in events(appt)][-2:] == ["rejection_accepted", "assigned"]
    assert last_event(appt, "rejection_accepted").actor_id == operator.id
    assigned = last_event(appt, "assigned")
    assert (assigned.actor_id, assigned.data["auto"]) == (None, True)
    # Bea ignores it too: it never goes back to Ana, whose rejection was accepted.
    Appointment.objects.filter(pk=appt.pk).update(response_deadline=timezone.now() - timedelta(seconds=1))
    workflow.sweep()
    appt.refresh_from_db()
    assert (appt.status, appt.therapist_id) == ("pending", None)
    assert "no therapist is available" in last_event(appt, "timed_out").data["waiting"]


def test_nobody_left_means_it_waits_unassigned_and_every_operator_is_told(
        offer_overdue, therapist, operator, operator2):
    appt = offer_overdue(therapist)  # Ana is the only therapist

    workflow.sweep()
    workflow.sweep()  # three hours ahead: the no-available-therapist rule leaves it waiting

    appt.refresh_from_db()
    assert (appt.status, appt.therapist_id, appt.cancellation_reason) == ("pending", None, "")
    assert last_event(appt, "timed_out").data["waiting"] == "no therapist is available for it"
    notes = Notification.objects.filter(kind="needs_attention", appointment=appt)
    assert sorted(notes.values_list("recipient_id", flat=True)) == sorted([operator.id, operator2.id])
    assert notes.first().message == (
        f"#{appt.id} ({hhmm(appt.starts_at)}, Swedish massage for Maria Lopez) was "
        "not offered to anyone: no therapist is available for it. Assign it by hand.")
    assert Notification.objects.get(recipient=operator, kind="timeouts").message == (
        f"1 appointment not answered in time: #{appt.id}; 1 waiting for you, 1 therapist disabled.")


def test_an_operator_assigning_by_hand_settles_the_attention_notes(offer_overdue, therapist, operator, service, api):
    appt = offer_overdue(therapist)
    workflow.sweep()
    dan = make_therapist("dan", service, name="Dan Lim")

    response = api(operator).post(f"{APPTS}{appt.id}/assign/", {"therapist": dan.id}, format="json")

    assert response.status_code == 200
    assert not Notification.objects.filter(kind="needs_attention", appointment=appt, read_at__isnull=True).exists()


def test_cancelling_a_waiting_booking_settles_the_attention_notes(offer_overdue, therapist, operator, api):
    appt = offer_overdue(therapist)
    workflow.sweep()
    assert Notification.objects.filter(kind="needs_attention", appointment=appt, read_at__isnull=True).exists()

    response = api(operator).post(f"{APPTS}{appt.id}/cancel/", {"reason": "Client found someone"}, format="json")

    assert response.status_code == 200
    assert not Notification.objects.filter(kind="needs_attention", appointment=appt, read_at__isnull=True).exists()


def test_under_ten_minutes_nobody_is_offered_it_and_the_usual_rule_cancels_it_when_due(
        offer_overdue, therapist, therapist_b, operator):
    appt = offer_overdue(therapist, starts_in=timedelta(minutes=8))

    workflow.sweep()

    appt.refresh_from_db()
    # Bea is free, so the no-available-therapist rule leaves it to the operators.
    assert (appt.status, appt.therapist_id) == ("pending", None)
    assert last_event(appt, "timed_out").data["waiting"] == "it starts in less than 10 minutes"
    assert not Notification.objects.filter(recipient=therapist_b).exists()
    assert Notification.objects.filter(kind="needs_attention", appointment=appt, recipient=operator).exists()

    with time_machine.travel(appt.starts_at + timedelta(seconds=1)):
        counts = workflow.sweep()
    appt.refresh_from_db()
    assert counts.no_available_therapist == 1
    assert (appt.status, appt.cancellation_reason) == ("cancelled", "no_available_therapist")


def test_under_ten_minutes_with_nobody_free_it_is_cancelled_at_once(offer_overdue, therapist):
    appt = offer_overdue(therapist, starts_in=timedelta(minutes=8))

    counts = workflow.sweep()

    appt.refresh_from_db()
    assert (appt.status, appt.cancellation_reason) == ("cancelled", "no_available_therapist")
    assert counts.as_dict() == {"timed_out": 1, "therapists_disabled": 1, "no_available_therapist": 1,
                                "reminded": 0, "escalated": 0}
    assert [e[0] for e in events(appt)][-2:] == ["timed_out", "no_available_therapist"]
    assert not Notification.objects.filter(kind="needs_attention").exists()


def test_after_reoffer_max_automatic_offers_it_waits_for_the_operators(
        offer_overdue, therapist, therapist_b, service, reoffer_on, operator):
    reoffer_on.REOFFER_MAX = 1
    cara = make_therapist("cara", service, name="Cara Reyes")
    appt = offer_overdue(therapist)

    workflow.sweep()  # Ana times out: the one automatic offer
    appt.refresh_from_db()
    second = appt.therapist_id
    assert second in (therapist_b.id, cara.id) and appt.auto_offers == 1
    Appointment.objects.filter(pk=appt.pk).update(response_deadline=timezone.now() - timedelta(seconds=1))
    workflow.sweep()  # the second therapist times out too: no third offer, though one is free

    appt.refresh_from_db()
    assert (appt.status, appt.therapist_id, appt.auto_offers) == ("pending", None, 1)
    assert last_event(appt, "timed_out").data["waiting"] == "its automatic offers are used up (1 of 1)"
    assert User.objects.filter(pk__in=[therapist_b.id, cara.id], is_active=True).count() == 1
    assert Notification.objects.filter(kind="needs_attention", appointment=appt, recipient=operator).exists()


def test_a_disabled_therapists_other_offers_are_reoffered_and_confirmed_ones_flagged(
        offer_overdue, make_appointment, therapist, therapist_b, operator):
    late = offer_overdue(therapist)
    later_offer = make_appointment("pending", therapist, starts_in=timedelta(hours=8))
    confirmed = make_appointment("confirmed", therapist, starts_in=timedelta(hours=12))

    counts = workflow.sweep()

    late.refresh_from_db()
    later_offer.refresh_from_db()
    confirmed.refresh_from_db()
    assert late.therapist_id == therapist_b.id
    assert (later_offer.status, later_offer.therapist_id, later_offer.auto_offers) == ("pending", therapist_b.id, 1)
    assert confirmed.therapist_id == therapist.id  # a confirmed job waits for an operator's Reassign
    assert counts.reoffered == 2
    reassigned = last_event(later_offer, "reassigned")
    assert (reassigned.actor_id, reassigned.therapist_id, reassigned.to_status) == (None, therapist.id, "pending")
    assert reassigned.data == {"auto": True, "from_therapist": therapist.id, "reason": "therapist disabled"}
    assert last_event(later_offer, "assigned").data["auto"] is True
    flagged = Notification.objects.get(recipient=operator, kind="needs_attention")
    assert f"#{confirmed.id}" in flagged.message and f"#{later_offer.id}" not in flagged.message


def test_one_batch_never_gives_one_therapist_two_clashing_offers(
        client_obj, service, therapist_b, operator):
    """Two offers time out in one batch; Bea is the only one free and can reach
    only one of them: an overlap, and a back-to-back at another address."""
    late = [make_user(f"late{i}", "therapist") for i in range(3)]
    rows = bulk_overdue(3, late, client=client_obj, service=service)
    start = rows[0].starts_at
    Appointment.objects.filter(pk=rows[1].pk).update(starts_at=start + timedelta(minutes=30),
                                                     ends_at=start + timedelta(minutes=90))
    Appointment.objects.filter(pk=rows[2].pk).update(starts_at=start + timedelta(minutes=60),
                                                     ends_at=start + timedelta(minutes=120))

    counts = workflow.sweep()

    assert counts.reoffered == 1
    offered = list(Appointment.objects.filter(therapist=therapist_b))
    assert [a.id for a in offered] == [rows[0].id]  # the earliest start first
    assert Appointment.objects.filter(pk__in=[rows[1].pk, rows[2].pk], therapist__isnull=True,
                                      status="pending").count() == 2


def test_a_held_booking_waits_for_an_operator_who_can_still_assign_it(
        make_appointment, therapist, therapist_b, operator, api):
    appt = make_appointment("pending", therapist)

    response = api(operator).post(f"{APPTS}{appt.id}/hold/", {}, format="json")
    Appointment.objects.filter(pk=appt.pk).update(response_deadline=timezone.now() - timedelta(seconds=1))

    assert response.status_code == 200
    assert response.json()["held"] is True
    held = last_event(appt, "held")
    assert (held.actor_id, held.therapist_id, held.data) == (operator.id, None, {"held": True})

    workflow.sweep()

    appt.refresh_from_db()
    assert (appt.status, appt.therapist_id) == ("pending", None)
    assert last_event(appt, "timed_out").data["waiting"] == "an operator assigns it by hand"
    assert Notification.objects.filter(kind="needs_attention", appointment=appt, recipient=operator).exists()
    assert not Notification.objects.filter(recipient=therapist_b).exists()
    response = api(operator).post(f"{APPTS}{appt.id}/assign/", {"therapist": therapist_b.id}, format="json")
    assert response.status_code == 200
    assert response.json()["therapist"]["id"] == therapist_b.id


def test_hold_can_be_turned_off_and_a_repeat_changes_nothing(make_appointment, therapist, operator, api):
    appt = make_appointment("confirmed", therapist)
    before = AppointmentEvent.objects.count()

    first = api(operator).post(f"{APPTS}{appt.id}/hold/", {"hold": True}, format="json")
    again = api(operator).post(f"{APPTS}{appt.id}/hold/", {"hold": True}, format="json")
    off = api(operator).post(f"{APPTS}{appt.id}/hold/", {"hold": False}, format="json")

    assert [r.status_code for r in (first, again, off)] == [200, 200, 200]
    assert [first.json()["held"], again.json()["held"], off.json()["held"]] == [True, True, False]
    assert AppointmentEvent.objects.count() == before + 2
    # The therapist's own history does not show the operators' arrangement.
    history = api(therapist).get(f"{APPTS}{appt.id}/").json()["history"]
    assert "held" not in [item["kind"] for item in history]


@pytest.mark.parametrize("body", [{"hold": "yes"}, {"hold": 1}, {"hold": None}])
def test_hold_with_a_bad_value_is_400_and_changes_nothing(make_appointment, therapist, operator, api, body):
    appt = make_appointment("pending", therapist)

    response = api(operator).post(f"{APPTS}{appt.id}/hold/", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "hold" in response.json()["errors"]
    appt.refresh_from_db()
    assert appt.held is False


def test_hold_is_for_operators_and_open_appointments(make_appointment, therapist, operator, api):
    appt = make_appointment("pending", therapist)
    done = make_appointment("completed", therapist, starts_in=timedelta(hours=6))

    assert api(therapist).post(f"{APPTS}{appt.id}/hold/", {}, format="json").status_code == 403
    response = api(operator).post(f"{APPTS}{done.id}/hold/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert api(operator).post(f"{APPTS}999999/hold/", {}, format="json").status_code == 404


def test_a_late_accept_after_the_reoffer_is_told_the_deadline_passed(offer_overdue, therapist, therapist_b):
    appt = offer_overdue(therapist)
    workflow.sweep()

    with pytest.raises(workflow.WorkflowError) as refused:
        workflow.accept(actor=therapist, appointment_id=appt.id)

    assert refused.value.code == "deadline_passed"
    assert refused.value.detail.endswith(f"appointment #{appt.id} has been offered to another therapist.")
    appt.refresh_from_db()
    assert (appt.status, appt.therapist_id) == ("pending", therapist_b.id)


def test_a_late_accept_that_finds_it_overdue_times_it_out_and_reoffers_it(offer_overdue, therapist, therapist_b):
    appt = offer_overdue(therapist)

    with pytest.raises(workflow.WorkflowError) as refused:
        workflow.accept(actor=therapist, appointment_id=appt.id)

    assert refused.value.code == "deadline_passed"
    assert "has been offered to another therapist" in refused.value.detail
    appt.refresh_from_db()
    assert (appt.status, appt.therapist_id) == ("pending", therapist_b.id)
    assert [e[0] for e in events(appt)][-2:] == ["timed_out", "assigned"]


def test_with_reoffer_off_the_seed_rules_stand(offer_overdue, make_appointment, therapist, therapist_b, operator,
                                              reoffer_on):
    reoffer_on.AUTO_REOFFER = False
    appt = offer_overdue(therapist)
    rejected = make_appointment("rejected", therapist_b, starts_in=timedelta(hours=6))

    workflow.sweep()
    workflow.review_rejection(actor=operator, appointment_id=rejected.id, decision="accept")

    appt.refresh_from_db()
    rejected.refresh_from_db()
    assert (appt.status, appt.cancellation_reason) == ("cancelled", "response_timeout")
    # Ana is disabled, so nobody is left: cancelled at once, as the seed's rule says.
    assert (rejected.status, rejected.cancellation_reason) == ("cancelled", "no_available_therapist")
    assert not AppointmentEvent.objects.filter(kind="assigned", actor__isnull=True).exists()


# --- Cost: a fixed number of queries per batch --------------------------------------


@pytest.mark.parametrize("due", [50, 500])
def test_a_batch_of_timeouts_reoffers_with_a_fixed_number_of_queries(
        django_assert_max_num_queries, client_obj, service, operator, operator2, due):
    late = [make_user(f"late{i:02}", "therapist") for i in range(20)]
    free = [make_therapist(f"free{i:02}", service) for i in range(30)]
    rows = bulk_overdue(due, late, client=client_obj, service=service)

    # The same 29 statements for 50 or 500: claim (by the index, then the rows), release, disable (lock, update,
    # history), latest rejections, the disabled therapists' other offers, the
    # planner (5 + 2 for the ranking), one lock of the picked therapists, their
    # reload (5), one bulk update, the open-jobs look-up and the outbox (events,
    # operators, notifications, unread counts), inside one savepoint.
    # SQLite splits big statements (999 parameters), PostgreSQL does not.
    postgres = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    with django_assert_max_num_queries(29 if postgres else 29 + 2 * due // 50):
        counts = workflow.expire_overdue(batch_size=500)

    assert counts.claimed == due
    offered = Appointment.objects.filter(pk__in=[r.pk for r in rows], therapist__in=free)
    # bulk_overdue starts one a minute: each free therapist takes every 90th minute
    # (60 minutes, then 30 to travel to the next address).
    assert offered.count() == min(due, 30 * -(-due // 90))
    assert AppointmentEvent.objects.filter(kind="assigned", actor__isnull=True).count() == offered.count()
    busy = {}
    for appt in offered.order_by("starts_at"):
        if appt.therapist_id in busy:
            assert appt.starts_at >= busy[appt.therapist_id] + timedelta(minutes=30)
        busy[appt.therapist_id] = appt.ends_at


def test_the_history_names_who_each_offer_went_to_and_each_therapist_sees_only_their_part(
        offer_overdue, therapist, therapist_b, operator, api):
    appt = offer_overdue(therapist)
    workflow.sweep()

    history = api(operator).get(f"{APPTS}{appt.id}/").json()["history"]
    mine = api(therapist_b).get(f"{APPTS}{appt.id}/").json()["history"]

    assert [(h["kind"], h["therapist"] and h["therapist"]["name"], h["actor"]) for h in history] == [
        ("created", None, "Olga Operator"), ("assigned", "Ana Cruz", "Olga Operator"),
        ("timed_out", "Ana Cruz", None), ("assigned", "Bea Santos", None)]
    assert [(h["kind"], h["therapist"] and h["therapist"]["name"]) for h in mine] == [
        ("created", None), ("assigned", "Bea Santos")]
