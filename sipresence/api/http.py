"""The HTTP side of the agent (twisted.web): metrics and the JSON API.

Paths take an address of record URL-encoded, with or without ``sip:``
(``/v1/presentities/alice%40example.com/...``), as DESIGN.md's API contract says.
Errors are JSON ``{"error": "..."}``.  Handlers run on the reactor thread, like the
SIP side, so they call the sans-IO agent directly and then let the driver send
whatever NOTIFYs the change caused.

Authorization (the person decides who may watch, RFC 5025 ``sub-handling``):

========================================================  =============================
``GET /v1/presentities/{aor}/watchers``                   the watchers of the presence
                                                          and dialog packages, their
                                                          state, and the rules
``PUT /v1/presentities/{aor}/rules/{watcher}``            body ``{"sub_handling":
                                                          "allow"|"confirm"|"block"}``;
                                                          *watcher* an address or a
                                                          domain
``DELETE /v1/presentities/{aor}/rules/{watcher}``         back to the default
========================================================  =============================
"""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.twisted import MetricsResource
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

__all__ = ["build_site"]

MAX_BODY = 64 * 1024


class _Root(Resource):
    """Answers unknown paths with a JSON 404, as the API's errors are JSON."""

    def getChild(self, path: bytes, request: Request) -> Resource:
        return _JsonError(404, "no such resource")


class _JsonError(Resource):
    isLeaf = True

    def __init__(self, code: int, message: str) -> None:
        super().__init__()
        self.code = code
        self.message = message

    def render(self, request: Request) -> bytes:
        return _json(request, self.code, {"error": self.message})


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _json(request: Request, code: int, value: object) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode()


class PresentitiesResource(Resource):
    """``/v1/presentities/...``: one leaf that routes on the rest of the path."""

    isLeaf = True

    def __init__(self, agent: Any, driver: Any) -> None:
        super().__init__()
        self.agent = agent
        self.driver = driver

    def render(self, request: Request) -> bytes:
        try:
            code, value = self._route(request)
        except ApiError as exc:
            return _json(request, exc.code, {"error": exc.message})
        return _json(request, code, value)

    def _route(self, request: Request) -> tuple[int, object]:
        # twisted.web has decoded the %-escapes of each segment already.
        parts = [p.decode("utf-8", "replace") for p in request.postpath or ()]
        method = request.method
        if len(parts) == 2 and parts[1] == "watchers":
            self._allow(method, b"GET")
            return 200, self._watchers(self._aor(parts[0]))
        if len(parts) == 3 and parts[1] == "rules" and parts[2]:
            self._allow(method, b"PUT", b"DELETE")
            aor, watcher = self._aor(parts[0]), self._watcher(parts[2])
            now = self.driver.now()
            if method == b"PUT":
                action = self._body(request).get("sub_handling")
                try:
                    rule = self.agent.set_rule(aor, watcher, action, now)
                except ValueError as exc:
                    raise ApiError(400, str(exc)) from None
            else:
                rule = self.agent.remove_rule(aor, watcher, now)
                if rule is None:
                    raise ApiError(404, "no rule for this watcher")
            self.driver.flush()
            return 200, {"presentity": rule.presentity, "watcher": rule.watcher,
                         "sub_handling": rule.action if method == b"PUT" else None}
        raise ApiError(404, "no such resource")

    @staticmethod
    def _allow(method: bytes, *allowed: bytes) -> None:
        if method not in allowed:
            raise ApiError(405, f"use {' or '.join(m.decode() for m in allowed)}")

    def _aor(self, text: str) -> str:
        try:
            return str(self.agent.address(text))
        except ValueError:
            raise ApiError(400, f"not a SIP address: {text!r}") from None

    def _watcher(self, text: str) -> str:
        """A watcher's address, or a bare domain (``example.com``) for all of it."""
        if "@" not in text and ":" not in text:
            if not text or any(c.isspace() or c in "/;?" for c in text):
                raise ApiError(400, f"not a domain: {text!r}")
            return text.lower()
        return self._aor(text)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        content_type = (request.getHeader(b"content-type") or b"application/json").lower()
        if not content_type.startswith(b"application/json"):
            raise ApiError(415, "send application/json")
        data = request.content.read(MAX_BODY + 1) if request.content is not None else b""
        if len(data) > MAX_BODY:
            raise ApiError(413, "body too large")
        try:
            value = json.loads(data or b"{}")
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "body is not JSON") from None
        if not isinstance(value, dict):
            raise ApiError(400, "body must be a JSON object")
        return value

    def _watchers(self, aor: str) -> dict[str, object]:
        now = self.driver.now()
        watchers = [
            {"watcher": s.watcher, "display_name": s.watcher_display, "package": s.package,
             "state": s.state.value, "expires": max(0, int(s.expires_at - now))}
            for package in ("presence", "dialog")
            for s in self.agent.notifier.watchers(package, aor)]
        rules = [{"watcher": r.watcher, "sub_handling": r.action}
                 for r in self.agent.authorization.rules(aor)]
        return {"presentity": aor, "watchers": watchers, "rules": rules,
                "default": self.agent.authorization.default}


def build_site(registry: CollectorRegistry, agent: Any = None, driver: Any = None) -> Site:
    root = _Root()
    root.putChild(b"metrics", MetricsResource(registry=registry))
    if agent is not None:
        v1 = _Root()
        v1.putChild(b"presentities", PresentitiesResource(agent, driver))
        root.putChild(b"v1", v1)
    site = Site(root)
    site.noisy = False
    site.displayTracebacks = False
    return site
