"""API fixtures: a person's bearer token got through POST /api/v1/tokens, and a client that
sends it (never a cookie session)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests import factories
from tests.campaign.conftest import campaign  # noqa: F401  (a campaign running today)
from tests.payments.conftest import (  # noqa: F401  (card payments through localstripe)
    card_token,
    localstripe_url,
    stripe_app,
)

API = "/api/v1"

EMAILS = {
    "employee": "employee@example.com",
    "coordinator": "coordinator@example.com",
    "other_coordinator": "other-coordinator@example.com",
    "approver": "approver@example.com",
    "coop": "coop@example.com",
    "other_coop": "other-coop@example.com",
    "buyer": "buyer@example.com",
    "organizer": "organizer@example.com",
    "finance": "finance@example.com",
    "admin": "admin@example.com",
}


class ApiClient:
    """A test client that sends `Authorization: Bearer <token>` with every request."""

    def __init__(self, client, token: str | None, language: str | None = None):
        self.client = client
        self.token = token
        self.language = language

    def headers(self, extra=None) -> dict:
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.language:
            headers["Accept-Language"] = self.language
        headers.update(extra or {})
        return headers

    def get(self, path: str, **kwargs):
        return self.client.get(
            API + path, headers=self.headers(kwargs.pop("headers", None)), **kwargs
        )

    def post(self, path: str, json=None, **kwargs):
        return self.client.post(
            API + path, json=json, headers=self.headers(kwargs.pop("headers", None)), **kwargs
        )


def sign_in(client, login: str, password: str = factories.PASSWORD) -> dict:
    response = client.post(f"{API}/tokens", json={"login": login, "password": password})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def api(app):
    """api() -> an anonymous API client; api("employee") -> signed in as that person."""

    def make(role: str | None = None, language: str | None = None) -> ApiClient:
        client = app.test_client()
        token = sign_in(client, EMAILS[role])["access_token"] if role else None
        return ApiClient(app.test_client(), token, language)

    return make


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error", "message", "fields"}, body
    assert body["message"]
    if code is not None:
        assert body["error"] == code, body
    return body


@contextmanager
def statements_sent(app) -> Iterator[list[str]]:
    """Every SQL statement sent to the app's database meanwhile (the page cache emptied
    first, so that a listing's count is its real one): a count that grows with the rows
    listed is an N+1. The query-budget walk's own recorder."""
    from tests.test_query_budget import _clear_cache, statements_run

    _clear_cache(app)
    with statements_run(app) as seen:
        yield seen
