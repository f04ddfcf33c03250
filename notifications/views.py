"""The installable therapist app: the service worker and the web manifest, served
at the root so the worker's scope is the whole site (no Service-Worker-Allowed
header needed). Both are public, like the static files."""

from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, JsonResponse
from django.templatetags.static import static
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

THEME = "#6b3fa0"


@require_GET
@cache_control(no_cache=True)
def service_worker(request):
    # no-cache: a new worker reaches the phones at their next visit.
    path = finders.find("js/sw.js")
    if not path:
        raise Http404
    return FileResponse(open(path, "rb"), content_type="text/javascript; charset=utf-8")


@require_GET
@cache_control(max_age=3600, public=True)
def web_manifest(request):
    return JsonResponse({
        "id": "/",
        "name": "Royal Care Scheduling",
        "short_name": "Royal Care",
        "description": "Appointments to answer, today's sessions and your availability.",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": THEME,
        "icons": [
            {"src": static("icons/icon-192.png"), "sizes": "192x192", "type": "image/png", "purpose": "any"},
            {"src": static("icons/icon-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "any"},
            {"src": static("icons/icon-maskable-512.png"), "sizes": "512x512", "type": "image/png",
             "purpose": "maskable"},
        ],
    }, content_type="application/manifest+json")
