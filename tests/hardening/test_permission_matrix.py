"""Every route of the URLconf x every role, from ONE table.

`TABLE` maps (route, method) to the status each role gets. A route is its URL
name ("namespace:name") or, when unnamed, its full pattern. The admin's
per-model routes come from the ModelAdmins registered at run time, so their rows
are wildcards ("admin:*_changelist") whose admin status is what that ModelAdmin
allows. The test walks `get_resolver()` recursively: a route without a row — a
new endpoint nobody has thought about — fails, and so does a row whose route
has gone, and a method a DRF view implements without a row.

Each request runs in a savepoint that is rolled back, so every role meets the
same world (therapist A's pending appointment is still pending for the operator).
API routes are checked twice: with the session cookie (the dashboards) and with
the token header (scripts).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib import admin
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from tests.servers import session_cookie_for

from .conftest import PASSWORD, ROLES, World, build_world

DENY = frozenset({401, 403})  # what an anonymous (or disabled) API caller may get
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


@dataclass(frozen=True)
class Expect:
    status: int | frozenset[int]
    location: str | None = None  # a redirect's target must start with this
    contains: str | None = None  # the body must contain this

    def matches(self, status: int) -> bool:
        return status in self.status if isinstance(self.status, frozenset) else status == self.status


def E(status, location=None, contains=None) -> Expect:
    return Expect(frozenset(status) if isinstance(status, set | frozenset) else status, location, contains)


@dataclass
class Row:
    path: Callable[[World], str]
    expect: dict[str, Expect]
    body: Callable[[World, str], dict] | None = None
    api: bool = False
    json_errors: bool = True  # an API error answers JSON with "detail" and "code"
    defect: str = ""  # a known defect the row exposes, until it is fixed
    note: str = ""
    extra: dict = field(default_factory=dict)


def per_role(anonymous, therapist_a, therapist_b, operator, disabled, admin_) -> dict[str, Expect]:
    cells = (anonymous, therapist_a, therapist_b, operator, disabled, admin_)
    return {role: cell if isinstance(cell, Expect) else E(cell) for role, cell in zip(ROLES, cells, strict=True)}


def everyone(status, **kw) -> dict[str, Expect]:
    return dict.fromkeys(ROLES, E(status, **kw))


def staff(ok) -> dict[str, Expect]:
    """Any active operator or therapist."""
    return per_role(DENY, ok, ok, ok, DENY, ok)


def operators(ok) -> dict[str, Expect]:
    return per_role(DENY, 403, 403, ok, DENY, ok)


def a_only(ok, operator=403) -> dict[str, Expect]:
    """Therapist A's own appointment: B gets 404 (not yours), the operator `operator`."""
    return per_role(DENY, ok, 404, operator, DENY, operator)


def therapists(ok) -> dict[str, Expect]:
    """Any active therapist; operators (and admins, who are operators) get 403."""
    return per_role(DENY, ok, ok, 403, DENY, 403)


def page_for(role: str) -> dict[str, Expect]:
    operator_ok = 200 if role == "operator" else 403
    therapist_ok = 200 if role == "therapist" else 403
    disabled = E(200, contains="Your account is disabled") if role == "therapist" else E(403)
    return per_role(E(302, location=LOGIN + "?next="), therapist_ok, therapist_ok, operator_ok, disabled,
                    operator_ok)


def admin_only(admin_status: int | str, *, anonymous_to_login: bool = True) -> dict[str, Expect]:
    """Only staff get into the admin: everyone else is sent to the admin's login."""
    to_login = E(302, location=ADMIN_LOGIN + "?next=")
    cells = dict.fromkeys(ROLES, to_login)
    cells["admin"] = admin_status if isinstance(admin_status, Expect) else E(admin_status)
    return cells


def at(path: str) -> Callable[[World], str]:
    return lambda w: path


