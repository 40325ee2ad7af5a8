"""The HTTP side of the agent (twisted.web): metrics and the JSON API.

Paths take an address of record URL-encoded, with or without ``sip:``
(``/v1/presentities/alice%40example.com``), as DESIGN.md's API contract says.
Errors are JSON ``{"error": "..."}``.  Handlers run on the reactor thread, like the
SIP side, so they call the sans-IO agent directly and then let the driver send
whatever NOTIFYs the change caused.

=====================================================  ==================================
``GET /v1/presentities/{aor}``                         the composed state in short;
                                                       ``?format=pidf`` the document
``PUT /v1/presentities/{aor}``                         ``{"basic", "activities", "note",
                                                       "expires"}``: the ``api`` source,
                                                       composed and notified like a
                                                       device's PUBLISH
``DELETE /v1/presentities/{aor}``                      removes the ``api`` source
``GET /v1/route?callee=..``                            what an INVITE would be answered
``GET /v1/events[?aor=..]``                            server-sent events at each change
``GET /v1/presentities/{aor}/watchers``                watchers, their state, the rules
``PUT|DELETE /v1/presentities/{aor}/rules/{watcher}``  who may watch (RFC 5025
                                                       sub-handling: allow, confirm,
                                                       block), per address or domain
``GET /metrics``                                       Prometheus
=====================================================  ==================================
"""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.twisted import MetricsResource
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

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
    def __init__(self, code: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def render(self, request: Request) -> bytes:
        if self.retry_after is not None:
            request.setHeader(b"retry-after", str(self.retry_after).encode())
        return _json(request, self.code, {"error": self.message})


def _arg(request: Request, name: bytes) -> str | None:
    """The first value of query parameter *name*."""
    values = request.args.get(name) if request.args is not None else None
    return values[0].decode("utf-8", "replace") if values else None


def _json(request: Request, code: int, value: object) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode()


class _AgentResource(Resource):
    """A leaf of the API: it reads and changes the agent, and has the driver send."""

    isLeaf = True

    def __init__(self, agent: Any, driver: Any) -> None:
        super().__init__()
        self.agent = agent
        self.driver = driver


class PresentitiesResource(_AgentResource):
    """``/v1/presentities/...``: one leaf that routes on the rest of the path.

    A change (PUT, DELETE) is answered once it is committed, as a SIP 2xx is (group
    commit): 503 with Retry-After instead when the store cannot write, before or
    after the change was made, and while the agent stops (a change made during the
    drain could be committed at the close without its answer).
    """

    def render(self, request: Request) -> bytes | int:
        changes = request.method in (b"PUT", b"DELETE")
        try:
            if changes and self.agent.refusing is not None:
                raise ApiError(503, "the store cannot write now", self.agent.refusing)
            if changes and self.driver.closing:
                raise ApiError(503, "the agent is stopping", 1)
            code, value = self._route(request)
        except ApiError as exc:
            return exc.render(request)
        if isinstance(value, bytes):  # a document, not JSON
            request.setResponseCode(code)
            request.setHeader(b"content-type", b"application/pidf+xml")
            return value
        if not changes:
            return _json(request, code, value)
        lost: list[object] = []
        request.notifyFinish().addErrback(lost.append)

        def answer(outcome: object) -> None:
            if lost:
                return  # the client went away
            if outcome is None:
                request.write(_json(request, code, value))
            else:
                request.write(ApiError(503, "the change could not be stored",
                                       self.agent.refusing or 1).render(request))
            request.finish()

        self.driver.durable().addBoth(answer)
        return NOT_DONE_YET

    def _route(self, request: Request) -> tuple[int, object]:
        # twisted.web has decoded the %-escapes of each segment already.
        parts = [p.decode("utf-8", "replace") for p in request.postpath or ()]
        method = request.method
        if len(parts) == 1 and parts[0]:
            self._allow(method, b"GET", b"PUT", b"DELETE")
            aor = self._aor(parts[0])
            if method == b"GET":
                if _arg(request, b"format") == "pidf":
                    return 200, self.agent.presentities.get(aor).body(
                        "application/pidf+xml")
                return 200, presentity_state(self.agent, aor)
            if method == b"PUT":
                self._put_state(aor, self._body(request))
            elif not self.driver.call(self.agent.clear_api_state, aor):
                raise ApiError(404, "no api source for this presentity")
            return 200, presentity_state(self.agent, aor)
        if len(parts) == 2 and parts[1] == "watchers":
            self._allow(method, b"GET")
            return 200, self._watchers(self._aor(parts[0]))
        if len(parts) == 3 and parts[1] == "rules" and parts[2]:
            self._allow(method, b"PUT", b"DELETE")
            aor, watcher = self._aor(parts[0]), self._watcher(parts[2])
            if method == b"PUT":
                action = self._body(request).get("sub_handling")
                try:
                    rule = self.driver.call(self.agent.set_rule, aor, watcher, action)
                except ValueError as exc:
                    raise ApiError(400, str(exc)) from None
            else:
                rule = self.driver.call(self.agent.remove_rule, aor, watcher)
                if rule is None:
                    raise ApiError(404, "no rule for this watcher")
            return 200, {"presentity": rule.presentity, "watcher": rule.watcher,
                         "sub_handling": rule.action if method == b"PUT" else None}
        raise ApiError(404, "no such resource")

    def _put_state(self, aor: str, body: dict[str, Any]) -> None:
        unknown = set(body) - {"basic", "activities", "note", "expires"}
        if unknown:
            raise ApiError(400, f"unknown fields: {', '.join(sorted(unknown))}")
        activities = body.get("activities") or []
        note = body.get("note")
        expires = body.get("expires")
        if not isinstance(activities, list) or not all(isinstance(a, str) for a in activities):
            raise ApiError(400, "activities must be a list of RPID activity names")
        if note is not None and (not isinstance(note, str) or len(note) > 1000):
            raise ApiError(400, "note must be a string of at most 1000 characters")
        if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)):
            raise ApiError(400, "expires must be a whole number of seconds")
        try:
            self.driver.call(self.agent.set_api_state, aor, body.get("basic"), activities,
                             note, expires)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None

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
        if text.lower().startswith("xmpp:"):  # a chat user of a domain not bridged
            local, at, host = text[5:].rpartition("@")
            if not at or not local or not host or any(c.isspace() or c in "/;?<>\"" for c in text):
                raise ApiError(400, f"not an XMPP address: {text!r}")
            return f"xmpp:{local.lower()}@{host.lower()}"
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
             "state": s.state.value, "expires": max(0, int(s.expires_at - now)),
             "network": "sip"}
            for package in ("presence", "dialog")
            for s in self.agent.notifier.watchers(package, aor)]
        # Watchers of other networks (chat users) hold no SIP dialog and no expiry.
        watchers += [{"watcher": e.watcher, "display_name": None, "package": "presence",
                      "state": e.state, "expires": None, "network": e.network}
                     for e in self.agent.roster.watchers(aor)]
        rules = [{"watcher": r.watcher, "sub_handling": r.action}
                 for r in self.agent.authorization.rules(aor)]
        return {"presentity": aor, "watchers": watchers, "rules": rules,
                "default": self.agent.authorization.default}


