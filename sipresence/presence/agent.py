"""The presence agent as the SIP endpoint's transaction user.

The agent receives every new request once (retransmissions are absorbed below it)
and routes it by method.  It advertises exactly what it implements: ``Allow`` lists
the methods with a handler, ``Allow-Events`` the registered event packages and
``Accept`` the body types they take, so OPTIONS, 405 and 489 answers stay true as
capabilities are added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..sip.endpoint import Peer
from ..sip.message import Request, Response
from ..sip.uas import make_response

__all__ = ["Agent"]

Handler = Callable[[Request, Peer, float], Response | None]


class Agent:
    """Dispatches requests to handlers and describes the agent's capabilities."""

    supported: tuple[str, ...] = ()

    def __init__(self, domains: Iterable[str] = (), user_agent: str = "sipresence") -> None:
        self.domains = frozenset(d.lower() for d in domains)
        self.user_agent = user_agent
        self.handlers: dict[str, Handler] = {"OPTIONS": self._options}
        self.event_packages: list[str] = []
        self.accept: list[str] = []

    @property
    def allowed_methods(self) -> tuple[str, ...]:
        return tuple(self.handlers)

    def capabilities(self) -> list[tuple[str, str]]:
        """Allow, Accept, Allow-Events and Supported, as OPTIONS answers them."""
        headers = [("Allow", ", ".join(self.allowed_methods)),
                   ("Accept", ", ".join(self.accept))]
        if self.event_packages:
            headers.append(("Allow-Events", ", ".join(self.event_packages)))
        headers.append(("Supported", ", ".join(self.supported)))
        return headers

    def handle_request(self, request: Request, peer: Peer, now: float) -> Response | None:
        return self.handlers[request.method](request, peer, now)

    def _options(self, request: Request, peer: Peer, now: float) -> Response:
        return make_response(request, 200, headers=[*self.capabilities(),
                                                    ("Server", self.user_agent)])
