from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("clients", views.ClientViewSet, basename="client")
router.register("services", views.ServiceViewSet, basename="service")
router.register("availability", views.AvailabilityViewSet, basename="availability")
router.register("appointments", views.AppointmentViewSet, basename="appointment")

urlpatterns = [
    path("events/", views.EventFeedView.as_view(), name="api-events"),
    path("day/", views.DayBoardView.as_view(), name="api-day"),
    *router.urls,
]
