"""The sweep reaches a therapist who has not seen an offer: one reminder email
(to a real SMTP server on loopback), then one `unseen` notification to every
operator; each exactly once per offer, also with two sweeps at once."""

import subprocess
import sys
import threading
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from notifications.models import Notification
from scheduling import reach, workflow
from scheduling.models import Appointment
from tests.conftest import make_therapist, make_user
from tests.loopback import SmtpSink
from tests.servers import ROOT, server_env

APPTS = "/api/scheduling/appointments/"


@pytest.fixture
def smtp(settings):
    sink = SmtpSink().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.DEFAULT_FROM_EMAIL = "Royal Care <dispatch@royalcare.example>"
    settings.SITE_URL = "https://care.royalcare.example"
    yield sink
    sink.stop()


@pytest.fixture
def reach_on(settings):
    settings.REMIND_AFTER_MINUTES = 10
    settings.ESCALATE_AFTER_MINUTES = 20
    return settings


@pytest.fixture
def ana(therapist):
    therapist.email = "ana@example.com"
    therapist.phone = "+63 917 000 1111"
    therapist.save()
    return therapist


def sweep(capture) -> list[str]:
    """Run the command as cron does; its emails go out after each batch commits."""
    from io import StringIO

    out = StringIO()
    with capture(execute=True):
        call_command("auto_cancel_overdue", stdout=out)
    return out.getvalue().splitlines()


def test_an_unseen_offer_gets_one_reminder_email_with_a_text_and_an_html_part(
        reach_on, smtp, ana, make_appointment, django_capture_on_commit_callbacks):
    appt = make_appointment("pending", ana)
    sent = appt.offer_sent_at
    with time_machine.travel(sent + timedelta(minutes=10, seconds=-1)):
        assert sweep(django_capture_on_commit_callbacks) == ["Nothing due: no appointment is overdue or unstaffable."]
    assert smtp.messages == []

    with time_machine.travel(sent + timedelta(minutes=10, seconds=1)):
        lines = sweep(django_capture_on_commit_callbacks)
    assert lines[0].startswith(f"#{appt.id} reminded by email: Ana Cruz <ana@example.com> has not seen the offer")
    assert lines[-1].endswith("Unseen offers: 1 reminded by email, 0 escalated to the operators.")
    assert smtp.wait_for(lambda: len(smtp.messages) == 1)
    [message] = smtp.messages
    assert smtp.recipients == [["ana@example.com"]]
    assert message["To"] == "ana@example.com"
    assert message["From"] == "Royal Care <dispatch@royalcare.example>"
    deadline = timezone.localtime(appt.response_deadline)
    answer_by = f"{deadline.hour % 12 or 12}:{deadline:%M} {'AM' if deadline.hour < 12 else 'PM'}"
    assert message["Subject"] == f"Please answer appointment #{appt.id} by {answer_by}"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    link = f"https://care.royalcare.example/therapist/?appointment={appt.id}"
    for part in (text, html):
        assert "Maria" in part and "Lopez" not in part
        assert "Swedish massage" in part and "12 Mabini St, Makati" in part
        assert link in part and answer_by in part
    assert f'href="{link}"' in html
    appt.refresh_from_db()
    assert appt.offer_reminded_at is not None and appt.offer_escalated_at is None

    # Once per offer: later sweeps send nothing more.
    with time_machine.travel(sent + timedelta(minutes=15)):
        assert sweep(django_capture_on_commit_callbacks) == ["Nothing due: no appointment is overdue or unstaffable."]
    assert len(smtp.messages) == 1


def test_an_offer_seen_in_time_gets_no_reminder_and_no_escalation(
        api, reach_on, smtp, ana, operator, make_appointment, django_capture_on_commit_callbacks):
    appt = make_appointment("pending", ana)
    assert api(ana).post(f"{APPTS}{appt.id}/receipt/", {"kind": "seen"}, format="json").status_code == 200
    with time_machine.travel(appt.offer_sent_at + timedelta(minutes=25)):
        assert sweep(django_capture_on_commit_callbacks) == ["Nothing due: no appointment is overdue or unstaffable."]
    assert smtp.messages == []
    assert not Notification.objects.filter(kind="unseen").exists()


