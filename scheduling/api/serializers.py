"""Input validation (400 with field errors) and the documented output shapes.

Reads are built by `scheduling.payloads` (plain dicts, fast); the output
serializers here describe those shapes for the OpenAPI schema."""

import contextlib
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from accounts.fields import StrictCharField, StrictPrimaryKeyRelatedField, StrictRegexField
from accounts.models import User
from accounts.validators import no_control_characters

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
        _check_future(value, what="The end")
        return value

    def validate(self, attrs):
        starts_at, ends_at = attrs["starts_at"], attrs["ends_at"]
        if ends_at <= starts_at:
            raise serializers.ValidationError({"ends_at": ["Must be after starts_at."]})
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
            raise serializers.ValidationError({"ends_at": ["Must be after starts_at."]})
        if ends_at is not None and ends_at != expected_end:
            raise serializers.ValidationError({"ends_at": [
                f"Must be starts_at + {attrs['service'].duration_minutes} minutes ({expected_end.isoformat()})."]})
        return attrs


class AssignSerializer(serializers.Serializer):
    therapist = StrictPrimaryKeyRelatedField(queryset=therapists)


class RejectSerializer(serializers.Serializer):
    rejection_reason = text(500, trim_whitespace=True)


class ReviewSerializer(serializers.Serializer):
    review_decision = serializers.ChoiceField(choices=AppointmentRejection.Decision.choices)
    review_note = text(500, required=False, allow_blank=True, default="")


class CancelSerializer(serializers.Serializer):
    reason = text(500)


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


class ClientRefSerializer(PersonRefSerializer):
    phone = serializers.CharField()
    address = serializers.CharField()


class ServiceRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    duration_minutes = serializers.IntegerField()


class RejectionOutSerializer(serializers.Serializer):
    reason = serializers.CharField()
    therapist = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    review_decision = serializers.ChoiceField(choices=AppointmentRejection.Decision.choices, allow_null=True)
    review_note = serializers.CharField()
    reviewed_at = serializers.DateTimeField(allow_null=True)


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


class EnableSerializer(serializers.Serializer):
    note = text(500, required=False, allow_blank=True, default="")
