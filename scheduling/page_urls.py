from django.urls import path

from . import pages

urlpatterns = [
    path("operator/", pages.operator_dashboard, name="operator-dashboard"),
    path("therapist/", pages.therapist_dashboard, name="therapist-dashboard"),
]