def test_the_escalation_tells_every_active_operator_once_while_there_is_time_to_phone(
        reach_on, smtp, ana, operator, operator2, make_appointment, recorder,
        django_capture_on_commit_callbacks):
    make_user("otto", "operator", name="Otto Gone", is_active=False)
    appt = make_appointment("pending", ana)
    recorder.calls.clear()
    swept_at = appt.offer_sent_at + timedelta(minutes=20, seconds=1)
    with time_machine.travel(swept_at):
        lines = sweep(django_capture_on_commit_callbacks)
    assert lines[-2] == f"#{appt.id} escalated to the operators: Ana Cruz has not seen the offer, 10 min left"
    assert lines[-1].endswith("Unseen offers: 1 reminded by email, 1 escalated to the operators.")
    unseen = Notification.objects.filter(kind="unseen").order_by("recipient_id")
    assert [n.recipient for n in unseen] == [operator, operator2]
    # The start by its time alone when it is today, with its day when the offer runs past midnight.
    starts = timezone.localtime(appt.starts_at)
    when = f"{starts.hour % 12 or 12}:{starts:%M} {'AM' if starts.hour < 12 else 'PM'}"
    if starts.date() != timezone.localtime(swept_at).date():
        when = f"{starts:%a}, {starts:%b} {starts.day}, {when}"
    assert {n.message for n in unseen} == {
        f"Ana Cruz hasn't seen #{appt.id} (Maria · Swedish massage · {when}) — 10 min left to answer; "
        "call +63 917 000 1111."}
    assert all(n.appointment_id == appt.id for n in unseen)
    for op in (operator, operator2):
        [live] = [m for m in recorder.received(f"user_{op.id}") if m["type"] == "notification"]
        assert live["notification"]["kind"] == "unseen" and live["notification"]["appointment"] == appt.id
    appt.refresh_from_db()
    assert appt.offer_escalated_at is not None

    with time_machine.travel(appt.offer_sent_at + timedelta(minutes=25)):
        sweep(django_capture_on_commit_callbacks)
    assert Notification.objects.filter(kind="unseen").count() == 2
    assert len(smtp.messages) == 1


def test_without_an_email_address_the_reminder_is_skipped_and_the_escalation_still_fires(
        reach_on, smtp, therapist, operator, make_appointment, django_capture_on_commit_callbacks):
    appt = make_appointment("pending", therapist)
    with time_machine.travel(appt.offer_sent_at + timedelta(minutes=21)):
        lines = sweep(django_capture_on_commit_callbacks)
    assert lines[0].startswith(f"#{appt.id} escalated to the operators")
    assert smtp.messages == []
    message = Notification.objects.get(kind="unseen").message
    assert message.endswith("min left to answer; no phone number on file.")
    appt.refresh_from_db()
    assert appt.offer_reminded_at is None


def test_zero_minutes_is_the_first_sweep_after_the_offer_and_off_turns_a_step_off(
        settings, smtp, ana, operator, make_appointment, django_capture_on_commit_callbacks):
    settings.REMIND_AFTER_MINUTES = 0
    settings.ESCALATE_AFTER_MINUTES = None
    appt = make_appointment("pending", ana)
    sweep(django_capture_on_commit_callbacks)
    assert smtp.wait_for(lambda: len(smtp.messages) == 1)
    assert not Notification.objects.filter(kind="unseen").exists()

    settings.REMIND_AFTER_MINUTES = None
    settings.ESCALATE_AFTER_MINUTES = 0
    other = make_appointment("pending", ana, starts_in=timedelta(hours=6))
    sweep(django_capture_on_commit_callbacks)
    assert len(smtp.messages) == 1
    assert set(Notification.objects.filter(kind="unseen").values_list("appointment_id", flat=True)) == {
        appt.id, other.id}


