"""The shared parts of the OpenAPI document (:mod:`webapp.openapi`): the bodies the JSON
API answers with (JSON Schema 2020-12, as OpenAPI 3.1 uses), the error answers with their
headers, the upload bodies, the path parameters and the security schemes. The view
docstrings name them (``schema: Recognition``, ``"503": Unavailable``).
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from config.web import WebSettings
from tasks.keys import REQUEST_ID

REQUEST_ID_SCHEMA = {"type": "string", "pattern": f"^{REQUEST_ID.pattern}$",
                     "description": "32 lowercase hex digits, as POST /api/v1/recognitions "
                                    "returns"}
# recognition.gallery's rule (1-64 letters, digits, spaces and ._-, no space at either
# end); all-dot names are left out: HTTP clients fold "." and ".." path segments away.
NAME_SCHEMA = {"type": "string", "pattern": r"^[A-Za-z0-9._-]([A-Za-z0-9 ._-]{0,62}"
                                            r"[A-Za-z0-9._-])?$",
               "not": {"pattern": r"^\.+$"},
               "description": "1-64 letters, digits, spaces and ._- (no space at either end; "
                              "not `Unknown` or `NoFace`)"}
PATH_SCHEMAS: dict[str, dict[str, Any]] = {"request_id": REQUEST_ID_SCHEMA,
                                           "name": NAME_SCHEMA}

NUMBER = {"type": "number"}
INTEGER = {"type": "integer", "minimum": 0}
STRING = {"type": "string"}
OBJECT = {"type": "object"}
TIMINGS = {"type": "object", "additionalProperties": NUMBER,
           "description": "seconds per stage (submit, wait, web_total, decode, detect, ...)"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object", "required": ["error", "message", "status"],
        "properties": {
            "error": {"type": "string", "description": "machine-readable code, e.g. "
                                                       "not_an_image, unavailable"},
            "message": {"type": "string", "description": "what went wrong and what to do"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "request_id": {"type": "string", "description": "the request concerned, when "
                                                            "there is one"},
            "location": {"type": "string", "description": "where to collect the result "
                                                          "later (504)"},
        },
    },
    "Face": {
        "type": "object", "required": ["box", "probability", "identity", "distance"],
        "properties": {
            "box": {"type": "array", "items": NUMBER, "minItems": 4, "maxItems": 4,
                    "description": "[x1, y1, x2, y2] in pixels"},
            "probability": {"type": "number", "minimum": 0, "maximum": 1},
            "identity": {"type": "string", "description": "an enrolled name or Unknown"},
            "distance": {"type": ["number", "null"],
                         "description": "to the nearest enrolled photo; null when the "
                                        "gallery is empty"},
        },
    },
    "Recognition": {
        "type": "object", "required": ["request_id", "status", "label", "faces", "timings"],
        "properties": {
            "request_id": REQUEST_ID_SCHEMA,
            "status": {"const": "done"},
            "label": {"type": "string", "description": "the primary face's identity, "
                                                       "Unknown or NoFace"},
            "faces": {"type": "array", "items": "Face"},
            "timings": TIMINGS,
            "batch": {"type": "integer", "minimum": 1,
                      "description": "images the worker recognised together with this "
                                     "one, itself included (dynamic batching)"},
            "stem": STRING,
            "image": {"type": "object", "properties": {"bucket": STRING, "key": STRING}},
        },
    },
    "RecognitionPending": {
        "type": "object", "required": ["request_id", "status"],
        "properties": {
            "request_id": REQUEST_ID_SCHEMA,
            "status": {"const": "pending"},
            "location": {"type": "string", "description": "where to collect the result"},
            "timings": TIMINGS,
        },
    },
    "Enrolment": {
        "type": "object", "required": ["name", "enrolled", "photos"],
        "properties": {"name": STRING, "enrolled": {"type": "integer", "minimum": 1},
                       "photos": {"type": "integer", "minimum": 1,
                                  "description": "the identity's photos after this call"}},
    },
    "IdentityList": {
        "type": "object", "required": ["identities", "count"],
        "properties": {
            "identities": {"type": "array", "items": {
                "type": "object", "required": ["name", "photos"],
                "properties": {"name": STRING, "photos": INTEGER}}},
            "count": INTEGER,
        },
    },
    "Removal": {
        "type": "object", "required": ["name", "removed"],
        "properties": {"name": STRING, "removed": {"const": True}},
    },
    "Fleet": {
        "type": "object",
        "required": ["endpoint", "region", "queue", "buckets", "state_object", "desired", "max",
                     "instances", "decisions", "autoscaler"],
        "properties": {
            "endpoint": {"type": "string", "description": "the AWS endpoint, or aws"},
            "region": STRING,
            "queue": {"type": "object",
                      "required": ["name", "dead_letter_queue", "visible", "in_flight"],
                      "properties": {"name": STRING, "dead_letter_queue": STRING,
                                     "visible": INTEGER, "in_flight": INTEGER}},
            "buckets": {"type": "object", "required": ["input", "output", "model"],
                        "properties": {"input": STRING, "output": STRING, "model": STRING}},
            "state_object": STRING,
            "desired": {"type": ["integer", "null"]},
            "max": {"type": ["integer", "null"]},
            "instances": {"type": "array", "items": OBJECT},
            "decisions": {"type": "array", "items": OBJECT},
            "autoscaler": {"type": "object", "required": ["published"],
                           "properties": {"published": {"type": "boolean"}}},
        },
    },
    "Health": {
        "type": "object", "required": ["status", "checks", "endpoint", "elapsed_s"],
        "properties": {
            "status": {"enum": ["ok", "degraded"]},
            "checks": {"type": "object", "properties": {"queue": {
                "type": "object", "required": ["ok"],
                "properties": {"ok": {"type": "boolean"}, "visible": INTEGER,
                               "in_flight": INTEGER, "message": STRING}}}},
            "endpoint": STRING,
            "elapsed_s": NUMBER,
        },
    },
    "Dashboard": {
        "type": "object", "required": ["generated_at", "poll_s", "fleet", "events", "monitor"],
        "properties": {
            "generated_at": NUMBER, "poll_s": NUMBER, "fleet": OBJECT,
            "events": {"type": ["object", "null"],
                       "description": "the Celery-event aggregate; null when events are off"},
            "monitor": OBJECT,
        },
    },
    "OpenApiDocument": {"type": "object", "required": ["openapi", "info", "paths"]},
}

HEADERS: dict[str, dict[str, Any]] = {
    "RetryAfter": {"description": "seconds to wait before retrying", "required": True,
                   "schema": {"type": "integer", "minimum": 0}},
    "Location": {"description": "where to collect the recognition's result",
                 "required": True, "schema": {"type": "string"}},
}


def _error(description: str, **headers: str) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description,
                                "content": {"application/json": {"schema": "Error"}}}
    if headers:
        response["headers"] = dict(headers)
    return response


RESPONSES: dict[str, dict[str, Any]] = {
    "BadRequest": _error("Missing field, not an image, a bad name, or an image the worker "
                         "could not use"),
    "Unauthorized": {**_error("The API key is required and missing (header X-API-Key)"),
                     "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
    "Forbidden": _error("The X-API-Key header does not match the server's key"),
    "NotFound": _error("No such request, identity or route"),
    "Conflict": _error("The gallery could not be read or changed"),
    "TooLarge": _error("The upload (or the number of files) is over the limit"),
    "BadGateway": _error("The task failed on the worker, or went to the dead-letter queue"),
    "Unavailable": _error("The AWS endpoint is unreachable, resources are missing, or the "
                          "server is at capacity; retry after Retry-After seconds",
                          **{"Retry-After": "RetryAfter"}),
    "Timeout": _error("No result in time; the request stays queued: collect it from Location",
                      Location="Location"),
    "Queued": {"description": "Queued; poll Location for the result",
               "headers": {"Location": "Location"},
               "content": {"application/json": {"schema": "RecognitionPending"}}},
    "Pending": {"description": "Not done yet; poll again after Retry-After seconds",
                "headers": {"Retry-After": "RetryAfter"},
                "content": {"application/json": {"schema": "RecognitionPending"}}},
    "DashboardUnauthorized": {
        **_error("The dashboard needs the API key (basic auth password or X-API-Key)"),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}},
    "DashboardClosed": _error("The dashboard is closed: the server listens beyond loopback "
                              "and has no API key configured"),
}

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "the value of FACEFLEET_API_KEY on the server"},
    "DashboardBasic": {"type": "http", "scheme": "basic",
                       "description": "any user name; the password is FACEFLEET_API_KEY"},
}


def upload_forms(web: WebSettings) -> dict[str, dict[str, Any]]:
    """The multipart forms the uploads send (the enrolment limit comes from ``web``)."""
    binary = {"type": "string", "format": "binary", "description": "a JPEG, PNG, GIF, BMP, "
                                                                   "TIFF or WebP image"}
    return {
        "ImageForm": {"type": "object", "required": ["image"], "properties": {"image": binary}},
        "EnrolmentForm": {"type": "object", "required": ["image"], "properties": {"image": {
            "type": "array", "items": binary, "minItems": 1, "maxItems": web.max_files,
            "description": "photos of one person, each with one clear face"}}},
    }


def path_parameter(argument: str) -> dict[str, Any]:
    """The path parameter of a Flask rule's ``argument`` (a plain string when unknown)."""
    return {"name": argument, "in": "path", "required": True,
            "schema": PATH_SCHEMAS.get(argument, {"type": "string"})}


def register(spec: APISpec, web: WebSettings) -> None:
    """Add every component to ``spec``."""
    for name, schema in {**SCHEMAS, **upload_forms(web)}.items():
        spec.components.schema(name, schema)
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    for name, response in RESPONSES.items():
        spec.components.response(name, response)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
