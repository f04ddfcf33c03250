from django.urls import path

from . import api

urlpatterns = [
    path("token/", api.TokenView.as_view(), name="api-token"),
    path("me/", api.MeView.as_view(), name="api-me"),
    path("me/calendar/rotate/", api.CalendarRotateView.as_view(), name="api-me-calendar-rotate"),
    path("therapists/", api.TherapistListCreateView.as_view(), name="api-therapists"),
]
