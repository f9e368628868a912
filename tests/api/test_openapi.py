"""The OpenAPI document: valid, current in docs/openapi.json (make openapi), and the API keeps
it — Schemathesis sends generated requests to every operation, signed in as an employee, a
coordinator and a co-op manager, and checks that nothing answers 5xx and every answer matches
its documented schema (its default checks). Bounded so that it fits CI."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis.config import SchemathesisConfig

from market import ROOT
from market.accounts.models import User
from market.api import tokens
from market.api.export import document_text
from market.extensions import db

EXAMPLES = 5
# A schema-valid request the shop's rules refuse (an address left out, a control character,
# a closed group-buy) is a documented 400, 409 or 410 with the error body, not a failure.
CONFIG = {
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "410", "429"]
        }
    }
}


def test_the_document_is_valid_openapi_3(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        assert path.startswith("/api/v1/")
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert "200" in operation["responses"] or "201" in operation["responses"], path


def test_the_committed_document_is_current():
    committed = (ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert committed == document_text(), "run `make openapi` and commit docs/openapi.json"


def test_money_and_times_are_described_once(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    money = spec["components"]["schemas"]["Money"]
    assert money["properties"]["fen"]["type"] == "integer"
    error = spec["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "message", "fields"}


@pytest.fixture
def unlimited(app):
    """Fuzzing needs no rate limits in the way (their 429s are tested in test_tokens.py)."""
    from market.security.throttle import limiter

    app.config["RATELIMIT_ENABLED"] = False
    limiter.enabled = False
    yield
    limiter.enabled = True
    app.config["RATELIMIT_ENABLED"] = True


def _config(token: str) -> SchemathesisConfig:
    """The checks' settings and the person's token, so Schemathesis knows which requests it
    sends without it on purpose (those must answer 401)."""
    return SchemathesisConfig.from_dict(
        {
            **CONFIG,
            "auth": {"openapi": {"bearerAuth": {"bearer": token}}, "auto-signup": False},
        }
    )


def _fuzz(app, world, role: str) -> None:
    """Every operation, positive and negative examples, as `role`; every failure is
    collected, then reported together."""
    from schemathesis.generation import GenerationMode

    with app.test_request_context():
        token = tokens.issue(db.session.get(User, getattr(world, role))).access_token
    api_schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=_config(token))
    failures = []
    answered: dict[str, set[int]] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/tokens/revoke":
            continue  # would end the person's tokens mid-run (tested on its own)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def check(case):
                response = case.call_and_validate()
                answered.setdefault(case.path, set()).add(response.status_code)

            try:
                check()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong: no input at all
            except Exception as error:
                failures.append(
                    f"{operation.method.upper()} {operation.path} ({mode.value}):\n{error}"
                )
    assert not failures, "\n\n".join(failures)
    # Signed in indeed: what only a signed-in person sees was answered.
    assert 200 in answered["/api/v1/cart"] and 200 in answered["/api/v1/me"]


def test_the_api_keeps_its_document_for_an_employee(app, world, unlimited):
    _fuzz(app, world, "employee")


def test_the_api_keeps_its_document_for_a_coordinator(app, world, unlimited):
    _fuzz(app, world, "coordinator")


def test_the_api_keeps_its_document_for_a_coop_manager(app, world, unlimited):
    _fuzz(app, world, "coop_manager")