def presentity_state(agent: Any, aor: str) -> dict[str, object]:
    """What ``GET /v1/presentities/{aor}`` answers: the composed state in short."""
    presentity = agent.presentities.get(aor)
    summary = presentity.summary
    sources: list[dict[str, object]] = [
        {"id": source.id, "updated": source.updated}
        for source in agent.presentities.sources(aor)]
    return {"aor": aor, "basic": summary.basic, "activities": list(summary.activities),
            "note": summary.note, "on_the_phone": summary.on_the_phone,
            "version": agent.presentities.version(aor), "sources": sources}


class RouteResource(_AgentResource):
    """``GET /v1/route?callee=..[&caller=..]``: the decision an INVITE would get."""

    def render(self, request: Request) -> bytes:
        if request.method != b"GET":
            return _json(request, 405, {"error": "use GET"})
        callee = _arg(request, b"callee")
        if not callee:
            return _json(request, 400, {"error": "callee is missing"})
        try:
            aor = self.agent.address(callee)
        except ValueError:
            return _json(request, 400, {"error": "callee is not a SIP address"})
        decision = self.agent.route(aor, self.driver.now())
        return _json(request, 200, {
            "callee": aor, "action": decision.action, "status": decision.status,
            "retry_after": decision.retry_after, "targets": list(decision.targets),
            "note": decision.note, "why": decision.why})


