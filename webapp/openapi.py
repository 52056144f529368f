"""``GET /api/v1/openapi.json``: the JSON API as an OpenAPI 3.1 document, generated from
the running app.

apispec builds it: its Flask plugin turns each route's rule into a path and reads the
route's operations from the YAML after ``---`` in its view's docstring (next to the
code it describes); :class:`FacefleetPlugin` adds what the code knows -- the path
parameters from the rule, the API key where :mod:`webapp.access` asks for it on this
server (and its 401/403 answers) -- and :mod:`webapp.openapi_components` holds the
shared schemas, responses and headers the YAML names. A documented route (every
``/api/v1`` rule, ``/healthz``, ``/metrics``) whose docstring lacks an operation for one
of its methods fails the build, so the document cannot silently fall behind the routes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from apispec import APISpec, BasePlugin, yaml_utils
from apispec_webframeworks.flask import FlaskPlugin
from flask import Blueprint, Flask, Response, current_app, jsonify
from werkzeug.routing import Rule

from webapp import openapi_components
from webapp.access import DASHBOARD_BLUEPRINT, key_required, scope_of
from webapp.services import Services

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

API_VERSION = "1.0.0"
PREFIX = "/api/v1/"
#: Routes outside PREFIX that are part of the machine interface.
EXTRA_PATHS = frozenset({"/healthz", "/metrics"})
#: Methods every Flask rule answers by itself.
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})
EXTENSION = "facefleet_openapi"
DESCRIPTION = (
    "facefleet recognises faces in images on an autoscaling fleet of workers. Errors are "
    "JSON `{error, message, status}` with a message saying what to do. Generated from the "
    "server's routes and settings: the API key requirements listed are this server's.")


class UndocumentedRoute(RuntimeError):
    """A documented route's view has no OpenAPI operation for one of its methods."""


def is_documented(rule: Rule) -> bool:
    """Whether ``rule`` belongs in the document (the machine interface)."""
    return rule.rule.startswith(PREFIX) or rule.rule in EXTRA_PATHS


class FacefleetPlugin(BasePlugin):
    """Path parameters from the Flask rule, and the API key where this server needs it."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def path_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                    parameters: list[dict[str, Any]] | None = None, **kwargs: Any
                    ) -> str | None:
        """Declare each of the rule's arguments as a path parameter (path level)."""
        rule: Rule = kwargs["rule"]
        assert parameters is not None
        for argument in sorted(rule.arguments):
            parameters.append(openapi_components.path_parameter(argument))
        return None

    def operation_helper(self, path: str | None = None,
                         operations: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Add ``security`` and the 401/403 answers to the operations that need the key."""
        assert operations is not None
        rule: Rule = kwargs["rule"]
        view: Callable[..., Any] = kwargs["view"]
        settings, web = self.services.settings, self.services.web
        scope = scope_of(view)
        if scope is not None and key_required(scope, settings, web):
            _secure(operations, [{"ApiKey": []}], {"401": "Unauthorized", "403": "Forbidden"})
        elif rule.endpoint.startswith(DASHBOARD_BLUEPRINT + ".") and web.dashboard_guarded:
            if settings.api_key:
                _secure(operations, [{"ApiKey": []}, {"DashboardBasic": []}],
                        {"401": "DashboardUnauthorized"})
            else:
                _secure(operations, [], {"403": "DashboardClosed"})


def _secure(operations: dict[str, Any], security: list[dict[str, list[str]]],
            responses: dict[str, str]) -> None:
    for operation in operations.values():
        if security:
            operation["security"] = security
        operation.setdefault("responses", {}).update(responses)


def build(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s documented routes, as JSON-ready data.

    Raises UndocumentedRoute when a documented rule's view has no operation for one of
    its methods.
    """
    services: Services = app.extensions["facefleet"]
    spec = APISpec(title="facefleet", version=API_VERSION, openapi_version="3.1.0",
                   plugins=[FlaskPlugin(), FacefleetPlugin(services)],
                   info={"description": DESCRIPTION})
    openapi_components.register(spec, services.web)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not is_documented(rule):
            continue
        view = app.view_functions[rule.endpoint]
        methods = {m.lower() for m in (rule.methods or set()) - IMPLICIT_METHODS}
        documented = yaml_utils.load_operations_from_docstring(view.__doc__ or "")
        missing = sorted(methods - documented.keys())
        if missing:
            raise UndocumentedRoute(
                f"{', '.join(m.upper() for m in missing)} {rule.rule} ({rule.endpoint}) has no "
                "OpenAPI operation: add it to the YAML after '---' in the view's docstring")
        spec.path(view=view, app=app, rule=rule)
    # JSON keys are strings (status codes included): the validator and clients see this.
    document: dict[str, Any] = json.loads(json.dumps(spec.to_dict()))
    return document


def document_of(app: Flask) -> dict[str, Any]:
    """``app``'s document, built on first use (routes and settings are fixed by then)."""
    document: dict[str, Any] | None = app.extensions.get(EXTENSION)
    if document is None:
        document = app.extensions[EXTENSION] = build(app)
    return document


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """This API's OpenAPI 3.1 document.
    ---
    get:
      summary: This API's OpenAPI 3.1 document
      operationId: getOpenApiDocument
      responses:
        "200":
          description: The document (generated from the server's routes and settings).
          content:
            application/json:
              schema: OpenApiDocument
    """
    return jsonify(document_of(current_app))
