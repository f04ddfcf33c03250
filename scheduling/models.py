"""Bookings and their history.

Nothing outside `scheduling/workflow.py` changes an appointment's status.
"""

from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Prefetch, Q

from accounts.bulk import any_of
from accounts.models import User


class Client(models.Model):
    name = models.CharField(max_length=200)
    phone = models.CharField(max_length=32)
    email = models.EmailField(blank=True)
    address = models.CharField(max_length=500, blank=True)
    notes = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["name"]), models.Index(fields=["phone"])]

    def __str__(self) -> str:
        return self.name


class Service(models.Model):
    """A kind of massage the business sells (not a code 'service')."""

    name = models.CharField(max_length=120, unique=True)
    duration_minutes = models.PositiveIntegerField(validators=[MinValueValidator(15), MaxValueValidator(480)])
    price = models.DecimalField(max_digits=9, decimal_places=2, validators=[MinValueValidator(0)])
    is_active = models.BooleanField(default=True)
    therapists = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="qualified_services",
        limit_choices_to={"role": User.Role.THERAPIST},
        help_text="The therapists qualified to give this service.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(duration_minutes__gte=15, duration_minutes__lte=480),
                                   name="service_duration_range"),
            models.CheckConstraint(condition=Q(price__gte=0), name="service_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.duration_minutes} min)"


class Availability(models.Model):
    """A stretch of time a therapist can work; it may cross midnight."""

    # Indexed by availability_lookup below, which leads with it.
    therapist = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="availability",
                                  db_index=False)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()

    class Meta:
        ordering = ["starts_at", "id"]
        verbose_name_plural = "availability"
        indexes = [models.Index(fields=["therapist", "starts_at", "ends_at"], name="availability_lookup")]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")),
                                   name="availability_ends_after_start"),
        ]

    def __str__(self) -> str:
        return f"{self.therapist} {self.starts_at:%Y-%m-%d %H:%M} – {self.ends_at:%H:%M}"


class AppointmentQuerySet(models.QuerySet):
    """The named rules about appointments, spelled once."""

    def overdue(self, now: datetime) -> "AppointmentQuerySet":
        """Offers whose answer is late: pending, assigned, and the deadline has passed."""
        return self.filter(Appointment.overdue_q(now))

    def not_overdue(self, now: datetime) -> "AppointmentQuerySet":
        return self.exclude(Appointment.overdue_q(now))

    def open_ahead(self, now: datetime) -> "AppointmentQuerySet":
        """Jobs a therapist still holds: pending or confirmed, start ahead. Offers
        already overdue are left out: the timeout rule takes them next."""
        return self.filter(
            status__in=[Appointment.Status.PENDING, Appointment.Status.CONFIRMED], therapist__isnull=False,
            starts_at__gt=now,
        ).not_overdue(now)

    def with_latest_rejection(self) -> "AppointmentQuerySet":
        """Loads each row's newest rejection (one query for the whole list), read
        through `Appointment.latest_rejection`."""
        return self.prefetch_related(Prefetch(
            "rejections", queryset=AppointmentRejection.objects.order_by("-created_at", "-id"),
            to_attr="_latest_rejections",
        ))