def url(name: str, **kwargs) -> Callable[[World], str]:
    return lambda w: reverse(name, kwargs={k: (v(w) if callable(v) else v) for k, v in kwargs.items()})


def soon(days: int, hours: int = 0) -> str:
    return (timezone.now() + timedelta(days=days, hours=hours)).isoformat()


# ---------------------------------------------------------------------------
# THE table: (route, method) -> Row. Wildcard routes cover the admin's
# per-model routes; "model_admin:<perm>" cells are resolved per ModelAdmin.
# ---------------------------------------------------------------------------

TABLE: dict[tuple[str, str], Row] = {
    # --- public ---
    ("healthz", "GET"): Row(at("/healthz"), everyone(200)),
    ("healthz", "POST"): Row(at("/healthz"), everyone(405)),
    ("favicon", "GET"): Row(at("/favicon.ico"), everyone(200)),
    ("login", "GET"): Row(url("login"), per_role(200, *[E(302, location="/")] * 5)),
    ("login", "POST"): Row(url("login"), everyone(302, location="/"),
                           body=lambda w, r: {"username": "ana", "password": PASSWORD["therapist_a"]},
                           note="form post: signs in (anonymous) or redirects the signed-in"),
    ("logout", "GET"): Row(url("logout"), everyone(405)),
    ("logout", "POST"): Row(url("logout"), everyone(302, location=LOGIN)),
    ("api-token", "POST"): Row(url("api-token"), everyone(200), api=True,
                               body=lambda w, r: {"username": "ana", "password": PASSWORD["therapist_a"]},
                               note="the token endpoint ignores who calls it"),
    ("api-token", "GET"): Row(url("api-token"), everyone(405), api=True),
    # --- pages ---
    ("landing", "GET"): Row(at("/"), per_role(E(302, location=LOGIN + "?next="), E(302, location="/therapist/"),
                                              E(302, location="/therapist/"), E(302, location="/operator/"),
                                              E(302, location="/therapist/"), E(302, location="/operator/"))),
    ("operator-dashboard", "GET"): Row(url("operator-dashboard"), page_for("operator")),
    ("therapist-dashboard", "GET"): Row(url("therapist-dashboard"), page_for("therapist")),
    # --- accounts API ---
    ("api-me", "GET"): Row(url("api-me"), staff(200), api=True),
    ("api-therapists", "GET"): Row(url("api-therapists"), operators(200), api=True),
    ("api-therapists", "POST"): Row(url("api-therapists"), operators(201), api=True, body=lambda w, r: {
        "username": "newbie", "password": "a-Long-pass-9081", "first_name": "Nina", "last_name": "Bautista"}),
    ("api-therapist-enable", "POST"): Row(url("api-therapist-enable", pk=lambda w: w.dina.pk), operators(200),
                                          api=True, body=lambda w, r: {"note": "Talked to her"}),
    # --- scheduling API ---
    ("api-events", "GET"): Row(url("api-events"), staff(200), api=True),
    ("api-insights", "GET"): Row(url("api-insights"), operators(200), api=True),
    ("api-insights-mine", "GET"): Row(url("api-insights-mine"), per_role(DENY, 200, 200, 403, DENY, 403), api=True,
                                      note="a therapist's own figures only"),
    ("client-list", "GET"): Row(url("client-list"), operators(200), api=True),
    ("client-list", "POST"): Row(url("client-list"), operators(201), api=True,
                                 body=lambda w, r: {"name": "Señora Niño", "phone": "+63 917 555 0199"}),
    ("client-detail", "GET"): Row(url("client-detail", pk=lambda w: w.client.pk), operators(200), api=True),
    ("service-list", "GET"): Row(url("service-list"), staff(200), api=True),
    ("service-list", "POST"): Row(url("service-list"), operators(201), api=True, body=lambda w, r: {
        "name": "Hot stone", "duration_minutes": 90, "price": "1200.00", "therapists": [w.ana.pk]}),
    ("service-detail", "GET"): Row(url("service-detail", pk=lambda w: w.service.pk), staff(200), api=True),
    ("availability-list", "GET"): Row(url("availability-list"), staff(200), api=True),
    ("availability-list", "POST"): Row(
        url("availability-list"), per_role(DENY, 201, 400, 201, DENY, 201), api=True,
        body=lambda w, r: {"therapist": w.ana.pk, "starts_at": soon(4), "ends_at": soon(4, 2)},
        note="therapist B may not add therapist A's availability"),
    ("availability-detail", "DELETE"): Row(url("availability-detail", pk=lambda w: w.free_slot.pk),
                                           a_only(204, operator=204), api=True),
    ("appointment-list", "GET"): Row(url("appointment-list"), staff(200), api=True),
    ("appointment-list", "POST"): Row(url("appointment-list"), operators(201), api=True, body=lambda w, r: {
        "client": w.client.pk, "service": w.service.pk, "starts_at": soon(1, 1), "location": "Makati"}),
    ("appointment-detail", "GET"): Row(url("appointment-detail", pk=lambda w: w.pending.pk),
                                       a_only(200, operator=200), api=True),
    ("appointment-available-therapists", "GET"): Row(
        url("appointment-available-therapists", pk=lambda w: w.unassigned.pk), operators(200), api=True),
    ("appointment-assign", "POST"): Row(url("appointment-assign", pk=lambda w: w.unassigned.pk), operators(200),
                                        api=True, body=lambda w, r: {"therapist": w.bea.pk}),
    ("appointment-accept", "POST"): Row(url("appointment-accept", pk=lambda w: w.pending.pk), a_only(200),
                                        api=True),
    ("appointment-reject", "POST"): Row(url("appointment-reject", pk=lambda w: w.pending.pk), a_only(200),
                                        api=True, body=lambda w, r: {"rejection_reason": "Sick today"}),
    ("appointment-review-rejection", "POST"): Row(
        url("appointment-review-rejection", pk=lambda w: w.rejected.pk), operators(200), api=True,
        body=lambda w, r: {"review_decision": "deny", "review_note": "Please take it"}),
    ("appointment-start", "POST"): Row(url("appointment-start", pk=lambda w: w.confirmed.pk),
                                       a_only(200, operator=200), api=True),
    ("appointment-complete", "POST"): Row(url("appointment-complete", pk=lambda w: w.in_progress.pk),
                                          a_only(200, operator=200), api=True),
    ("appointment-cancel", "POST"): Row(url("appointment-cancel", pk=lambda w: w.pending.pk), operators(200),
                                        api=True, body=lambda w, r: {"reason": "Client called it off"}),
    ("appointment-reassign", "POST"): Row(url("appointment-reassign", pk=lambda w: w.pending.pk), operators(200),
                                          api=True, body=lambda w, r: {"therapist": w.bea.pk, "reason": "Ana is ill"}),
    ("appointment-reschedule", "POST"): Row(url("appointment-reschedule", pk=lambda w: w.confirmed.pk),
                                            operators(200), api=True,
                                            body=lambda w, r: {"starts_at": soon(1, 2), "reason": "Client asked"}),
    ("appointment-detail", "PATCH"): Row(url("appointment-detail", pk=lambda w: w.pending.pk), operators(200),
                                         api=True, body=lambda w, r: {"notes": "Gate code 4411"},
                                         note="therapists may not edit, even their own"),
    ("api-day", "GET"): Row(url("api-day"), operators(200), api=True),
    ("appointment-hold", "POST"): Row(url("appointment-hold", pk=lambda w: w.pending.pk), operators(200), api=True,
                                      body=lambda w, r: {"hold": True}, note="assign by hand (re-offer skips it)"),
    ("appointment-auto-cancel-overdue", "POST"): Row(url("appointment-auto-cancel-overdue"), operators(200),
                                                     api=True),
    ("appointment-receipt", "POST"): Row(url("appointment-receipt", pk=lambda w: w.pending.pk), a_only(200),
                                         api=True, body=lambda w, r: {"kind": "delivered"}),
    ("api-me-calendar-rotate", "POST"): Row(url("api-me-calendar-rotate"), therapists(200), api=True),
    # --- notifications API ---
    ("api-notifications", "GET"): Row(url("api-notifications"), staff(200), api=True),
    ("api-notification-read", "POST"): Row(url("api-notification-read", pk=lambda w: w.notification.pk),
                                           a_only(200, operator=404), api=True,
                                           note="someone else's notification is 404, operator included"),
    ("api-notifications-read-all", "POST"): Row(url("api-notifications-read-all"), staff(200), api=True),
    ("api-push-key", "GET"): Row(url("api-push-key"), therapists(200), api=True),
    ("api-push-subscriptions", "POST"): Row(
        url("api-push-subscriptions"), therapists(201), api=True,
        body=lambda w, r: {"endpoint": "https://93.184.215.14/push/new-phone", "keys": w.extra["device"]},
        note="a public https endpoint; each request is rolled back, so every therapist creates it"),
    ("api-push-subscriptions", "DELETE"): Row(
        lambda w: f"{reverse('api-push-subscriptions')}?endpoint={w.extra['push_endpoint']}",
        per_role(DENY, 204, 404, 403, DENY, 403), api=True, note="only the owner removes a device"),
    # --- the installable app and the calendar feed: no login ---
    ("service-worker", "GET"): Row(url("service-worker"), everyone(200)),
    ("web-manifest", "GET"): Row(url("web-manifest"), everyone(200)),
    ("calendar-feed", "GET"): Row(lambda w: reverse("calendar-feed", kwargs={"secret": w.extra["calendar_secret"]}),
                                  everyone(200), note="the address carries its own secret"),
    # --- schema and docs: a login of any (active) role ---
    ("api-schema", "GET"): Row(url("api-schema"), staff(200), api=True, defect=(
        "the schema view renders its 401/403 as YAML (application/vnd.oai.openapi), not JSON: route it as "
        "SpectacularAPIView.as_view(renderer_classes=[OpenApiJsonRenderer, OpenApiYamlRenderer]) in guitara/urls.py")),
    ("api-docs", "GET"): Row(url("api-docs"), per_role(E(302, location=LOGIN + "?next="), 200, 200, 200, DENY, 200),
                             api=True, json_errors=False,
                             note="an HTML page: signed out, it sends people to the login page; its 403 is HTML"),
    # --- the admin ---
    ("admin:index", "GET"): Row(url("admin:index"), admin_only(200)),
    ("admin:login", "GET"): Row(url("admin:login"), {**everyone(200), "admin": E(302, location="/admin/")},
                                note="non-staff see the admin login form, staff go to the index"),
    ("admin:logout", "POST"): Row(url("admin:logout"), {**everyone(302, location="/admin/"),
                                                        "admin": E(302, location=LOGIN)},
                                  note="non-staff are sent to the admin index; staff are signed out"),
    ("admin:password_change", "GET"): Row(url("admin:password_change"), admin_only(200)),
    ("admin:password_change_done", "GET"): Row(url("admin:password_change_done"), admin_only(200)),
    ("admin:autocomplete", "GET"): Row(url("admin:autocomplete"), admin_only(403),
                                       note="without its query parameters"),
    ("admin:jsi18n", "GET"): Row(url("admin:jsi18n"), admin_only(200)),
    ("admin:view_on_site", "GET"): Row(at("/admin/r/0/0/"), admin_only(404)),
    ("admin:app_list", "GET"): Row(lambda w: reverse("admin:app_list", kwargs={"app_label": "scheduling"}),
                                   admin_only(200)),
    ("admin:auth_user_password_change", "GET"): Row(
        lambda w: reverse("admin:auth_user_password_change", args=[w.ana.pk]), admin_only(200)),
    ("admin:*_changelist", "GET"): Row(None, admin_only("model_admin:view")),
    ("admin:*_add", "GET"): Row(None, admin_only("model_admin:add")),
    ("admin:*_change", "GET"): Row(None, admin_only("model_admin:view")),
    ("admin:*_history", "GET"): Row(None, admin_only("model_admin:view")),
    ("admin:*_delete", "GET"): Row(None, admin_only("model_admin:delete")),
    ("admin/*/<path:object_id>/", "GET"): Row(None, admin_only(E(302, location="/admin/")),
                                              note="the bare object URL redirects to its change page"),
    ("admin/(?P<url>.*)$", "GET"): Row(at("/admin/no-such-page/"), admin_only(404)),
}


