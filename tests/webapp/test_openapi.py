"""The OpenAPI document: valid OpenAPI 3.1, fetched over HTTP from the live web tier, with
every route of the machine interface in it (so it cannot fall behind the routes), and the
API key requirements of the server that publishes it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import requests
from apispec_webframeworks.flask import FlaskPlugin
from flask import Flask
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from config.env import FALSE_WORDS, TRUE_WORDS
from config.settings import Settings
from config.web import WebSettings
from tests.webapp.stack import WebStack
from webapp import create_app
from webapp.openapi import IMPLICIT_METHODS, UndocumentedRoute, build, is_documented


def _app(api_key: str | None = None, **web: Any) -> Flask:
    settings = replace(Settings.from_env({}), api_key=api_key)
    return create_app({"FACEFLEET_SETTINGS": settings, "FACEFLEET_WEB": WebSettings(**web)})


def _routes(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every route the document must describe."""
    return {(FlaskPlugin.flaskpath2openapi(rule.rule), method.lower())
            for rule in app.url_map.iter_rules() if is_documented(rule)
            for method in (rule.methods or set()) - IMPLICIT_METHODS}


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item
            if method != "parameters"}


def test_live_document_is_openapi_31_and_has_every_route(web_stack: WebStack) -> None:
    r = requests.get(web_stack.url + "/api/v1/openapi.json", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    document = r.json()
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)
    routes = _routes(_app("k"))
    assert {p for p, _ in routes if p.startswith("/api/v1/")} >= {
        "/api/v1/recognitions", "/api/v1/recognitions/{request_id}", "/api/v1/identities",
        "/api/v1/identities/{name}/images", "/api/v1/identities/{name}", "/api/v1/fleet",
        "/api/v1/dashboard", "/api/v1/openapi.json"}
    assert _operations(document) == routes
    ids = [op["operationId"] for item in document["paths"].values()
           for key, op in item.items() if key != "parameters"]
    assert len(ids) == len(set(ids))


def test_every_response_of_every_operation_is_described() -> None:
    document = build(_app())
    components = document["components"]["responses"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert operation["responses"], (method, path)
            for status, response in operation["responses"].items():
                ref = response.get("$ref", "")
                described = components[ref.rsplit("/", 1)[1]] if ref else response
                assert described["description"], (method, path, status)
    recognise = document["paths"]["/api/v1/recognitions"]["post"]
    assert {"200", "202", "400", "413", "503", "504"} <= set(recognise["responses"])
    unavailable = components["Unavailable"]
    assert "Retry-After" in unavailable["headers"]
    assert "Location" in components["Timeout"]["headers"]
    assert "Location" in components["Queued"]["headers"]
    body = recognise["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body == {"$ref": "#/components/schemas/ImageForm"}
    wait = next(p for p in recognise["parameters"] if p["name"] == "wait")
    assert set(wait["schema"]["enum"]) == TRUE_WORDS | FALSE_WORDS


def test_a_route_without_an_operation_fails_the_build() -> None:
    app = _app()

    @app.get("/api/v1/undocumented")
    def undocumented() -> str:
        """No YAML here."""
        return "x"

    with pytest.raises(UndocumentedRoute, match=r"GET /api/v1/undocumented"):
        build(app)


def test_api_key_requirements_follow_the_settings() -> None:
    def operation(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
        op: dict[str, Any] = document["paths"][path][method]
        return op

    plain = build(_app("k"))
    assert "security" not in operation(plain, "/api/v1/recognitions", "post")
    assert operation(plain, "/api/v1/identities/{name}", "delete")["security"] == [
        {"ApiKey": []}]
    assert "401" in operation(plain, "/api/v1/identities/{name}/images", "post")["responses"]
    assert "security" not in operation(plain, "/api/v1/dashboard", "get")  # loopback bind

    strict = build(_app("k", require_key_for_recognition=True, bind="0.0.0.0:80"))
    for path, method in (("/api/v1/recognitions", "post"),
                         ("/api/v1/recognitions/{request_id}", "get")):
        op = operation(strict, path, method)
        assert op["security"] == [{"ApiKey": []}]
        assert {"401", "403"} <= set(op["responses"])
    dashboard = operation(strict, "/api/v1/dashboard", "get")
    assert dashboard["security"] == [{"ApiKey": []}, {"DashboardBasic": []}]
    assert "401" in dashboard["responses"]

    closed = build(_app(None, bind="0.0.0.0:80"))
    assert "403" in operation(closed, "/api/v1/dashboard", "get")["responses"]
    assert "security" not in operation(closed, "/api/v1/identities/{name}", "delete")
