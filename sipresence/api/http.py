"""The HTTP side of the agent (twisted.web): metrics now, the JSON API as it grows."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry
from prometheus_client.twisted import MetricsResource
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

__all__ = ["build_site"]


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
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"error": self.message}).encode()


def build_site(registry: CollectorRegistry) -> Site:
    root = _Root()
    root.putChild(b"metrics", MetricsResource(registry=registry))
    site = Site(root)
    site.noisy = False
    site.displayTracebacks = False
    return site