# ---------------------------------------------------------------------------
# Walking the URLconf.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    key: str  # "namespace:name", or the full pattern when unnamed
    pattern: str
    callback: object


def all_routes() -> list[Route]:
    def walk(resolver: URLResolver, prefix: str, namespace: str):
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                ns = ":".join(filter(None, [namespace, entry.namespace])) if entry.namespace else namespace
                yield from walk(entry, prefix + str(entry.pattern), ns)
            elif isinstance(entry, URLPattern):
                pattern = prefix + str(entry.pattern)
                key = ":".join(filter(None, [namespace, entry.name])) if entry.name else pattern
                yield Route(key, pattern, entry.callback)

    return list(walk(get_resolver(), "", ""))


def row_key_for(route: Route, method: str) -> tuple[str, str] | None:
    if (route.key, method) in TABLE:
        return route.key, method
    for key, row_method in TABLE:
        # Only the admin's per-model rows are wildcards; other keys are literal.
        is_wildcard = key.startswith(("admin:*", "admin/*"))
        if row_method == method and is_wildcard and fnmatch.fnmatchcase(route.key, key):
            return key, method
    return None


def drf_methods(callback) -> set[str]:
    """The HTTP methods a DRF view (or viewset route) implements, OPTIONS/HEAD aside."""
    actions = getattr(callback, "actions", None)
    if actions:
        return {m.upper() for m in actions} - {"HEAD", "OPTIONS"}
    view_class = getattr(callback, "cls", None)
    if view_class is None:
        return set()
    return {m.upper() for m in view_class.http_method_names
            if m not in ("options", "head", "trace") and hasattr(view_class, m)}


