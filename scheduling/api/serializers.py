"""Input validation (400 with field errors) and the documented output shapes.

Reads are built by `scheduling.payloads` (plain dicts, fast); the output
serializers here describe those shapes for the OpenAPI schema."""

import contextlib
import re
from datetime import date, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from accounts import formatting
from accounts.fields import StrictCharField, StrictIdField, StrictPrimaryKeyRelatedField, StrictRegexField
from accounts.models import User
from accounts.validators import no_control_characters

from .. import insights
from ..models import Appointment, AppointmentEvent, AppointmentRejection, Availability, Client, Service
from ..payloads import appointment_json


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an offset; a naive time is refused instead of guessed."""

    def to_internal_value(self, value):
        if isinstance(value, str):
            parsed = None
            with contextlib.suppress(ValueError):
                parsed = parse_datetime(value.strip())
            if parsed is None:
                self.fail("invalid", format="YYYY-MM-DDThh:mm[:ss]±hh:mm")
            if timezone.is_naive(parsed):
                raise serializers.ValidationError(
                    "Include the time zone offset, e.g. 2026-11-28T15:00:00+08:00.", code="naive_datetime")
            return parsed
        self.fail("invalid", format="YYYY-MM-DDThh:mm[:ss]±hh:mm")

    def to_representation(self, value):
        return timezone.localtime(value).isoformat() if value else None


def text(max_length: int, **kwargs) -> serializers.CharField:
    return StrictCharField(max_length=max_length, validators=[no_control_characters], **kwargs)


def _check_future(value, *, what: str) -> None:
    now = timezone.now()
    if value <= now:
        raise serializers.ValidationError(f"{what} must be in the future.", code="in_past")
    if value > now + timedelta(days=settings.BOOKING_HORIZON_DAYS):
        raise serializers.ValidationError(
            f"{what} must be within {settings.BOOKING_HORIZON_DAYS} days.", code="too_far_ahead")


therapists = User.objects.filter(role=User.Role.THERAPIST)


class ClientSerializer(serializers.ModelSerializer):
    name = text(200)
    phone = StrictRegexField(r"^\+?[0-9 ()\-]{5,32}$", max_length=32,
                                   error_messages={"invalid": "Enter a phone number: digits, spaces, +, - and ()."})
    address = text(500, required=False, allow_blank=True)
    notes = text(2000, required=False, allow_blank=True)

    class Meta:
        model = Client
        fields = ["id", "name", "phone", "email", "address", "notes", "created_at"]
        read_only_fields = ["created_at"]


class ServiceSerializer(serializers.ModelSerializer):
    # Declared explicitly, so the model's unique=True must be restated (else a duplicate is a 500).
    name = StrictCharField(max_length=120, validators=[
        no_control_characters,
        UniqueValidator(queryset=Service.objects.all(), message="A service with this name already exists."),
    ])
    duration_minutes = serializers.IntegerField(min_value=15, max_value=480)
    price = serializers.DecimalField(max_digits=9, decimal_places=2, min_value=0)
    therapists = StrictPrimaryKeyRelatedField(many=True, queryset=therapists, required=False)

    class Meta:
        model = Service
        fields = ["id", "name", "duration_minutes", "price", "is_active", "therapists"]


class AvailabilitySerializer(serializers.ModelSerializer):
    therapist = StrictPrimaryKeyRelatedField(queryset=therapists, required=False)
    therapist_name = serializers.CharField(source="therapist.display_name", read_only=True)
    starts_at = AwareDateTimeField()
    ends_at = AwareDateTimeField()

    class Meta:
        model = Availability
        fields = ["id", "therapist", "therapist_name", "starts_at", "ends_at"]

    def validate_ends_at(self, value):
        _check_future(value, what="Until")
        return value

    def validate(self, attrs):
        starts_at, ends_at = attrs["starts_at"], attrs["ends_at"]
        if ends_at <= starts_at:
            raise serializers.ValidationError({"ends_at": ["Until must be after From."]})
        if ends_at - starts_at > timedelta(hours=24):
            raise serializers.ValidationError({"ends_at": ["A slot can be at most 24 hours long."]})
        user = self.context["request"].user
        if user.is_operator and "therapist" not in attrs:
            raise serializers.ValidationError({"therapist": ["This field is required."]})
        if user.is_therapist:
            if attrs.get("therapist") not in (None, user):
                raise serializers.ValidationError({"therapist": ["You can only add your own availability."]})
            attrs["therapist"] = user
        return attrs


class AppointmentCreateSerializer(serializers.Serializer):
    client = StrictPrimaryKeyRelatedField(queryset=Client.objects.all())
    service = StrictPrimaryKeyRelatedField(queryset=Service.objects.filter(is_active=True))
    starts_at = AwareDateTimeField()
    ends_at = AwareDateTimeField(required=False, help_text="Optional; must equal starts_at + the service's duration.")
    location = text(500)
    notes = text(2000, required=False, allow_blank=True, default="")
    therapist = StrictPrimaryKeyRelatedField(queryset=therapists, required=False, allow_null=True)

    def validate_starts_at(self, value):
        _check_future(value, what="The start")
        return value

    def validate(self, attrs):
        expected_end = attrs["starts_at"] + timedelta(minutes=attrs["service"].duration_minutes)
        ends_at = attrs.pop("ends_at", None)
        if ends_at is not None and ends_at <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": ["The end must be after the start."]})
        if ends_at is not None and ends_at != expected_end:
            raise serializers.ValidationError({"ends_at": [
                f"The end must be {attrs['service'].duration_minutes} minutes after the start "
                f"({formatting.when(expected_end)}), the length of {attrs['service'].name}."]})
        return attrs


class AssignSerializer(serializers.Serializer):
    # `assign` reads and locks the therapist's row itself.
    therapist = StrictIdField(help_text="The therapist's id.")


class ReassignSerializer(serializers.Serializer):
    therapist = StrictPrimaryKeyRelatedField(
        queryset=therapists, allow_null=True,
        help_text="The therapist to offer it to (a fresh offer), or null for the queue.")
    reason = text(500, help_text="Why it is moved; the previous therapist is told.")


class RescheduleSerializer(serializers.Serializer):
    starts_at = AwareDateTimeField(help_text="The new start; the end follows from the service's duration.")
    reason = text(500, required=False, allow_blank=True, default="")

    def validate_starts_at(self, value):
        _check_future(value, what="The start")
        return value


class AppointmentEditSerializer(serializers.Serializer):
    location = text(500, required=False)
    notes = text(2000, required=False, allow_blank=True)

    def validate(self, attrs):
        # Status, time and therapist change through their transitions, never here.
        others = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        if others:
            raise serializers.ValidationError(
                {name: ["Only the location and the notes can be changed here."] for name in others})
        if not attrs:
            raise serializers.ValidationError("Send the location, the notes or both.", code="empty")
        return attrs


class DayQuerySerializer(serializers.Serializer):
    date = serializers.DateField(required=False, help_text="Business date, YYYY-MM-DD; default today.")


class RejectSerializer(serializers.Serializer):
    rejection_reason = text(500, trim_whitespace=True)
    reason_code = serializers.ChoiceField(choices=AppointmentRejection.ReasonCode.choices, required=False,
                                          default=AppointmentRejection.ReasonCode.OTHER,
                                          help_text="What kind of reason, for the Insights tab; default other.")


class ReviewSerializer(serializers.Serializer):
    review_decision = serializers.ChoiceField(choices=AppointmentRejection.Decision.choices)
    review_note = text(500, required=False, allow_blank=True, default="")


class CancelSerializer(serializers.Serializer):
    reason = text(500)


class ReceiptSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["delivered", "seen"])
    offer = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1,
                                     help_text="The offer number the device got; an older one than the current is 409.")


class JsonBooleanField(serializers.BooleanField):
    """true or false as JSON gives them: "yes" or 1 is a client bug, not a yes."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class HoldSerializer(serializers.Serializer):
    hold = JsonBooleanField(required=False, default=True,
                            help_text="true (the default): assign by hand, no automatic offers; false: back to "
                                      "the automatic chain.")


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if isinstance(data, str) and data.lower() in _TRUE | _FALSE:
            return data.lower() in _TRUE
        self.fail("invalid", input=data)


