"""Thin API views: parse input, call a selector or the workflow, serialize."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import therapist_json
from accounts.permissions import IsOperator, IsStaffMember, IsTherapist, ReadAnyWriteOperator

from .. import availability, insights, selectors, workflow
from ..models import Appointment, Availability, Client, Service
from ..payloads import appointment_json, appointment_json_for
from . import serializers as s
from .renderers import CSVRenderer

EVENTS_PAGE = 200


class ClientViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, mixins.RetrieveModelMixin,
                    viewsets.GenericViewSet):
    permission_classes = [IsOperator]
    serializer_class = s.ClientSerializer

    def get_queryset(self):
        qs = Client.objects.all()
        search = self.request.query_params.get("q", "").strip()
        if "\x00" in search:
            raise ValidationError({"q": ["Null characters are not allowed."]})
        return qs.filter(name__icontains=search) if search else qs


class ServiceViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, mixins.RetrieveModelMixin,
                     viewsets.GenericViewSet):
    permission_classes = [ReadAnyWriteOperator]
    serializer_class = s.ServiceSerializer
    queryset = Service.objects.prefetch_related("therapists")


class AvailabilityViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Therapists see and add their own slots; operators everyone's."""

    serializer_class = s.AvailabilitySerializer
    # For the schema only (typed path ids); the rows come from get_queryset().
    queryset = Availability.objects.none()

    def get_queryset(self):
        qs = selectors.availability_for_user(self.request.user)
        if self.request.query_params.get("upcoming", "true") != "false":
            qs = qs.filter(ends_at__gt=timezone.now())
        return qs

    def perform_create(self, serializer):
        serializer.instance = workflow.add_availability(actor=self.request.user, **serializer.validated_data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        workflow.delete_availability(actor=request.user, availability_id=_int(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _int(value) -> int:
    """A path id, or 0 (which matches nothing) when it is not a usable id."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return number if 0 < number < 2**63 else 0


class AppointmentViewSet(viewsets.GenericViewSet):
    serializer_class = s.AppointmentSerializer
    # For the schema only (typed path ids); the rows come from get_queryset().
    queryset = Appointment.objects.none()

    def get_permissions(self):
        if self.action in ("create", "assign", "review_rejection", "cancel", "available_therapists",
                           "auto_cancel_overdue", "reassign", "reschedule", "partial_update", "hold"):
            return [IsOperator()]
        if self.action in ("accept", "reject", "receipt"):
            return [IsTherapist()]
        return [IsStaffMember()]

    def get_queryset(self):
        return selectors.appointments_for_user(self.request.user)

    def _respond(self, appointment, code=status.HTTP_200_OK):
        # The workflow returns the appointment as it committed it, with its relations.
        user = self.request.user
        return Response(appointment_json_for(appointment, user.is_operator, user.id), status=code)

    @extend_schema(parameters=[s.AppointmentFilterSerializer], responses=s.AppointmentSerializer(many=True))
    def list(self, request):
        params = s.AppointmentFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        f = params.validated_data
        qs = selectors.filter_appointments(
            self.get_queryset(), statuses=f.get("status"), therapist_id=f.get("therapist"), day=f.get("date"),
            needs_review=f["needs_review"], overdue=f["overdue"], search=f["q"].strip(),
            held_by_disabled=bool(f["held_by_disabled"]),
        ).order_by(f["ordering"], "id")
        page = self.paginate_queryset(qs)
        now = timezone.now()
        return self.get_paginated_response([appointment_json(a, now=now) for a in page])

    @extend_schema(request=s.AppointmentCreateSerializer, responses={201: s.AppointmentSerializer})
    def create(self, request):
        data = _valid(s.AppointmentCreateSerializer, request)
        therapist = data.pop("therapist", None)
        appointment = workflow.create_appointment(actor=request.user, therapist_id=therapist and therapist.id, **data)
        return self._respond(appointment, status.HTTP_201_CREATED)

    @extend_schema(responses=s.AppointmentDetailSerializer)
    def retrieve(self, request, pk=None):
        appointment = selectors.appointment_for_user(request.user, pk)
        body = appointment_json(appointment)
        body["history"] = s.EventSerializer(selectors.appointment_history(appointment, request.user), many=True).data
        return Response(body)

    @extend_schema(
        request=None, responses=s.RankedTherapistSerializer(many=True),
        description="Best first. Unassigned: who `assign` would accept now. Assigned (pending or confirmed, "
                    "start ahead): who `reassign` would hand it to, the current therapist excluded.")
    @action(detail=True, methods=["get"], pagination_class=None)
    def available_therapists(self, request, pk=None):
        appointment = selectors.appointment_for_user(request.user, pk)
        ranked = availability.candidates(appointment)
        return Response(s.RankedTherapistSerializer(ranked, many=True).data)

    @extend_schema(request=s.AppointmentEditSerializer, responses=s.AppointmentSerializer,
                   description="Operators change the location and/or the notes. A new location that clashes with "
                               "the therapist's travel buffer is 409 therapist_unavailable.")
    def partial_update(self, request, pk=None):
        data = _valid(s.AppointmentEditSerializer, request)
        return self._respond(workflow.edit(actor=request.user, appointment_id=_int(pk), **data))

    @extend_schema(request=s.ReassignSerializer, responses=s.AppointmentSerializer)
    @action(detail=True, methods=["post"])
    def reassign(self, request, pk=None):
        data = _valid(s.ReassignSerializer, request)
        therapist = data["therapist"]
        return self._respond(workflow.reassign(actor=request.user, appointment_id=_int(pk),
                                               therapist_id=therapist and therapist.id, reason=data["reason"]))

    @extend_schema(request=s.RescheduleSerializer, responses=s.AppointmentSerializer)
    @action(detail=True, methods=["post"])
    def reschedule(self, request, pk=None):
        data = _valid(s.RescheduleSerializer, request)
        return self._respond(workflow.reschedule(actor=request.user, appointment_id=_int(pk), **data))

    @extend_schema(request=s.AssignSerializer, responses=s.AppointmentSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        data = _valid(s.AssignSerializer, request)
        return self._respond(workflow.assign(actor=request.user, appointment_id=_int(pk),
                                             therapist_id=data["therapist"]))

    @extend_schema(request=None, responses=s.AppointmentSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        return self._respond(workflow.accept(actor=request.user, appointment_id=_int(pk)))

    @extend_schema(request=s.RejectSerializer, responses=s.AppointmentSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        data = _valid(s.RejectSerializer, request)
        return self._respond(workflow.reject(actor=request.user, appointment_id=_int(pk),
                                             reason=data["rejection_reason"], reason_code=data["reason_code"]))

    @extend_schema(request=s.ReviewSerializer, responses=s.AppointmentSerializer)
    @action(detail=True, methods=["post"])
    def review_rejection(self, request, pk=None):
        data = _valid(s.ReviewSerializer, request)
        return self._respond(workflow.review_rejection(
            actor=request.user, appointment_id=_int(pk),
            decision=data["review_decision"], note=data["review_note"]))

    @extend_schema(request=None, responses=s.AppointmentSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._respond(workflow.start(actor=request.user, appointment_id=_int(pk)))

    @extend_schema(request=None, responses=s.AppointmentSerializer)
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        return self._respond(workflow.complete(actor=request.user, appointment_id=_int(pk)))

    @extend_schema(request=s.CancelSerializer, responses=s.AppointmentSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        data = _valid(s.CancelSerializer, request)
        return self._respond(workflow.cancel(actor=request.user, appointment_id=_int(pk),
                                             reason=data["reason"]))

    @extend_schema(request=s.ReceiptSerializer, responses=s.AppointmentSerializer)
    @action(detail=True, methods=["post"])
    def receipt(self, request, pk=None):
        data = _valid(s.ReceiptSerializer, request)
        return self._respond(workflow.receipt(actor=request.user, appointment_id=_int(pk), **data))

    @extend_schema(request=s.HoldSerializer, responses=s.AppointmentSerializer,
                   description="Assign by hand: with {\"hold\": true} (the default) automatic re-offers skip this "
                               "appointment and it waits for an operator when it loses its therapist; "
                               "{\"hold\": false} puts it back in the automatic chain. Repeating a setting "
                               "changes nothing. 409 once the appointment is in progress or final.")
    @action(detail=True, methods=["post"])
    def hold(self, request, pk=None):
        data = _valid(s.HoldSerializer, request)
        return self._respond(workflow.hold(actor=request.user, appointment_id=_int(pk), on=data["hold"]))

    @extend_schema(request=None, responses=s.SweepCountsSerializer)
    @action(detail=False, methods=["post"])
    def auto_cancel_overdue(self, request):
        return Response(workflow.sweep().as_dict())


def _valid(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data, context={"request": request})
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class EventFeedView(APIView):
    """The caller's visible events after `after`, oldest first: the reconnect
    catch-up and the polling fallback of the dashboards."""

    permission_classes = [IsStaffMember]

    @extend_schema(parameters=[OpenApiParameter("after", int, description="The last event id seen.")],
                   responses=s.FeedSerializer)
    def get(self, request):
        params = s.EventsQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        user = request.user
        events = selectors.events_for_user(user, after=params.validated_data["after"], limit=EVENTS_PAGE)
        now = timezone.now()
        results = [{
            "id": e.id, "kind": e.kind, "created_at": timezone.localtime(e.created_at).isoformat(),
            "from_status": e.from_status, "to_status": e.to_status,
            "appointment": appointment_json_for(e.current, user.is_operator, user.id, now=now),
        } for e in events]
        next_url = None
        if len(events) == EVENTS_PAGE:
            next_url = request.build_absolute_uri(f"{request.path}?after={events[-1].id}")
        return Response({"results": results, "next": next_url})


class DayBoardView(APIView):
    """The operators' day board: every therapist's availability and appointments on
    one business date, and the unassigned bookings (a fixed number of queries)."""

    permission_classes = [IsOperator]

    @extend_schema(parameters=[s.DayQuerySerializer], responses=s.DayBoardSerializer)
    def get(self, request):
        params = s.DayQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        day = params.validated_data.get("date") or timezone.localdate()
        return Response(selectors.day_board(day))


class EnableTherapistView(APIView):
    """Routed at /api/accounts/therapists/{id}/enable/ by guitara/urls.py."""

    permission_classes = [IsOperator]

    @extend_schema(request=s.EnableSerializer, responses={200: None})
    def post(self, request, pk: int):
        data = _valid(s.EnableSerializer, request)
        therapist = workflow.enable_therapist(actor=request.user, therapist_id=pk, note=data["note"])
        return Response(therapist_json(therapist))



class InsightsView(APIView):
    """The operators' figures over a range of business dates (DESIGN.md, Insights);
    `?format=csv` (or `Accept: text/csv`) gives the per-therapist table as a file."""

    permission_classes = [IsOperator]
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        parameters=[s.InsightsQuerySerializer],
        responses={
            (200, "application/json"): s.InsightsSerializer,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="With format=csv: a header row (" + ",".join(insights.CSV_COLUMNS)
                + ") and one row per therapist; sent as an attachment."),
        },
    )
    def get(self, request):
        params = s.InsightsQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        first, last = params.validated_data["from"], params.validated_data["to"]
        report = insights.insights(first, last)
        if request.accepted_renderer.format == CSVRenderer.format:
            filename = f"insights-{first.isoformat()}-to-{last.isoformat()}.csv"
            return Response(insights.csv_rows(report),
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})
        return Response(report)

    def get_authenticate_header(self, request):
        # No login answers 401 naming the token scheme, not DRF's 403.
        return "Token"

    def handle_exception(self, exc):
        # Errors are JSON ({"detail", "code"}) even when the table was asked for as CSV.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)


class MyInsightsView(APIView):
    """A therapist's own figures for this month so far; nobody else's, and no
    parameter to ask for anybody else's."""

    permission_classes = [IsTherapist]

    @extend_schema(responses=s.MyInsightsSerializer)
    def get(self, request):
        first, last = insights.month_to_date()
        return Response(insights.therapist_insights(request.user, first, last))

    def get_authenticate_header(self, request):
        return "Token"