def test_every_route_has_a_row_and_every_row_a_route():
    routes = all_routes()
    missing = []
    for route in routes:
        methods = drf_methods(route.callback) or {m for (k, m) in TABLE if row_key_for(route, m)}
        if not methods:
            missing.append(f"{route.key} ({route.pattern}): no row at all")
        for method in sorted(methods):
            if row_key_for(route, method) is None:
                missing.append(f"{route.key} ({route.pattern}) {method}")
    assert not missing, "Routes without a row in the permission table (add one):\n  " + "\n  ".join(missing)

    used = {row_key_for(route, method) for route in routes for method in {m for _, m in TABLE}}
    stale = [f"{key} {method}" for key, method in TABLE if (key, method) not in used]
    assert not stale, "Rows for routes that no longer exist:\n  " + "\n  ".join(stale)


# ---------------------------------------------------------------------------
# Running the table.
# ---------------------------------------------------------------------------


def admin_model_of(route_key: str):
    """('admin:scheduling_appointment_change') -> (model, ModelAdmin)."""
    for model, model_admin in admin.site._registry.items():
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}_"
        if route_key.startswith(prefix):
            return model, model_admin
    raise AssertionError(f"no registered ModelAdmin for {route_key}")


def admin_model_of_pattern(pattern: str):
    for model, model_admin in admin.site._registry.items():
        if pattern == f"admin/{model._meta.app_label}/{model._meta.model_name}/<path:object_id>/":
            return model, model_admin
    raise AssertionError(f"no registered ModelAdmin for {pattern}")


