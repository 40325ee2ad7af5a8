"""Event packages carry their behaviour: a new one is a subclass and a registration,
and the agent serves it with no branch of its own."""

from __future__ import annotations

from sipresence.presence.packages import EventPackage
from sipresence.presence.subscription import Subscription
from tests.support.phone import Phone, subscribe_headers


class Weather(EventPackage):
    """A toy package: anyone from example.com may watch, others are refused; every
    watcher is told the same line of text."""

    def __init__(self) -> None:
        super().__init__("x-weather", notify_types=("text/plain",))
        self.forgotten: list[str] = []

    def authorize(self, watcher: str, resource: str) -> str:
        return "active" if watcher.endswith("@example.com") else "rejected"

    def render(self, subscription: Subscription, now: float) -> tuple[str, bytes]:
        return "text/plain", f"sunny at {subscription.resource}".encode()

    def forget(self, subscription: Subscription) -> None:
        self.forgotten.append(subscription.id)


def test_a_registered_package_is_advertised_subscribed_to_and_rendered():
    p = Phone()
    package = Weather()
    p.agent.register_package(package)
    options = p.request("OPTIONS")
    assert "x-weather" in options.headers.get("Allow-Events")
    ok = p.request("SUBSCRIBE", headers=subscribe_headers(accept="text/plain",
                                                          event="x-weather"))
    assert ok.status == 200
    [notify] = p.notifies()
    assert notify.headers.get("Event") == "x-weather"
    assert notify.body == b"sunny at sip:alice@example.com"
    refused = p.request("SUBSCRIBE", from_uri="sip:eve@elsewhere.test", from_tag="e1",
                        call_id="c2", headers=subscribe_headers(accept="text/plain",
                                                                event="x-weather"))
    assert refused.status == 403
    p.answer_all()
    gone = p.request("SUBSCRIBE", to_tag=ok.to.tag, cseq=2,
                     headers=subscribe_headers(accept="text/plain", event="x-weather",
                                               expires=0))
    assert gone.status == 200
    assert len(package.forgotten) == 1


def test_a_package_nobody_publishes_is_refused_489_on_publish():
    p = Phone()
    p.agent.register_package(Weather())
    refused = p.request("PUBLISH", headers=["Event: x-weather", "Content-Type: text/plain"],
                        body="rain")
    assert refused.status == 489
    assert "x-weather" not in refused.headers.get("Allow-Events")
