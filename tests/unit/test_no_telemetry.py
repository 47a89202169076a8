"""FastAPI's own OpenTelemetry hooks are off: no request asks OpenTelemetry for its providers (guahao/app.py)."""

import inspect

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from guahao.app import create_app
from guahao.config import Settings

pytestmark = pytest.mark.skipif("telemetry" not in inspect.signature(FastAPI.__init__).parameters,
                                reason="this FastAPI has no telemetry hooks")


def test_a_request_does_not_look_up_opentelemetry_providers(monkeypatch, tmp_path):
    from opentelemetry import _logs, metrics, trace

    asked = []
    for module, name in ((trace, "get_tracer_provider"), (metrics, "get_meter_provider"),
                         (_logs, "get_logger_provider")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda real=real, name=name: asked.append(name) or real())
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/t.db"))
    with TestClient(app) as client:
        asked.clear()  # startup may look once
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/v1/no-such-thing").status_code == 404
    assert asked == []
