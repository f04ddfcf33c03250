"""Server-rendered dashboards (data reaches the page's JS through json_script)."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.views import forbidden


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


@role_required("operator")
def operator_dashboard(request):
    if not request.user.is_active:
        return forbidden(request)
    return render(request, "scheduling/operator.html", {"tab": request.GET.get("tab", "reviews")})


@role_required("therapist")
def therapist_dashboard(request):
    return render(request, "scheduling/therapist.html", {})
