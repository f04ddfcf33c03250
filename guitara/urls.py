from django.contrib import admin
from django.urls import include, path
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import views as account_views
from notifications import views as notification_views
from scheduling.api.views import EnableTherapistView
from scheduling.feeds import calendar_feed


class OpenApiPlainJsonRenderer(OpenApiJsonRenderer):
    """The schema as `application/json`, which is what most OpenAPI tools ask for."""

    media_type = "application/json"


urlpatterns = [
    path("healthz", account_views.healthz, name="healthz"),
    path("", account_views.landing, name="landing"),
    path("accounts/", include("accounts.page_urls")),
    path("", include("scheduling.page_urls")),
    path("admin/", admin.site.urls),
    path("api/accounts/therapists/<int:pk>/enable/", EnableTherapistView.as_view(), name="api-therapist-enable"),
    path("api/accounts/", include("accounts.urls")),
    path("api/scheduling/", include("scheduling.api.urls")),
    path("api/notifications/", include("notifications.urls")),
    # JSON first, so that its 401/403 are JSON like every other API error.
    path("api/schema/", SpectacularAPIView.as_view(
        renderer_classes=[OpenApiJsonRenderer, OpenApiPlainJsonRenderer, OpenApiYamlRenderer]),
         name="api-schema"),
    # A page for people: signed out, it sends them to the login page like the dashboards.
    path("api/docs/", account_views.people_sign_in_first(SpectacularSwaggerView.as_view(url_name="api-schema")),
         name="api-docs"),
    path("favicon.ico", account_views.favicon, name="favicon"),
    # The installable therapist app, at the root so the service worker's scope is the whole site.
    path("sw.js", notification_views.service_worker, name="service-worker"),
    path("manifest.webmanifest", notification_views.web_manifest, name="web-manifest"),
    # A therapist's calendar feed: no login, the address carries its own secret.
    path("calendar/<str:secret>.ics", calendar_feed, name="calendar-feed"),
]

handler403 = "accounts.views.forbidden"
handler404 = "accounts.views.not_found"
