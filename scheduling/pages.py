"""Server-rendered dashboards.

Each page is a shell: its lists load from the REST API in the page's ES module,
so a page costs the same few queries however many appointments exist. What the
module needs to start (who is looking, the business time zone, the newest event
id visible at render time, the CSRF token) reaches it through `json_script`.
"""

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.utils import timezone

from accounts.models import User
from accounts.views import forbidden
from notifications.delivery import UNREAD_CAP, unread_badge, unread_count

from . import selectors

OPERATOR_TABS = ("reviews", "timeouts", "all", "day", "insights", "notifications")
# A disabled therapist's page lists their latest appointments, read-only.
DISABLED_RECENT = 10


def role_required(role: str):
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if request.user.role != role:
                return forbidden(request)
            return view(request, *args, **kwargs)
        return wrapper
    return decorator


def page_data(request, **extra) -> dict:
    user = request.user
    now = timezone.localtime()
    unread = unread_count(user.id)
    return {
        "user": {"id": user.id, "name": user.display_name, "role": user.role, "is_active": user.is_active},
        "time_zone": settings.TIME_ZONE,
        # The offset of the business zone right now; the page works out the offset
        # of other instants with Intl and falls back to this one.
        "utc_offset": now.isoformat()[-6:],
        "last_event_id": selectors.last_visible_event_id(user),
        "unread": unread,
        "unread_badge": unread_badge(unread),
        "unread_cap": UNREAD_CAP,
        "csrf_token": get_token(request),
        "start_early_minutes": settings.START_EARLY_MINUTES,
        # The day board hatches it, the therapist's week warns under it.
        "travel_buffer_minutes": getattr(settings, "TRAVEL_BUFFER_MINUTES", 30),
        **extra,
    }


def rules_in_force() -> dict:
    """The settings the workflow runs on, for the operators' "Rules" panel. The
    reminder settings may be absent (no reminders configured): their documented
    defaults are shown; None means off."""
    return {
        "response_minutes": settings.RESPONSE_DEADLINE_MINUTES,
        "travel_buffer_minutes": settings.TRAVEL_BUFFER_MINUTES,
        "auto_reoffer": settings.AUTO_REOFFER,
        "reoffer_max": settings.REOFFER_MAX,
        "remind_after_minutes": getattr(settings, "REMIND_AFTER_MINUTES", 10),
        "escalate_after_minutes": getattr(settings, "ESCALATE_AFTER_MINUTES", 20),
    }


@role_required(User.Role.OPERATOR)
def operator_dashboard(request):
    if not request.user.is_active:
        return forbidden(request)
    tab = request.GET.get("tab")
    tab = tab if tab in OPERATOR_TABS else "reviews"
    counts = selectors.dashboard_counts()
    rules = rules_in_force()
    data = page_data(request, tab=tab, counts=counts, rules=rules)
    return render(request, "scheduling/operator.html", {"tab": tab, "counts": counts, "page_data": data,
                                                        "rules": rules})


@role_required(User.Role.THERAPIST)
def therapist_dashboard(request):
    user = request.user
    if not user.is_active:
        # Sessions of disabled therapists stay valid so this page can say why;
        # it opens no socket and calls no API (both refuse a disabled account).
        recent = selectors.appointments_for_user(user).order_by("-updated_at", "-id")[:DISABLED_RECENT]
        return render(request, "scheduling/therapist_disabled.html", {"recent": recent})
    return render(request, "scheduling/therapist.html", {"page_data": page_data(request)})
