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
    path("insights/", views.InsightsView.as_view(), name="api-insights"),
    path("insights/mine/", views.MyInsightsView.as_view(), name="api-insights-mine"),
    path("day/", views.DayBoardView.as_view(), name="api-day"),
    *router.urls,
]