def test_an_offer_past_its_deadline_is_timed_out_not_reminded(reach_on, smtp, ana, make_appointment,
                                                              django_capture_on_commit_callbacks):
    appt = make_appointment("pending", ana)
    with time_machine.travel(appt.response_deadline + timedelta(seconds=1)):
        lines = sweep(django_capture_on_commit_callbacks)
    assert lines[0].startswith(f"#{appt.id} cancelled: no response")
    assert smtp.messages == []


def test_a_new_offer_is_reminded_again(reach_on, smtp, ana, therapist_b, operator, make_appointment,
                                       django_capture_on_commit_callbacks):
    therapist_b.email = "bea@example.com"
    therapist_b.save()
    appt = make_appointment("pending", ana)
    with time_machine.travel(appt.offer_sent_at + timedelta(minutes=11)):
        sweep(django_capture_on_commit_callbacks)
        workflow.reject(actor=ana, appointment_id=appt.id, reason="Car broke down")
        workflow.review_rejection(actor=operator, appointment_id=appt.id, decision="accept")
        workflow.assign(actor=operator, appointment_id=appt.id, therapist_id=therapist_b.id)
    appt.refresh_from_db()
    assert appt.offer_number == 2 and appt.offer_reminded_at is None
    with time_machine.travel(appt.offer_sent_at + timedelta(minutes=11)):
        sweep(django_capture_on_commit_callbacks)
    assert smtp.wait_for(lambda: len(smtp.messages) == 2)
    assert [m["To"] for m in smtp.messages] == ["ana@example.com", "bea@example.com"]


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_rolls_back_sends_no_email(settings, smtp, ana, make_appointment):
    settings.REMIND_AFTER_MINUTES = 0

    class Boom(Exception):
        pass

    appt = make_appointment("pending", ana)
    with pytest.raises(Boom), transaction.atomic():
        assert reach.remind_unseen().claimed == 1
        raise Boom
    assert smtp.messages == []
    appt.refresh_from_db()
    assert appt.offer_reminded_at is None
    reach.remind_unseen()
    assert smtp.wait_for(lambda: len(smtp.messages) == 1)


def test_a_mail_server_that_is_down_is_logged_and_the_sweep_goes_on(settings, ana, make_appointment, caplog,
                                                                    django_capture_on_commit_callbacks):
    from tests.servers import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens there
    settings.REMIND_AFTER_MINUTES = 0
    settings.ESCALATE_AFTER_MINUTES = 0
    appt = make_appointment("pending", ana)
    lines = sweep(django_capture_on_commit_callbacks)
    assert lines[-1].endswith("Unseen offers: 1 reminded by email, 1 escalated to the operators.")
    assert f"reminder emails for #{appt.id} not sent: cannot reach the mail server" in caplog.text


def test_a_dry_run_lists_the_reminders_and_sends_nothing(settings, smtp, ana, make_appointment,
                                                         django_capture_on_commit_callbacks):
    settings.REMIND_AFTER_MINUTES = 0
    settings.ESCALATE_AFTER_MINUTES = 0
    appt = make_appointment("pending", ana)
    from io import StringIO

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("auto_cancel_overdue", "--dry-run", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"[dry run] would be #{appt.id} reminded by email")
    assert lines[1].startswith(f"[dry run] would be #{appt.id} escalated to the operators")
    assert "Unseen offers (would be): 1 reminded by email, 1 escalated" in lines[-1]
    assert smtp.messages == []
    appt.refresh_from_db()
    assert (appt.offer_reminded_at, appt.offer_escalated_at) == (None, None)


def test_the_sweep_endpoint_answers_the_reach_counts(api, settings, operator, therapist, make_appointment):
    settings.REMIND_AFTER_MINUTES = None
    settings.ESCALATE_AFTER_MINUTES = 0
    make_appointment("pending", therapist)
    body = api(operator).post(f"{APPTS}auto_cancel_overdue/").json()
    assert body == {"timed_out": 0, "therapists_disabled": 0, "no_available_therapist": 0, "reminded": 0,
                    "escalated": 1}


