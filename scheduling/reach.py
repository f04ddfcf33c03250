"""An offer nobody has seen: the sweep's reminder and escalation.

Before the deadline rule disables a therapist it makes sure they heard:
1. Remind: an offer still unseen `REMIND_AFTER_MINUTES` after it was sent (and
   still waiting for an answer) gets one email to the therapist
   (`offer_reminded_at`). A therapist without an email address gets none; the
   escalation still fires for them.
2. Escalate: an offer still unseen `ESCALATE_AFTER_MINUTES` after it was sent
   gets one `unseen` notification to every active operator, while there is
   still time to phone (`offer_escalated_at`).
0 minutes means at the first sweep after the offer; `off` turns a step off.
Each fires once per offer: a new offer starts its receipts again
(`workflow._open_offer`).

Each batch claims its rows with `select_for_update(skip_locked=True)` and marks
them in the same transaction, so several sweeps at once never send twice: a row
another sweep holds is skipped, and once marked it is out of the look-up (and of
its partial index). A fixed number of queries per batch, whatever its size.
Emails go out after the commit, so a batch that rolls back sends nothing; one
that fails is logged and not retried (at most one reminder per offer).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from accounts import formatting
from notifications.models import Notification

from .models import Appointment
from .outbox import Outbox
from .workflow import BatchResult, SweepAction

logger = logging.getLogger(__name__)

REMINDED = "reminded"
ESCALATED = "escalated"


def _unseen(now: datetime, after_minutes: int, not_yet: str) -> Q:
    """Open offers unseen for `after_minutes`, whose `not_yet` step has not run,
    to an active therapist, before their deadline."""
    return Q(status=Appointment.Status.PENDING, therapist__isnull=False, therapist__is_active=True,
             offer_seen_at__isnull=True, offer_sent_at__lte=now - timedelta(minutes=after_minutes),
             response_deadline__gt=now, **{f"{not_yet}__isnull": True})


def _claim(condition: Q, *, batch_size: int, dry_run: bool, after_id: int) -> list[Appointment]:
    qs = (Appointment.objects.filter(condition, id__gt=after_id)
          .select_related("client", "service", "therapist").order_by("id"))
    if not dry_run:
        qs = qs.select_for_update(skip_locked=True, of=("self",))
    return list(qs[:batch_size])


def _minutes_left(appt: Appointment, now: datetime) -> int:
    return max(1, math.ceil((appt.response_deadline - now).total_seconds() / 60))


def _link(appt: Appointment) -> str:
    return f"{settings.SITE_URL}/therapist/?appointment={appt.id}"


# ---------------------------------------------------------------------------
# 1. The reminder email.
# ---------------------------------------------------------------------------


def _reminder_line(appt: Appointment, now: datetime) -> str:
    therapist = appt.therapist
    return (f"#{appt.id} reminded by email: {therapist.display_name} <{therapist.email}> has not seen the offer "
            f"sent {formatting.when(appt.offer_sent_at, now=now)}; "
            f"answer due by {formatting.time_of_day(appt.response_deadline)}")


def reminder_email(appt: Appointment, now: datetime) -> EmailMultiAlternatives:
    """The plain-text and HTML email that asks the therapist to answer."""
    context = {
        "appointment": appt,
        "therapist_name": appt.therapist.first_name or appt.therapist.display_name,
        "client_first_name": (appt.client.name.split() or ["the client"])[0],
        "starts": formatting.when(appt.starts_at, now=now),
        "answer_by": formatting.time_of_day(appt.response_deadline),
        "minutes_left": _minutes_left(appt, now),
        "link": _link(appt),
    }
    subject = f"Please answer appointment #{appt.id} by {context['answer_by']}"
    message = EmailMultiAlternatives(
        subject, render_to_string("scheduling/email/offer_reminder.txt", context),
        settings.DEFAULT_FROM_EMAIL, [appt.therapist.email],
    )
    message.attach_alternative(render_to_string("scheduling/email/offer_reminder.html", context), "text/html")
    return message


def send_emails(messages: list[tuple[int, EmailMultiAlternatives]]) -> int:
    """Send `(appointment id, email)` pairs over one connection; failures are
    logged per email, never raised. Returns how many went out."""
    if not messages:
        return 0
    connection = get_connection(fail_silently=False)
    try:
        connection.open()
    except Exception as exc:  # noqa: BLE001 - the sweep goes on without email
        logger.error("reminder emails for %s not sent: cannot reach the mail server (%s: %s)",
                     ", ".join(f"#{appt_id}" for appt_id, _ in messages), type(exc).__name__, exc)
        return 0
    sent = 0
    try:
        for appt_id, message in messages:
            try:
                sent += connection.send_messages([message]) or 0
            except Exception as exc:  # noqa: BLE001 - one bad address must not stop the others
                logger.error("reminder email for #%s not sent: %s: %s", appt_id, type(exc).__name__, exc)
    finally:
        connection.close()
    return sent


def remind_unseen(*, batch_size: int = 500, dry_run: bool = False, after: tuple | None = None) -> BatchResult:
    """Claim a batch of offers due a reminder, mark them reminded and email their
    therapists once the batch commits. Only therapists with an email address."""
    minutes = settings.REMIND_AFTER_MINUTES
    if minutes is None:
        return BatchResult(last=after)
    after_id = after[0] if after else 0
    with transaction.atomic():
        now = timezone.now()
        condition = _unseen(now, minutes, "offer_reminded_at") & ~Q(therapist__email="")
        appts = _claim(condition, batch_size=batch_size, dry_run=dry_run, after_id=after_id)
        actions = [SweepAction(a.id, REMINDED, _reminder_line(a, now)) for a in appts]
        if appts and not dry_run:
            Appointment.objects.filter(id__in=[a.id for a in appts]).update(offer_reminded_at=now, updated_at=now)
            messages = [(a.id, reminder_email(a, now)) for a in appts]
            transaction.on_commit(lambda: send_emails(messages))
    return BatchResult(len(appts), actions, (appts[-1].id,) if appts else after)


# ---------------------------------------------------------------------------
# 2. The operators' escalation.
# ---------------------------------------------------------------------------


def escalation_message(appt: Appointment, now: datetime) -> str:
    therapist = appt.therapist
    client = (appt.client.name.split() or ["the client"])[0]
    call = f"call {therapist.phone}" if therapist.phone else "no phone number on file"
    return (f"{therapist.display_name} hasn't seen #{appt.id} ({client} · {appt.service.name} · "
            f"{formatting.when(appt.starts_at, now=now)}) — {_minutes_left(appt, now)} min left to answer; {call}.")


def _escalation_line(appt: Appointment, now: datetime) -> str:
    return (f"#{appt.id} escalated to the operators: {appt.therapist.display_name} has not seen the offer, "
            f"{_minutes_left(appt, now)} min left")


def escalate_unseen(*, batch_size: int = 500, dry_run: bool = False, after: tuple | None = None) -> BatchResult:
    """Claim a batch of offers due an escalation, mark them escalated and tell
    every active operator (notification kind `unseen`, linked to the appointment,
    pushed live)."""
    minutes = settings.ESCALATE_AFTER_MINUTES
    if minutes is None:
        return BatchResult(last=after)
    after_id = after[0] if after else 0
    with transaction.atomic():
        now = timezone.now()
        appts = _claim(_unseen(now, minutes, "offer_escalated_at"), batch_size=batch_size, dry_run=dry_run,
                       after_id=after_id)
        actions = [SweepAction(a.id, ESCALATED, _escalation_line(a, now)) for a in appts]
        if appts and not dry_run:
            Appointment.objects.filter(id__in=[a.id for a in appts]).update(offer_escalated_at=now, updated_at=now)
            outbox = Outbox(now)
            for appt in appts:
                outbox.notify_operators(Notification.Kind.UNSEEN, appt, escalation_message(appt, now))
            outbox.flush()
    return BatchResult(len(appts), actions, (appts[-1].id,) if appts else after)


def reach_unseen(*, batch_size: int = 500, dry_run: bool = False,
                 report: Callable[[SweepAction], None] | None = None) -> tuple[int, int]:
    """Both steps over everything due, batch by batch; returns (reminded, escalated)."""
    counts = {REMINDED: 0, ESCALATED: 0}
    for step in (remind_unseen, escalate_unseen):
        after = None
        while True:
            result = step(batch_size=batch_size, dry_run=dry_run, after=after)
            for action in result.actions:
                counts[action.kind] += 1
                if report:
                    report(action)
            after = result.last
            if result.claimed < batch_size:
                break
    return counts[REMINDED], counts[ESCALATED]
