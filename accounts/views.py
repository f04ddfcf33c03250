from functools import wraps

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.contrib.staticfiles import finders
from django.http import FileResponse, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET
from django.views.defaults import page_not_found

from .forms import LoginForm
from .models import User


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@login_required
def landing(request):
    if request.user.role == User.Role.OPERATOR and request.user.is_active:
        return redirect("operator-dashboard")
    if request.user.role == User.Role.THERAPIST:
        return redirect("therapist-dashboard")
    return forbidden(request)


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True


def people_sign_in_first(view):
    """For a page people open in a browser (the API docs): signed out, it sends them
    to the login page like the dashboards do. A script's token (the Authorization
    header) goes on to the view, which checks it."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.is_authenticated or "HTTP_AUTHORIZATION" in request.META:
            return view(request, *args, **kwargs)
        return redirect_to_login(request.get_full_path())

    return wrapper


def forbidden(request, exception=None):
    return render(request, "403.html", status=403)


def not_found(request, exception=None):
    """No route matched: JSON under /api/ (every API error is JSON), the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return page_not_found(request, exception)


@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request):
    path = finders.find("favicon.svg")
    if not path:
        return HttpResponse(status=404)
    return FileResponse(open(path, "rb"), content_type="image/svg+xml")