def _offers(count: int, service, client_obj, operator, *, with_email: bool = True) -> list[Appointment]:
    therapists = [make_therapist(f"r{n:02}", service, hours=200) for n in range(8)]
    if with_email:
        for t in therapists:
            t.email = f"{t.username}@example.com"
            t.save(update_fields=["email"])
    now = timezone.now()
    return [workflow.create_appointment(
        actor=operator, client=client_obj, service=service, location="Makati",
        starts_at=now + timedelta(hours=2 + 2 * (n // len(therapists))), therapist_id=therapists[n % 8].id,
    ) for n in range(count)]


def test_a_batch_costs_a_fixed_number_of_queries(settings, service, client_obj, operator, operator2,
                                                 django_assert_max_num_queries, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.REMIND_AFTER_MINUTES = settings.ESCALATE_AFTER_MINUTES = 0
    _offers(48, service, client_obj, operator)
    with django_assert_max_num_queries(5), django_capture_on_commit_callbacks(execute=True):
        assert reach.remind_unseen(batch_size=100).claimed == 48
    with django_assert_max_num_queries(7):
        assert reach.escalate_unseen(batch_size=100).claimed == 48
    assert Notification.objects.filter(kind="unseen").count() == 48 * 2


# --- Several sweeps at once (PostgreSQL row locks) ------------------------------------------


@pytest.mark.usefixtures("postgres")
@pytest.mark.django_db(transaction=True)
def test_two_sweep_processes_at_once_send_exactly_one_reminder_per_offer(service, client_obj, operator, operator2,
                                                                         tmp_path):
    sink = SmtpSink().start()
    try:
        appts = _offers(60, service, client_obj, operator)
        env = server_env(REMIND_AFTER_MINUTES="0", ESCALATE_AFTER_MINUTES="0", EMAIL_URL=sink.url,
                         DEFAULT_FROM_EMAIL="dispatch@royalcare.example")
        processes = [subprocess.Popen(
            [sys.executable, "manage.py", "auto_cancel_overdue", "--batch-size", "3"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in processes]
        assert [p.returncode for p in processes] == [0, 0], outputs
        assert sink.wait_for(lambda: len(sink.messages) >= 60)
        subjects = sorted(m["Subject"] for m in sink.messages)
        assert len(subjects) == 60, "exactly one email per offer"
        assert {s.split("#")[1].split()[0] for s in subjects} == {str(a.id) for a in appts}
        lines = [line for out, _ in outputs for line in out.splitlines() if line.startswith("#")]
        assert sum(" reminded by email: " in line for line in lines) == 60
        assert sum(" escalated to the operators: " in line for line in lines) == 60
        per_offer = Notification.objects.filter(kind="unseen").values_list("appointment_id", "recipient_id")
        assert sorted(per_offer) == sorted((a.id, op.id) for a in appts for op in (operator, operator2))
    finally:
        sink.stop()


@pytest.mark.usefixtures("postgres")
@pytest.mark.django_db(transaction=True)
def test_sweeps_released_together_on_threads_never_remind_twice(settings, service, client_obj, operator):
    sink = SmtpSink().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.REMIND_AFTER_MINUTES = settings.ESCALATE_AFTER_MINUTES = 0
    try:
        appts = _offers(40, service, client_obj, operator)
        barrier = threading.Barrier(4)
        counts, errors = [], []

        def run():
            try:
                barrier.wait(10)
                counts.append(workflow.sweep(batch_size=2))
            except Exception as exc:
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert sum(c.reminded for c in counts) == 40
        assert sum(c.escalated for c in counts) == 40
        assert sink.wait_for(lambda: len(sink.messages) >= 40)
        assert sorted(m["Subject"].split("#")[1].split()[0] for m in sink.messages) == sorted(
            str(a.id) for a in appts)
        assert Notification.objects.filter(kind="unseen").count() == 40
        assert not Appointment.objects.filter(offer_reminded_at__isnull=True).exists()
    finally:
        sink.stop()
