"""Property-based fuzzing of the REST API from its own OpenAPI schema (schemathesis).

The schema is loaded from /api/schema/ on the real ASGI application, in process,
signed in with a token, and every operation is fuzzed as an operator and as a
therapist:

- positive data (what the schema allows) and negative data (what it forbids),
- path ids both generated (mostly "not found") and pinned to real rows of the
  world (so bodies reach the workflow: assign, reject, review, cancel ...).

Checks: no 500 (not_a_server_error), every status documented for the operation
(status_code_conformance), the documented content type, and the body matching
the documented schema (response_schema_conformance); negative data must be
refused with a 4xx (negative_data_rejection; a malformed `page_size` or an
empty query value alone is exempt, see LENIENT_QUERY_PARAMETERS).

Bounded and reproducible: `derandomize=True` (the examples are a function of
the test alone), about FUZZ_EXAMPLES (10) examples per operation and role, no
shrinking (a failure is reported as found), no example database.

The ASGI app runs Django's sync views in its own threads, so the data must be
committed: `transactional_db`.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import World, build_world

# Examples per operation and role: positive data with generated path ids, with a
# real row's id, and negative data. FUZZ_EXAMPLES=N scales them all (default 10,
# sized so the hardening suite stays near two minutes; raise it for a deeper run).
SCALE = int(os.environ.get("FUZZ_EXAMPLES", "10"))
POSITIVE_GENERATED = max(1, SCALE * 4 // 10)
POSITIVE_REAL_ID = max(1, SCALE * 4 // 10)
NEGATIVE = max(1, SCALE * 2 // 10)

# Defects this test found, with the change that fixes each (files owned
# elsewhere; the test stays failing until they land).
KNOWN_DEFECTS = {
    "S1": "every 400 is documented with a required `errors`, but a malformed body answers 400 parse_error "
          "without it: guitara/schema.py ValidationErrorSerializer.errors needs required=False",
    "S2": "GET /api/notifications/ is documented as a bare array but answers the paginated object with "
          "`unread`: notifications/api.py NotificationListView.get needs an explicit paginated response schema",
    "S3": "available_therapists is documented as paginated (and takes page/page_size) but answers a plain list: "
          "scheduling/api/views.py @action(..., pagination_class=None)",
}

# An OpenAPI schema cannot say "ignored when malformed" or "empty means absent",
# so schemathesis expects every schema-violating value to be refused. Two DRF
# conventions are deliberate and harmless, and exempt from negative_data_rejection
# (everything else about such a request is still checked):
# - page-number pagination ignores a malformed `page_size` (documented DRF
#   behaviour: it falls back to the default size); `page` itself is not exempt;
# - an empty query value (`?after=`) counts as not given, as in any HTML form.
LENIENT_QUERY_PARAMETERS = {"page_size"}


@schemathesis.check
def negative_data_rejected(ctx, response, case):
    """negative_data_rejection, except for the two conventions above."""
    data = case.meta.phase.data if case.meta is not None else None
    if data is not None:
        names = {data.parameter} | {m.parameter for m in data.mutations}
        names.discard(None)
        query = case.query or {}
        if names and all(name in LENIENT_QUERY_PARAMETERS or query.get(name) == "" for name in names):
            return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejected]


def real_id(world: World, method: str, path: str) -> int | None:
    """A row the operation can act on, in a state where it can succeed, so fuzzed
    bodies reach the workflow rather than stopping at "not found"."""
    if path.startswith("/api/scheduling/appointments/{id}/"):
        action = path.rstrip("/").rsplit("/", 1)[1]
        return {"accept": world.pending, "reject": world.pending, "cancel": world.pending,
                "review_rejection": world.rejected, "assign": world.unassigned,
                "available_therapists": world.unassigned, "start": world.confirmed,
                "complete": world.in_progress}.get(action, world.pending).pk
    return {
        "/api/scheduling/availability/{id}/": world.free_slot.pk,
        "/api/scheduling/clients/{id}/": world.client.pk,
        "/api/scheduling/services/{id}/": world.service.pk,
        "/api/notifications/{id}/read/": world.notification.pk,
        "/api/accounts/therapists/{id}/enable/": world.dina.pk,
    }.get(path)


def fuzz(operation, headers: dict[str, str], mode: GenerationMode, examples: int, path_parameters: dict | None,
         failures: list[str], counter: list[int]) -> None:
    checks = NEGATIVE_CHECKS if mode == GenerationMode.NEGATIVE else CHECKS
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @settings(max_examples=examples, derandomize=True, deadline=None, database=None, print_blob=False,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        counter[0] += 1
        response = case.call(headers=headers)
        case.validate_response(response, checks=checks, headers=headers)

    try:
        run()
    except Unsatisfiable:
        pass  # nothing to negate: no parameters and no body
    except (Exception, BaseExceptionGroup) as exc:  # collected, reported together at the end
        where = f"{mode.value}, {'real id' if path_parameters else 'generated'}"
        failures.append(f"{operation.label} [{where}]:\n{str(exc).strip()[:1500]}")


def fuzz_operation(world: World, operation, headers: dict[str, str], failures: list[str], counter: list[int]):
    pk = real_id(world, operation.method.upper(), operation.path) if "{id}" in operation.path else None
    real = {"id": pk} if pk else None
    if real:
        fuzz(operation, headers, GenerationMode.POSITIVE, POSITIVE_GENERATED, None, failures, counter)
        fuzz(operation, headers, GenerationMode.POSITIVE, POSITIVE_REAL_ID, real, failures, counter)
    else:
        fuzz(operation, headers, GenerationMode.POSITIVE, POSITIVE_GENERATED + POSITIVE_REAL_ID, None, failures,
             counter)
    fuzz(operation, headers, GenerationMode.NEGATIVE, NEGATIVE, real, failures, counter)


@pytest.mark.django_db(transaction=True)
def test_api_survives_fuzzing_and_matches_its_schema(private_cache):
    from guitara.asgi import application

    world = build_world()
    failures: list[str] = []
    counter = [0]
    operations = 0
    for role in ("operator", "therapist_a"):
        headers = {"Authorization": f"Token {world.tokens[role]}"}
        schema = schemathesis.openapi.from_asgi("/api/schema/?format=json", application, headers=headers)
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            fuzz_operation(world, operation, headers, failures, counter)
    print(f"fuzzing: {operations} operation×role pairs, {counter[0]} examples")
    known = "\n".join(f"  {key}: {text}" for key, text in KNOWN_DEFECTS.items())
    assert not failures, (f"{len(failures)} fuzzing failures (KNOWN DEFECTS until fixed:\n{known}\n):\n\n"
                          + "\n\n".join(failures))