class Appointment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CONFIRMED = "confirmed", "Confirmed"
        REJECTED = "rejected", "Rejected"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    class CancellationReason(models.TextChoices):
        OPERATOR = "operator", "Cancelled by an operator"
        RESPONSE_TIMEOUT = "response_timeout", "No response before the deadline"
        NO_AVAILABLE_THERAPIST = "no_available_therapist", "No therapist available"

    # States a therapist is busy in: they block overlapping assignments.
    BUSY_STATUSES = (Status.PENDING, Status.CONFIRMED, Status.REJECTED, Status.IN_PROGRESS)
    FINAL_STATUSES = (Status.COMPLETED, Status.CANCELLED)

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="appointments")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="appointments")
    therapist = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="appointments"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    location = models.CharField(max_length=500)
    notes = models.TextField(blank=True, max_length=2000)

    assigned_at = models.DateTimeField(null=True, blank=True)
    response_deadline = models.DateTimeField(null=True, blank=True)
    responded_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    auto_cancelled_at = models.DateTimeField(null=True, blank=True)
    cancellation_reason = models.CharField(max_length=32, choices=CancellationReason.choices, blank=True)
    cancellation_note = models.CharField(max_length=500, blank=True)
    # Re-offer (AUTO_REOFFER): how many automatic offers it has had (none after
    # REOFFER_MAX), and whether an operator took it out of the automatic chain
    # ("assign by hand").
    auto_offers = models.PositiveSmallIntegerField(default=0)
    held = models.BooleanField(default=False, help_text="Assign by hand: no automatic offers.")

    # The current offer to the therapist (see workflow._open_offer): each time the
    # appointment is put to a therapist with a fresh deadline the number goes up
    # and the receipts start again; a denied rejection continues the same offer.
    offer_number = models.PositiveIntegerField(default=0)
    offer_sent_at = models.DateTimeField(null=True, blank=True)
    offer_delivered_at = models.DateTimeField(null=True, blank=True)
    offer_seen_at = models.DateTimeField(null=True, blank=True)
    offer_reminded_at = models.DateTimeField(null=True, blank=True)
    offer_escalated_at = models.DateTimeField(null=True, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField()

    objects = AppointmentQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [
            models.Index(fields=["status", "starts_at"], name="appt_status_start"),
            models.Index(fields=["therapist", "starts_at"], name="appt_therapist_start"),
            models.Index(fields=["starts_at"], name="appt_start"),
            # The sweep's two look-ups, small because only pending rows are in them.
            models.Index(
                fields=["response_deadline", "id"], name="appt_pending_deadline_id",
                condition=Q(status="pending", therapist__isnull=False),
            ),
            models.Index(
                fields=["starts_at"], name="appt_pending_unassigned",
                condition=Q(status="pending", therapist__isnull=True),
            ),
            # The sweep's reminder and escalation look-ups (scheduling.reach): only
            # unseen offers still waiting for their reminder / escalation are in them.
            models.Index(
                fields=["offer_sent_at"], name="appt_offer_to_remind",
                condition=Q(status="pending", therapist__isnull=False, offer_seen_at__isnull=True,
                            offer_reminded_at__isnull=True),
            ),
            models.Index(
                fields=["offer_sent_at"], name="appt_offer_to_escalate",
                condition=Q(status="pending", therapist__isnull=False, offer_seen_at__isnull=True,
                            offer_escalated_at__isnull=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="appointment_ends_after_start"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.client} {self.starts_at:%Y-%m-%d %H:%M} ({self.status})"

    @staticmethod
    def overdue_q(now: datetime) -> Q:
        # Matches the partial index `appt_pending_deadline`.
        return Q(status=Appointment.Status.PENDING, therapist__isnull=False, response_deadline__lte=now)

    def is_overdue(self, now: datetime) -> bool:
        """The one-row form of `Appointment.objects.overdue(now)`."""
        return (self.status == self.Status.PENDING and self.therapist_id is not None
                and self.response_deadline is not None and self.response_deadline <= now)

    @property
    def latest_rejection(self) -> "AppointmentRejection | None":
        """The newest rejection, loaded by `with_latest_rejection()` or
        `AppointmentRejection.attach_latest()`. Never a hidden query per row: reading
        it on a row loaded without either is a programming error."""
        try:
            cached = self._latest_rejections
        except AttributeError:
            raise RuntimeError(
                "latest_rejection was not loaded: use Appointment.objects.with_latest_rejection() "
                "or AppointmentRejection.attach_latest()"
            ) from None
        return cached[0] if cached else None

    @latest_rejection.setter
    def latest_rejection(self, rejection: "AppointmentRejection | None") -> None:
        self._latest_rejections = [rejection] if rejection else []


class AppointmentRejection(models.Model):
    """A therapist's rejection and, once reviewed, the operator's decision."""

    class Decision(models.TextChoices):
        ACCEPT = "accept", "Accepted (back to the queue)"
        DENY = "deny", "Denied (same therapist, fresh deadline)"

    class ReasonCode(models.TextChoices):
        """Why, in one word the Insights tab can count; the free text says the rest."""

        SCHEDULE_CONFLICT = "schedule_conflict", "Schedule conflict"
        TOO_FAR = "too_far", "Too far"
        CLIENT_CONCERN = "client_concern", "Client concern"
        HEALTH = "health", "Health"
        OTHER = "other", "Other"

    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="rejections")
    therapist = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rejections")
    reason = models.CharField(max_length=500)
    reason_code = models.CharField(max_length=32, choices=ReasonCode.choices, default=ReasonCode.OTHER)
    created_at = models.DateTimeField()
    review_decision = models.CharField(max_length=8, choices=Decision.choices, blank=True)
    review_note = models.CharField(max_length=500, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one rejection per appointment waits for review.
            models.UniqueConstraint(fields=["appointment"], condition=Q(review_decision=""),
                                    name="one_open_rejection_per_appointment"),
        ]

    def __str__(self) -> str:
        return f"#{self.appointment_id} rejected by {self.therapist}"

    @classmethod
    def attach_latest(cls, appointments: Iterable[Appointment]) -> None:
        """`with_latest_rejection()` for rows already in memory: one query for all of
        them; rows that already carry theirs are left as they are."""
        missing = [a for a in appointments if not hasattr(a, "_latest_rejections")]
        if not missing:
            return
        latest: dict[int, AppointmentRejection] = {}
        for rejection in cls.objects.filter(any_of("appointment_id", [a.id for a in missing])).order_by(
                "appointment_id", "-created_at", "-id"):
            latest.setdefault(rejection.appointment_id, rejection)
        for appt in missing:
            appt.latest_rejection = latest.get(appt.id)


class AppointmentEvent(models.Model):
    """One transition of one appointment: the audit log, the realtime feed and the
    polling fallback at once. `therapist` is the therapist the event concerns (the
    one assigned after it, or the one it took the appointment away from), which is
    what scopes the feed for therapists."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        ASSIGNED = "assigned", "Assigned"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        REJECTION_ACCEPTED = "rejection_accepted", "Rejection accepted"
        REJECTION_DENIED = "rejection_denied", "Rejection denied"
        STARTED = "started", "Started"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        TIMED_OUT = "timed_out", "Timed out"
        NO_AVAILABLE_THERAPIST = "no_available_therapist", "No available therapist"
        REASSIGNED = "reassigned", "Reassigned"
        RESCHEDULED = "rescheduled", "Rescheduled"
        EDITED = "edited", "Edited"
        # Receipts of the current offer: no status change.
        DELIVERED = "delivered", "Delivered to the therapist"
        SEEN = "seen", "Seen by the therapist"
        HELD = "held", "Assign by hand (on/off)"

    # event_appointment and event_therapist below lead with these two keys.
    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="events", db_index=False)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Empty when the system acted (the deadline sweep).",
    )
    therapist = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
    )
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["appointment", "id"], name="event_appointment"),
            models.Index(fields=["therapist", "id"], name="event_therapist"),
        ]

    def __str__(self) -> str:
        return f"#{self.appointment_id} {self.kind} {self.from_status}->{self.to_status}"