def resolve_admin_cell(cell: Expect, model_admin, request_user, obj) -> Expect:
    if not (isinstance(cell.status, str) and cell.status.startswith("model_admin:")):
        return cell
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = request_user
    permission = cell.status.split(":", 1)[1]
    allowed = {
        "view": model_admin.has_view_or_change_permission(request, obj),
        "add": model_admin.has_add_permission(request),
        "delete": model_admin.has_delete_permission(request, obj),
    }[permission]
    return E(200 if allowed else 403)


def concrete_checks(world: World) -> list[tuple[str, str, str, Row, dict[str, Expect]]]:
    """(route key, method, path, row, expectations) for every route and method."""
    checks = []
    for route in all_routes():
        for method in sorted({m for _, m in TABLE}):
            found = row_key_for(route, method)
            if found is None:
                continue
            row = TABLE[found]
            expect = dict(row.expect)
            if row.path is not None:
                path = row.path(world)
            elif route.key.startswith("admin:"):
                model, model_admin = admin_model_of(route.key)
                obj = model._default_manager.order_by("pk").first()
                suffix = route.key.rsplit("_", 1)[1]
                if suffix in ("changelist", "add"):
                    path = reverse(route.key)
                else:
                    assert obj is not None, f"the world has no {model.__name__} to open in the admin"
                    path = reverse(route.key, args=[obj.pk])
                expect["admin"] = resolve_admin_cell(expect["admin"], model_admin, world.users["admin"], obj)
            else:
                model, _ = admin_model_of_pattern(route.pattern)
                obj = model._default_manager.order_by("pk").first()
                assert obj is not None, f"the world has no {model.__name__} to open in the admin"
                opts = model._meta
                path = f"/admin/{opts.app_label}/{opts.model_name}/{obj.pk}/"
            checks.append((route.key, method, path, row, expect))
    return sorted(checks, key=lambda c: (c[0], c[1]))


