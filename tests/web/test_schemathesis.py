"""Property-based API testing from /openapi.json (schemathesis): for every operation and
generated input, signed in as each role the World has — operator, supervisor, DPO,
administrator, client user — and signed out, no 5xx and no response that breaks the schema.

Driven through schemathesis' Python API (operations → hypothesis strategies) rather than its
pytest plugin, which does not yet support this pytest version.

The whole suite runs twice in CI (SQLite, PostgreSQL); examples per operation are set per role
to keep these runs to about a minute each (measured: docs/security-testing.md). The roles that
reach the most operations (operator, client user) get the most examples; the others mostly
meet 403s after the first example of an operation they may not use.
"""

from __future__ import annotations

import os
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tests.web.conftest import Person, World

# Examples per operation, per role (tuned on timing: see the module docstring).
EXAMPLES = {
    "operator": 10,
    "client_plumber": 10,
    "supervisor": 5,
    "dpo": 5,
    "admin": 5,
    None: 4,  # signed out
}
# A deeper hunt by hand: PERMANENCE_FUZZ_FACTOR=10 runs ten times as many examples.
FACTOR = float(os.environ.get("PERMANENCE_FUZZ_FACTOR", "1"))
# Operations that would end or change the session the other examples use.
SKIPPED = {"/api/v1/auth/logout"}


def _run(world: World, who: Person | None, examples: int) -> list[str]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    if who is not None:
        session = world.login(who)
        headers = {"X-CSRF-Token": session.headers["X-CSRF-Token"]}
        cookies = {"permanence_session": session.cookies["permanence_session"]}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:
        if operation.path in SKIPPED:
            continue

        @given(case=operation.as_strategy())
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
                # purpose): a clear 422 there is the right answer, not a failure.
                excluded_checks=[positive_data_acceptance],
            )

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failure, not the first
            failures.append(f"{operation.label}: {str(exc).splitlines()[0][:300]}")
    return failures


@pytest.mark.slow
@pytest.mark.parametrize("role", list(EXAMPLES), ids=lambda r: r or "signed_out")
def test_api_as_every_role(world: World, role: str | None) -> None:
    who: Person | None = getattr(world, role) if role else None
    started = time.monotonic()
    failures = _run(world, who, max(1, round(EXAMPLES[role] * FACTOR)))
    print(f"schemathesis as {role or 'signed out'}: {time.monotonic() - started:.1f} s")
    assert failures == []


def test_every_role_of_the_world_is_fuzzed(world: World) -> None:
    people = {name for name, value in vars(world).items() if isinstance(value, Person)}
    # The medical practice's client user has the same role as the plumber's.
    assert people - {"client_medical"} == {r for r in EXAMPLES if r}


def test_schema_is_served(world: World) -> None:
    spec = world.client().get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/accounts/{account_id}/messages" in spec["paths"]