class EventsResource(_AgentResource):
    """``GET /v1/events[?aor=..]``: server-sent events, ``event: presence`` with the
    state of ``GET /v1/presentities/{aor}`` as data, at each change.

    Changes are gathered and sent once the reactor is done with the input that made
    them (a PUBLISH that changes one presentity three ways sends one event); the
    state is composed only for presentities some client listens to.  A comment line
    every 15 s keeps idle connections open through proxies.
    """

    KEEPALIVE = 15.0

    def __init__(self, agent: Any, driver: Any) -> None:
        super().__init__(agent, driver)
        self.clients: dict[Request, str | None] = {}  # request -> the aor it follows
        self._changed: set[str] = set()
        self._flush: Any = None
        self._keepalive: Any = None
        agent.presence_listeners.append(self._presence_changed)

    def render(self, request: Request) -> bytes | int:
        if request.method != b"GET":
            return _json(request, 405, {"error": "use GET"})
        aor = _arg(request, b"aor")
        if aor is not None:
            try:
                aor = str(self.agent.address(aor))
            except ValueError:
                return _json(request, 400, {"error": "aor is not a SIP address"})
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        request.write(b": sipresence presence events\n\n")
        if aor is not None:  # where it stands now, then each change
            request.write(self._event(aor))
        self.clients[request] = aor
        request.notifyFinish().addBoth(lambda _: self._gone(request))
        if self._keepalive is None:
            self._keepalive = self.driver.reactor.callLater(self.KEEPALIVE, self._ping)
        return NOT_DONE_YET

    def _gone(self, request: Request) -> None:
        self.clients.pop(request, None)
        if not self.clients and self._keepalive is not None and self._keepalive.active():
            self._keepalive.cancel()
            self._keepalive = None

    def _ping(self) -> None:
        self._keepalive = None
        for request in list(self.clients):
            request.write(b": keep-alive\n\n")
        if self.clients:
            self._keepalive = self.driver.reactor.callLater(self.KEEPALIVE, self._ping)

    def _presence_changed(self, aor: str) -> None:
        if not any(wanted is None or wanted == aor for wanted in self.clients.values()):
            return
        self._changed.add(aor)
        if self._flush is None:
            self._flush = self.driver.reactor.callLater(0, self._send)

    def _send(self) -> None:
        self._flush = None
        changed, self._changed = self._changed, set()
        for aor in sorted(changed):
            event = self._event(aor)
            for request, wanted in list(self.clients.items()):
                if wanted is None or wanted == aor:
                    request.write(event)

    def _event(self, aor: str) -> bytes:
        state = presentity_state(self.agent, aor)
        return b"event: presence\ndata: " + json.dumps(state).encode() + b"\n\n"


def build_site(registry: CollectorRegistry, agent: Any = None, driver: Any = None) -> Site:
    root = _Root()
    root.putChild(b"metrics", MetricsResource(registry=registry))
    if agent is not None:
        v1 = _Root()
        v1.putChild(b"presentities", PresentitiesResource(agent, driver))
        v1.putChild(b"route", RouteResource(agent, driver))
        v1.putChild(b"events", EventsResource(agent, driver))
        root.putChild(b"v1", v1)
    site = Site(root)
    site.noisy = False
    site.displayTracebacks = False
    return site