class AppointmentFilterSerializer(serializers.Serializer):
    status = serializers.CharField(required=False, help_text="One status or several, comma-separated.")
    therapist = serializers.IntegerField(required=False, min_value=1)
    date = serializers.DateField(required=False, help_text="Local date, YYYY-MM-DD.")
    needs_review = StrictBooleanField(required=False, allow_null=True, default=None)
    overdue = StrictBooleanField(required=False, allow_null=True, default=None)
    held_by_disabled = StrictBooleanField(
        required=False, allow_null=True, default=None,
        help_text="true: only the open jobs (pending or confirmed, start ahead, not overdue) of disabled therapists.")
    q = serializers.CharField(required=False, allow_blank=True, max_length=100, default="",
                              help_text="Search client name, phone or location.")
    ordering = serializers.ChoiceField(required=False, default="starts_at",
                                       choices=["starts_at", "-starts_at", "updated_at", "-updated_at"])

    def validate_status(self, value):
        statuses = [s.strip() for s in value.split(",") if s.strip()]
        unknown = sorted(set(statuses) - set(Appointment.Status.values))
        if unknown:
            raise serializers.ValidationError(f"Unknown status: {', '.join(unknown)}.")
        return statuses


class EventsQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(required=False, default=0, min_value=0)


# --- Output shapes (documentation; the data comes from scheduling.payloads) ------


class PersonRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField(required=False, help_text="For a call (on an appointment; a therapist only ever "
                                  "sees their own).")


class ClientRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField()
    address = serializers.CharField()


class ServiceRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    duration_minutes = serializers.IntegerField()


class RejectionOutSerializer(serializers.Serializer):
    reason = serializers.CharField()
    reason_code = serializers.ChoiceField(choices=AppointmentRejection.ReasonCode.choices)
    therapist = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    review_decision = serializers.ChoiceField(choices=AppointmentRejection.Decision.choices, allow_null=True)
    review_note = serializers.CharField()
    reviewed_at = serializers.DateTimeField(allow_null=True)


class OfferSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="1 for the first offer, +1 for each later one.")
    sent_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True, help_text="When it reached the therapist's device.")
    seen_at = serializers.DateTimeField(allow_null=True, help_text="When it was on screen in a visible tab.")
    reminded_at = serializers.DateTimeField(allow_null=True, help_text="When the reminder email went out.")
    escalated_at = serializers.DateTimeField(allow_null=True, help_text="When the operators were told it is unseen.")


class AppointmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Appointment.Status.choices)
    client = ClientRefSerializer()
    service = ServiceRefSerializer()
    therapist = PersonRefSerializer(allow_null=True)
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    location = serializers.CharField()
    notes = serializers.CharField()
    assigned_at = serializers.DateTimeField(allow_null=True)
    response_deadline = serializers.DateTimeField(allow_null=True)
    seconds_to_deadline = serializers.IntegerField(
        allow_null=True, help_text="Negative once overdue; null unless waiting for an answer.")
    cancellation_reason = serializers.ChoiceField(choices=Appointment.CancellationReason.choices, allow_null=True)
    cancellation_note = serializers.CharField()
    latest_rejection = RejectionOutSerializer(allow_null=True)
    offer = OfferSerializer(allow_null=True, help_text="The current offer to the therapist; null while unassigned.")
    auto_offers = serializers.IntegerField(help_text="Automatic offers made so far (AUTO_REOFFER).")
    held = serializers.BooleanField(help_text="Assign by hand: automatic re-offers skip it.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance):
        return appointment_json(instance, now=self.context.get("now"))


class EventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    therapist = serializers.SerializerMethodField(
        help_text="The therapist the event concerns (the one offered it, or the one it was taken from).")

    class Meta:
        model = AppointmentEvent
        fields = ["id", "kind", "created_at", "from_status", "to_status", "actor", "therapist", "data"]

    def get_actor(self, event) -> str | None:
        return event.actor.display_name if event.actor else None

    @extend_schema_field(PersonRefSerializer(allow_null=True))
    def get_therapist(self, event):
        return {"id": event.therapist.id, "name": event.therapist.display_name} if event.therapist else None


class AppointmentDetailSerializer(AppointmentSerializer):
    history = EventSerializer(many=True)


class FeedItemSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The event id; pass the last one seen as ?after=.")
    kind = serializers.ChoiceField(choices=AppointmentEvent.Kind.choices)
    created_at = serializers.DateTimeField()
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    appointment = AppointmentSerializer(help_text="The appointment as it is now.")


class FeedSerializer(serializers.Serializer):
    results = FeedItemSerializer(many=True)
    next = serializers.URLField(allow_null=True)


class RankedTherapistSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="therapist.id")
    name = serializers.CharField(source="therapist.display_name")
    phone = serializers.CharField(source="therapist.phone")
    appointments_that_day = serializers.IntegerField()
    last_appointment_end = AwareDateTimeField(allow_null=True)


class SweepCountsSerializer(serializers.Serializer):
    timed_out = serializers.IntegerField()
    therapists_disabled = serializers.IntegerField()
    no_available_therapist = serializers.IntegerField()
    reminded = serializers.IntegerField(help_text="Unseen offers whose therapist was emailed a reminder.")
    escalated = serializers.IntegerField(help_text="Unseen offers the operators were told about.")


class EnableSerializer(serializers.Serializer):
    note = text(500, required=False, allow_blank=True, default="")


# --- Insights ---------------------------------------------------------------------

INSIGHTS_EARLIEST = date(2000, 1, 1)
INSIGHTS_LATEST = date(2999, 12, 31)