def request_as(client: Client, method: str, path: str, body: dict | None, *, api: bool, headers: dict):
    if method == "GET":
        return client.get(path, headers=headers)
    if api:
        return client.generic(method, path, json.dumps(body or {}), content_type="application/json",
                              headers=headers)
    return client.generic(method, path, _form(body or {}), content_type="application/x-www-form-urlencoded",
                          headers=headers)


def _form(body: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(body)


def test_permission_matrix(world, private_cache):
    # A fresh client per request (logging out must not end the next request's
    # session); the savepoint rollback keeps each session row valid.
    cookies: dict[str, str] = {}
    for role in ROLES:
        if role != "anonymous":
            client = Client()
            client.force_login(world.users[role])
            cookies[role] = client.cookies[settings.SESSION_COOKIE_NAME].value

    def session_client(role: str) -> Client:
        client = Client()
        if role in cookies:
            client.cookies[settings.SESSION_COOKIE_NAME] = cookies[role]
        return client

    failures, checked = [], 0
    checks = concrete_checks(world)
    for route_key, method, path, row, expect in checks:
        for role in ROLES:
            modes = [("session", session_client(role), {})]
            if row.api and role != "anonymous":
                modes.append(("token", Client(), {"Authorization": f"Token {world.tokens[role]}"}))
            for mode, client, headers in modes:
                body = row.body(world, role) if row.body else None
                with transaction.atomic():
                    response = request_as(client, method, path, body, api=row.api, headers=headers)
                    transaction.set_rollback(True)
                checked += 1
                cell = expect[role]
                problem = None
                if not cell.matches(response.status_code):
                    wanted = sorted(cell.status) if isinstance(cell.status, frozenset) else cell.status
                    problem = f"got {response.status_code}, expected {wanted}"
                elif cell.location and not response.get("Location", "").startswith(cell.location):
                    problem = f"redirected to {response.get('Location')!r}, expected {cell.location!r}…"
                elif cell.contains and cell.contains not in response.content.decode(errors="replace"):
                    problem = f"body lacks {cell.contains!r}"
                elif row.api and row.json_errors and response.status_code >= 400:
                    problem = error_body_problem(response)
                if problem:
                    known = f" -- KNOWN DEFECT: {row.defect}" if row.defect else ""
                    failures.append(f"{method} {path} [{route_key}] as {role} ({mode}): {problem}{known}")
    routes = len({c[0] for c in checks})
    print(f"permission matrix: {routes} routes, {len(checks)} route/method pairs x {len(ROLES)} roles, "
          f"{checked} requests (API rows by session and by token)")

    assert not failures, f"{len(failures)} of {checked} permission checks failed:\n  " + "\n  ".join(failures)


def error_body_problem(response) -> str | None:
    """Every API error is JSON with "detail" and "code"."""
    content_type = response.get("Content-Type", "").split(";")[0]
    if not (content_type == "application/json" or content_type.endswith("+json")):
        return f"error body is {response.get('Content-Type')!r}, not JSON: {response.content[:120]!r}"
    data = response.json()
    if not (isinstance(data, dict) and data.get("detail") and data.get("code")):
        return f"error body without detail/code: {data!r}"
    return None


def test_anonymous_reaches_only_the_public_routes(world, private_cache):
    """The design's rule, stated once more from the anonymous side of the table:
    pages redirect to the login page, the API answers 401/403, and only these answer."""
    public = {"healthz", "favicon", "login", "logout", "api-token", "admin:login", "admin:logout", "service-worker",
              "web-manifest", "calendar-feed"}
    for route_key, method, _path, _row, expect in concrete_checks(world):
        cell = expect["anonymous"]
        if route_key in public:
            continue
        if route_key.startswith("admin") or "/admin/" in route_key or route_key.startswith("admin/"):
            assert cell.matches(302) and cell.location == ADMIN_LOGIN + "?next=", route_key
        elif TABLE[row_key_for_key(route_key, method)].api and route_key != "api-docs":
            # The docs are a page for people (under /api/): they redirect like the dashboards.
            assert cell.status == DENY, route_key
        else:
            assert cell.matches(302) and cell.location.startswith(LOGIN), route_key
    static = Client().get("/" + settings.STATIC_URL.strip("/") + "/css/app.css")
    assert static.status_code == 200


def row_key_for_key(route_key: str, method: str) -> tuple[str, str]:
    for route in all_routes():
        if route.key == route_key:
            found = row_key_for(route, method)
            assert found
            return found
    raise AssertionError(route_key)


# ---------------------------------------------------------------------------
# The websocket, with each role's session cookie.
# ---------------------------------------------------------------------------

WS_EXPECT = {"anonymous": False, "therapist_a": True, "therapist_b": True, "operator": True, "disabled": False,
             "admin": True}


@pytest.mark.django_db(transaction=True)
async def test_websocket_matrix():
    from asgiref.sync import sync_to_async

    from guitara.asgi import application

    world = await sync_to_async(build_world)()
    cookies = {role: await sync_to_async(session_cookie_for)(world.users[role])
               for role in ROLES if role != "anonymous"}
    results = {}
    for role in ROLES:
        headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
        if role in cookies:
            headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookies[role]}".encode()))
        communicator = WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        results[role] = connected
        if connected:
            await communicator.send_json_to({"type": "ping"})
            assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
        await communicator.disconnect()
    assert results == WS_EXPECT

    # The right cookie from the wrong origin is refused at the handshake too.
    communicator = WebsocketCommunicator(application, "/ws/dashboard/", headers=[
        (b"origin", b"http://evil.example"), (b"host", b"127.0.0.1"),
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookies['operator']}".encode())])
    connected, _ = await communicator.connect(timeout=5)
    assert not connected
    await communicator.disconnect()
