"""Property-based API testing from /openapi.json (schemathesis): for every operation and
generated input, signed in as each role the World has — operator, supervisor, DPO,
administrator, client user — and signed out, no 5xx and no response that breaks the schema.

Driven through schemathesis' Python API (operations → hypothesis strategies) rather than its
pytest plugin, which does not yet support this pytest version.

The whole suite runs twice in CI (SQLite, PostgreSQL); examples per operation are set per role
to keep these runs to about a minute on SQLite (measured: docs/security-testing.md). The roles that
reach the most operations (operator, client user) get the most examples; the others mostly
meet 403s after the first example of an operation they may not use.
"""

from __future__ import annotations

import os
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from tests.web.conftest import Person, World

# Examples per operation, per role (tuned on timing: see the module docstring).
EXAMPLES = {
    "operator": 10,
    "client_plumber": 10,
    "supervisor": 4,
    "dpo": 4,
    "admin": 4,
    None: 3,  # signed out
}
# Schema-violating inputs, for the two roles that reach the most operations.
NEGATIVE_EXAMPLES = 3
# A deeper hunt by hand: PERMANENCE_FUZZ_FACTOR=10 runs ten times as many examples.
FACTOR = float(os.environ.get("PERMANENCE_FUZZ_FACTOR", "1"))
# Operations that would end or change the session the other examples use.
SKIPPED = {"/api/v1/auth/logout"}


def _run(
    world: World,
    who: Person | None,
    examples: int,
    mode: GenerationMode = GenerationMode.POSITIVE,
) -> list[str]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    if who is not None:
        session = world.login(who)
        headers = {"X-CSRF-Token": session.headers["X-CSRF-Token"]}
        cookies = {"permanence_session": session.cookies["permanence_session"]}
    excluded = [positive_data_acceptance]
    if mode is GenerationMode.NEGATIVE:
        excluded.append(negative_data_rejection)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:
        if operation.path in SKIPPED:
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            if "account_id" in (case.path_parameters or {}):
                # Aim at a real account, so generated inputs get past the account check.
                case.path_parameters["account_id"] = str(world.plumber.id)
            case.call_and_validate(
                headers={**(case.headers or {}), **headers},
                cookies=cookies,
                # Schema-valid is not business-valid (an unknown number, a field outside the
                # purpose): a clear 422 there is the right answer, not a failure. In negative
                # mode, an unknown query parameter is ignored, as HTTP APIs do, where
                # negative_data_rejection wants a 4xx; what it checks besides (wrong types,
                # missing fields) the validation answers, tests/web/test_bad_input.py shows.
                excluded_checks=excluded,
            )

        try:
            check()
        except Unsatisfiable:
            # Negative mode: an operation with no input to break (no parameter, no body).
            assert mode is GenerationMode.NEGATIVE, operation.label
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failure, not the first
            detail = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            failures.append(f"{operation.label}: {detail[:600]}")
    return failures


@pytest.mark.slow
@pytest.mark.parametrize("role", list(EXAMPLES), ids=lambda r: r or "signed_out")
def test_api_as_every_role(world: World, role: str | None) -> None:
    who: Person | None = getattr(world, role) if role else None
    started = time.monotonic()
    failures = _run(world, who, max(1, round(EXAMPLES[role] * FACTOR)))
    print(f"schemathesis as {role or 'signed out'}: {time.monotonic() - started:.1f} s")
    assert failures == []


@pytest.mark.slow
@pytest.mark.parametrize("role", ["operator", "client_plumber"])
def test_api_given_schema_violating_input(world: World, role: str) -> None:
    """Negative mode: inputs that break the schema (wrong types, missing or extra fields,
    values out of range): never a 5xx, and every answer as documented."""
    started = time.monotonic()
    failures = _run(
        world,
        getattr(world, role),
        max(1, round(NEGATIVE_EXAMPLES * FACTOR)),
        GenerationMode.NEGATIVE,
    )
    print(f"schemathesis negative as {role}: {time.monotonic() - started:.1f} s")
    assert failures == []


def test_every_role_of_the_world_is_fuzzed(world: World) -> None:
    people = {name for name, value in vars(world).items() if isinstance(value, Person)}
    # The medical practice's client user has the same role as the plumber's.
    assert people - {"client_medical"} == {r for r in EXAMPLES if r}


def test_schema_is_served(world: World) -> None:
    spec = world.client().get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/accounts/{account_id}/messages" in spec["paths"]