class BusinessDateField(serializers.DateField):
    """A business date written exactly YYYY-MM-DD (no week dates, no compact form)."""

    default_error_messages = {
        "invalid": "Enter a date as YYYY-MM-DD.",
        "out_of_range": "Enter a date between 2000-01-01 and 2999-12-31.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", data.strip()):
            self.fail("invalid")
        try:
            value = date.fromisoformat(data.strip())
        except ValueError:
            self.fail("invalid")
        if not INSIGHTS_EARLIEST <= value <= INSIGHTS_LATEST:
            self.fail("out_of_range")
        return value

    def to_representation(self, value):
        return value.isoformat()


class InsightsQuerySerializer(serializers.Serializer):
    """?from=YYYY-MM-DD&to=YYYY-MM-DD, both inclusive business dates; by default the
    last 30 days, today included. (`from` is a Python keyword, hence get_fields().)"""

    to = BusinessDateField(required=False, help_text="Last business date, inclusive (default today).")
    format = serializers.ChoiceField(choices=["json", "csv"], required=False,
                                     help_text="csv: the per-therapist table as text/csv.")

    def get_fields(self):
        return {"from": BusinessDateField(required=False, help_text="First business date, inclusive (default 29 "
                                          "days before `to`; given alone, the range runs to today)."),
                **super().get_fields()}

    def validate(self, attrs):
        # Alone, `from` runs to today (or is a single day when it is ahead), and
        # `to` looks back 30 days.
        last = attrs.get("to") or max(attrs.get("from", date.min), insights.business_today())
        first = attrs.get("from") or last - timedelta(days=insights.DEFAULT_DAYS - 1)
        if last < first:
            raise serializers.ValidationError({"to": ["The range ends before it starts: `to` must be on or "
                                                      "after `from`."]}, code="range_reversed")
        if (last - first).days + 1 > insights.MAX_DAYS:
            raise serializers.ValidationError({"to": [f"The range can be at most {insights.MAX_DAYS} days long."]},
                                              code="range_too_long")
        return {"from": first, "to": last}


class InsightsRangeSerializer(serializers.Serializer):
    def get_fields(self):
        return {"from": serializers.DateField(), "to": serializers.DateField()}


class OfferFiguresSerializer(serializers.Serializer):
    offers = serializers.IntegerField(help_text="Offers made in the range (assigned, reassigned to a therapist, "
                                      "rescheduled keeping the therapist).")
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField(help_text="Offers whose final answer was a rejection (a denied rejection "
                                        "continues the offer).")
    timed_out = serializers.IntegerField()
    acceptance_rate = serializers.FloatField(allow_null=True, help_text="accepted / offers, 0-1; null without offers.")
    median_response_seconds = serializers.FloatField(
        allow_null=True, help_text="From the offer to its accept or reject; null without one.")


class TherapistFiguresSerializer(OfferFiguresSerializer):
    def get_fields(self):
        return {"id": serializers.IntegerField(), "name": serializers.CharField(), **super().get_fields()}


class InsightsTotalsSerializer(serializers.Serializer):
    appointments = serializers.IntegerField(help_text="Appointments starting in the range (by business date).")
    completed = serializers.IntegerField()
    cancelled = serializers.DictField(child=serializers.IntegerField(),
                                      help_text="Cancelled appointments by cancellation reason.")
    offers = serializers.IntegerField()
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    timed_out = serializers.IntegerField()
    median_response_seconds = serializers.FloatField(allow_null=True)


class RejectionReasonCountSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=AppointmentRejection.ReasonCode.choices)
    count = serializers.IntegerField()


class InsightsDaySerializer(serializers.Serializer):
    date = serializers.DateField()
    appointments = serializers.IntegerField()
    completed = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class InsightsSerializer(InsightsRangeSerializer):
    def get_fields(self):
        return {**super().get_fields(), "totals": InsightsTotalsSerializer(),
                "therapists": TherapistFiguresSerializer(many=True),
                "rejection_reasons": RejectionReasonCountSerializer(many=True),
                "days": InsightsDaySerializer(many=True)}


class MyInsightsSerializer(InsightsRangeSerializer):
    def get_fields(self):
        return {**super().get_fields(), **OfferFiguresSerializer().get_fields()}
class SlotOutSerializer(serializers.Serializer):
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()


class DayTherapistSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField()
    is_active = serializers.BooleanField()
    availability = SlotOutSerializer(many=True, help_text="Their availability slots that touch the day.")
    appointments = AppointmentSerializer(many=True, help_text="Their appointments that day (not cancelled).")


class DayBoardSerializer(serializers.Serializer):
    date = serializers.DateField()
    therapists = DayTherapistSerializer(many=True, help_text="Every therapist, active ones first, by name.")
    unassigned = AppointmentSerializer(many=True, help_text="Pending bookings with nobody assigned that day.")
