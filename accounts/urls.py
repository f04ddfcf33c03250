from django.urls import path

from . import api

urlpatterns = [
    path("token/", api.TokenView.as_view(), name="api-token"),
    path("me/", api.MeView.as_view(), name="api-me"),
    path("therapists/", api.TherapistListCreateView.as_view(), name="api-therapists"),
]
