"""Prometheus metrics read from the core's plain counters at scrape time.

The sans-IO core counts with ints and Counters (no Prometheus objects on the hot
path); this collector turns them into metric families only when ``/metrics`` is read.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..bridges.gateway import Gateway
from ..presence.agent import Agent
from ..sip.endpoint import Endpoint
from ..store.base import Store
from ..store.commit import GroupCommit

__all__ = ["BridgeCollector", "SipCollector", "PresenceCollector", "StoreCollector"]


class SipCollector(Collector):
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def collect(self) -> Iterator[Metric]:
        stats = self.endpoint.stats
        requests = CounterMetricFamily(
            "sipresence_sip_requests", "SIP requests received, retransmissions included",
            labels=["method"])
        for method, count in sorted(stats.requests.items()):
            requests.add_metric([method], count)
        yield requests
        sent = CounterMetricFamily("sipresence_sip_responses_sent", "SIP responses sent",
                                   labels=["status"])
        for status, count in sorted(stats.responses_sent.items()):
            sent.add_metric([str(status)], count)
        yield sent
        received = CounterMetricFamily(
            "sipresence_sip_responses_received", "SIP responses received", labels=["status"])
        for status, count in sorted(stats.responses_received.items()):
            received.add_metric([str(status)], count)
        yield received
        malformed = CounterMetricFamily(
            "sipresence_sip_malformed", "Malformed SIP messages, by reason", labels=["reason"])
        for reason, count in sorted(stats.malformed.items()):
            malformed.add_metric([reason], count)
        yield malformed
        yield CounterMetricFamily("sipresence_sip_retransmissions_absorbed",
                                  "Request retransmissions answered by the transaction layer",
                                  value=stats.retransmissions_absorbed)
        yield CounterMetricFamily("sipresence_sip_shed",
                                  "New requests answered 503 while overloaded",
                                  value=stats.shed)
        yield GaugeMetricFamily("sipresence_sip_overloaded",
                                "1 while new requests are being shed",
                                value=int(self.endpoint.admission.overloaded))
        yield GaugeMetricFamily("sipresence_sip_admitted_share",
                                "Share of new requests taken on (1: all, less while overloaded)",
                                value=self.endpoint.admission.admit)
        yield CounterMetricFamily("sipresence_sip_transaction_timeouts",
                                  "Client or INVITE server transactions that timed out",
                                  value=stats.timeouts)
        yield CounterMetricFamily("sipresence_sip_transport_errors",
                                  "Messages the network could not deliver",
                                  value=stats.transport_errors)
        yield GaugeMetricFamily("sipresence_sip_transactions", "Live SIP transactions",
                                value=self.endpoint.transaction_count())


class PresenceCollector(Collector):
    """Live presence state: publications, registrations, subscriptions per package."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("sipresence_publications", "Live publications",
                                value=len(self.agent.publications))
        yield GaugeMetricFamily("sipresence_registrations", "Live registrar bindings",
                                value=len(self.agent.registrar.all()))
        subscriptions = GaugeMetricFamily("sipresence_subscriptions",
                                          "Live subscriptions", labels=["package"])
        counts: dict[str, int] = {name: 0 for name in self.agent.packages}
        for subscription in self.agent.notifier.all():
            counts[subscription.package] = counts.get(subscription.package, 0) + 1
        for package, count in sorted(counts.items()):
            subscriptions.add_metric([package], count)
        yield subscriptions
        yield GaugeMetricFamily("sipresence_roster_watchers",
                                "Watchers of other networks (chat users)",
                                value=len(self.agent.roster))
        yield CounterMetricFamily("sipresence_messages_delivered",
                                  "Instant messages a registered device took",
                                  value=self.agent.pager.sent)
        yield CounterMetricFamily("sipresence_messages_failed",
                                  "Instant messages no registered device took",
                                  value=self.agent.pager.failed)


class BridgeCollector(Collector):
    """The XMPP bridge: whether its link is up, and what crossed it."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        gateway = self.gateway
        yield GaugeMetricFamily("sipresence_xmpp_connected",
                                "1 while the XMPP component is authenticated",
                                value=int(gateway.online))
        for name, text, value in (
                ("connections", "Times the XMPP component came online", gateway.connections),
                ("stanzas_received", "Presence and message stanzas from XMPP",
                 gateway.received),
                ("stanzas_sent", "Presence and message stanzas to XMPP", gateway.sent)):
            yield CounterMetricFamily(f"sipresence_xmpp_{name}", text, value=value)


class StoreCollector(Collector):
    """The writer's batches and failures, and what group commit holds back."""

    def __init__(self, store: Store, commit: GroupCommit) -> None:
        self.store = store
        self.commit = commit

    def collect(self) -> Iterator[Metric]:
        health, commit = self.store.health(), self.commit
        for name, text, value in (
                ("batches_written", "store transactions committed", health.batches_written),
                ("rows_written", "rows written by the store", health.rows_written),
                ("write_failures", "store transactions that failed", health.write_failures),
                ("rows_dropped", "rows the store could never write, left out",
                 health.rows_dropped),
                ("answers_withdrawn", "2xx answers replaced by 500 since their change "
                 "could not be committed", commit.withdrawn)):
            yield CounterMetricFamily(f"sipresence_store_{name}", text, value=value)
        yield GaugeMetricFamily("sipresence_store_writable",
                                "1 while the store writes, 0 while it fails",
                                value=1 if commit.writable else 0)
        yield GaugeMetricFamily("sipresence_store_held_messages",
                                "messages held until their changes are committed",
                                value=commit.held)
