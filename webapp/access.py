"""Who may call what.

- ``X-API-Key`` (the value of ``FACEFLEET_API_KEY``) on the views marked with
  :func:`require_api_key`: gallery writes always (scope ``writes``), recognitions when
  ``FACEFLEET_REQUIRE_API_KEY_FOR_RECOGNITION`` is on (scope ``recognitions``). Without
  a configured key nothing is checked.
- The dashboard (its blueprint: ``/dashboard`` and ``/api/v1/dashboard``) needs the key
  when ``WebSettings.dashboard_guarded`` (by default: the web tier listens beyond
  loopback), as ``X-API-Key`` or as the password of HTTP basic auth, which a browser asks
  for by itself. A guarded dashboard with no key configured stays closed (403): an open
  one would show the fleet to anyone who can reach the port.

The OpenAPI document (:mod:`webapp.openapi`) reads the same marks and
:func:`key_required`, so what it says is what the server does.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Callable
from functools import wraps
from typing import Literal, ParamSpec, TypeVar

from flask import Flask, request

from config.env import ConfigError
from config.settings import Settings
from config.web import WebSettings
from webapp.errors import ApiError
from webapp.services import get_services

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
Scope = Literal["writes", "recognitions"]
#: The attribute :func:`require_api_key` sets on a view (read by the OpenAPI builder).
SCOPE_ATTRIBUTE = "facefleet_api_key_scope"
HEADER = "X-API-Key"
DASHBOARD_BLUEPRINT = "dashboard"
REALM = 'Basic realm="facefleet dashboard", charset="UTF-8"'

_NEEDS = {
    "writes": "Identity enrolment and removal need",
    "recognitions": "Recognitions on this server need (FACEFLEET_REQUIRE_API_KEY_FOR_RECOGNITION "
                    "is on)",
}


def key_required(scope: Scope, settings: Settings, web: WebSettings) -> bool:
    """Whether requests of ``scope`` must carry the API key on this server."""
    if not settings.api_key:
        return False
    return scope == "writes" or web.require_key_for_recognition


def require_api_key(scope: Scope) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a view as needing ``X-API-Key`` in ``scope``: 401 without it, 403 when wrong."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            services = get_services()
            if key_required(scope, services.settings, services.web):
                assert services.settings.api_key is not None
                _check_header(services.settings.api_key, _NEEDS[scope])
            return view(*args, **kwargs)

        setattr(wrapper, SCOPE_ATTRIBUTE, scope)
        return wrapper

    return decorate


def scope_of(view: Callable[..., object]) -> Scope | None:
    """The scope :func:`require_api_key` gave ``view``; None when it has none."""
    scope: Scope | None = getattr(view, SCOPE_ATTRIBUTE, None)
    return scope


def _check_header(expected: str, needs: str) -> None:
    given = request.headers.get(HEADER)
    if not given:
        raise ApiError(f"{needs} the header '{HEADER}: <key>' (the value of "
                       "FACEFLEET_API_KEY on the server).", "api_key_required", status=401,
                       headers={"WWW-Authenticate": HEADER})
    if not _same(given, expected):
        raise ApiError(f"The {HEADER} header does not match the server's FACEFLEET_API_KEY.",
                       "api_key_invalid", status=403)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def check_config(settings: Settings, web: WebSettings) -> None:
    """Refuse settings that ask for a key nobody can give; warn about a closed dashboard."""
    if web.require_key_for_recognition and not settings.api_key:
        raise ConfigError("FACEFLEET_REQUIRE_API_KEY_FOR_RECOGNITION=true needs "
                          "FACEFLEET_API_KEY: set the key, or turn the option off")
    if web.dashboard_guarded and not settings.api_key:
        log.warning("the dashboard is closed (403): the web tier listens on %s, beyond "
                    "loopback, and FACEFLEET_API_KEY is unset; set it (the dashboard then "
                    "asks for it) or FACEFLEET_DASHBOARD_GUARD=off", web.bind)


def init_app(app: Flask) -> None:
    """Check the settings and guard the dashboard's blueprint."""
    services = app.extensions["facefleet"]
    check_config(services.settings, services.web)

    @app.before_request
    def _guard_dashboard() -> None:
        if request.blueprint == DASHBOARD_BLUEPRINT:
            guard_dashboard(services.settings, services.web)


def guard_dashboard(settings: Settings, web: WebSettings) -> None:
    """Raise 401/403 unless the dashboard is open here or the request carries the key."""
    if not web.dashboard_guarded:
        return
    if not settings.api_key:
        raise ApiError(f"The dashboard is closed: the web tier listens on {web.bind} (beyond "
                       "loopback) and FACEFLEET_API_KEY is unset. Set FACEFLEET_API_KEY (the "
                       "dashboard then asks for it), or FACEFLEET_DASHBOARD_GUARD=off to "
                       "serve it unguarded (e.g. behind an authenticating proxy).",
                       "dashboard_closed", status=403)
    given = request.headers.get(HEADER) or _basic_password()
    if not given:
        raise ApiError("The dashboard needs the API key: HTTP basic auth with the value of "
                       f"FACEFLEET_API_KEY as the password (any user name), or the header "
                       f"'{HEADER}: <key>'.", "api_key_required", status=401,
                       headers={"WWW-Authenticate": REALM})
    if not _same(given, settings.api_key):
        raise ApiError("Wrong API key for the dashboard (it is the server's "
                       "FACEFLEET_API_KEY).", "api_key_invalid", status=401,
                       headers={"WWW-Authenticate": REALM})


def _basic_password() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None
