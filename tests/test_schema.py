"""The OpenAPI schema and its docs page: behind a login, complete, offline."""

import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from rest_framework.test import APIClient

# DESIGN.md's API table: path -> the methods it lists.
DESIGN_API = {
    "/api/scheduling/clients/": {"get", "post"},
    "/api/scheduling/services/": {"get", "post"},
    "/api/scheduling/availability/": {"get", "post"},
    "/api/scheduling/availability/{id}/": {"delete"},
    "/api/scheduling/appointments/": {"get", "post"},
    "/api/scheduling/appointments/{id}/": {"get", "patch"},
    "/api/scheduling/appointments/{id}/available_therapists/": {"get"},
    **{f"/api/scheduling/appointments/{{id}}/{action}/": {"post"}
       for action in ("assign", "accept", "reject", "review_rejection", "start", "complete", "cancel",
                      "reassign", "reschedule", "hold")},
    "/api/scheduling/day/": {"get"},
    "/api/scheduling/appointments/auto_cancel_overdue/": {"post"},
    "/api/scheduling/events/": {"get"},
    "/api/scheduling/insights/": {"get"},
    "/api/notifications/": {"get"},
    "/api/notifications/{id}/read/": {"post"},
    "/api/notifications/read_all/": {"post"},
    "/api/accounts/token/": {"post"},
    "/api/accounts/me/": {"get"},
    "/api/accounts/therapists/": {"get", "post"},
    "/api/accounts/therapists/{id}/enable/": {"post"},
    "/api/scheduling/appointments/{id}/receipt/": {"post"},
    "/api/notifications/push/key/": {"get"},
    "/api/notifications/push/subscriptions/": {"post", "delete"},
    "/api/accounts/me/calendar/rotate/": {"post"},
}

# Where a state can be wrong: the transitions, deleting a slot, enabling a therapist.
CONFLICTS = {path for path in DESIGN_API if re.search(r"/(assign|accept|reject|review_rejection|start|complete|"
                                                      r"cancel|enable|reassign|reschedule|receipt|hold)/$", path)} | {
    "/api/scheduling/availability/{id}/", "/api/scheduling/appointments/", "/api/scheduling/appointments/{id}/"}


@pytest.fixture
def schema(api, operator) -> dict:
    response = api(operator).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return response.json()


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def test_the_schema_needs_a_login(db):
    response = APIClient().get("/api/schema/")
    assert response.status_code in (401, 403)
    assert b"openapi:" not in response.content


def test_the_docs_page_sends_a_signed_out_visitor_to_the_login_page(client, db):
    """A page for people: like the dashboards, it asks them to sign in (not "this page isn't for your account")."""
    response = client.get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/api/docs/"
    assert b"swagger-ui" not in response.content.lower()


def test_the_schema_is_openapi_3_yaml_by_default_for_any_role(api, therapist):
    response = api(therapist).get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    document = yaml.safe_load(response.content)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"]


def test_json_clients_get_json_and_yaml_is_served_on_request(api, operator):
    as_json = api(operator).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert as_json.status_code == 200
    assert as_json["Content-Type"].startswith("application/json")
    assert as_json.json()["openapi"].startswith("3.")
    as_yaml = api(operator).get("/api/schema/", {"format": "yaml"})
    assert as_yaml.status_code == 200
    assert as_yaml["Content-Type"].startswith("application/vnd.oai.openapi")
    assert as_yaml.content.startswith(b"openapi:")


def test_the_schema_lists_every_path_of_the_design(schema):
    assert schema["openapi"].startswith("3.")
    documented = {path: set(item) & {"get", "post", "put", "patch", "delete"}
                  for path, item in schema["paths"].items()}
    missing = {path: methods - documented.get(path, set()) for path, methods in DESIGN_API.items()
               if methods - documented.get(path, set())}
    assert missing == {}


def test_every_operation_documents_its_error_responses(schema):
    problems = []
    for path, method, operation in _operations(schema):
        expected = {"401", "403"}
        if method in ("post", "put", "patch"):
            expected.add("400")
        if "{" in path:
            expected.add("404")
        if path in CONFLICTS and method in ("post", "patch", "delete"):
            expected.add("409")
        if path == "/api/accounts/token/":
            expected = {"400", "401", "403", "429"}
        lacking = expected - set(operation["responses"])
        if lacking:
            problems.append(f"{method.upper()} {path}: {sorted(lacking)}")
    assert problems == []


def test_error_responses_describe_detail_and_code(schema):
    components = schema["components"]["schemas"]

    def properties(response: dict) -> set[str]:
        ref = response["content"]["application/json"]["schema"]["$ref"]
        return set(components[ref.rsplit("/", 1)[1]]["properties"])

    for path, method, operation in _operations(schema):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert response.get("description"), (method, path, status)
                fields = properties(response)
                assert {"detail", "code"} <= fields, (method, path, status)
                if status == "400":
                    assert "errors" in fields, (method, path)


def test_the_docs_page_renders_with_offline_assets(client, operator):
    client.force_login(operator)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html.lower()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    external = [a for a in assets if re.match(r"(https?:)?//", a)]
    assert external == [], "the docs must not load anything from a CDN"
    assert not re.search(r"cdn\.jsdelivr|unpkg\.com|cdnjs", html)
    static = [a for a in assets if a.startswith("/static/")]
    assert any("swagger-ui" in a for a in static), assets
    for asset in static:
        assert finders.find(asset.removeprefix("/static/").split("?")[0]), f"{asset} is not shipped"
