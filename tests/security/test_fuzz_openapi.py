"""Schemathesis against our own OpenAPI document: every operation, authenticated, with generated valid
and invalid input. No 5xx, every answer documented and matching its schema. Examples are capped so the
whole run stays around a minute (GUAHAO_FUZZ_EXAMPLES raises the cap for a longer local run)."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from tests import factories as f

EXAMPLES = int(os.environ.get("GUAHAO_FUZZ_EXAMPLES", "12"))


@pytest.fixture
def fuzz_app(sqlite_db):
    from guahao.app import create_app
    from guahao.clock import SystemClock

    return create_app(db=sqlite_db, clock=SystemClock())


@pytest.fixture
def fuzz_auth(fuzz_app):
    """An account with a patient, a hospital with a session, and a platform admin."""
    from datetime import timedelta

    from fastapi.testclient import TestClient

    from guahao.clock import local
    from guahao.staff.service import create_staff

    db = fuzz_app.state.db
    now = fuzz_app.state.clock.now()
    with db.transaction() as s:
        h = f.hospital(s)
        doc = f.doctor(s, f.department(s, h))
        f.session(s, doc, local(now).date() + timedelta(days=1))
        create_staff(s, now, "fuzz-admin", "staff1234", "platform_admin", "平台")
    with TestClient(fuzz_app) as c:
        account, _, _ = f.signup(c)
        tok = c.post("/api/v1/staff/token", data=dict(username="fuzz-admin", password="staff1234")).json()
    return account, {"Authorization": f"Bearer {tok['access_token']}"}


@pytest.fixture
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation(case, fuzz_auth):
    account, staff = fuzz_auth
    headers = staff if case.path.startswith(("/api/v1/admin", "/api/v1/staff")) else account
    case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance,
                                                    status_code_conformance, content_type_conformance])
