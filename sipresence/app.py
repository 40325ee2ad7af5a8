"""Service wiring: builds the agent from a Config and runs it on the reactor.

The asyncio reactor is installed first (DESIGN.md: same datagram cost as the default
reactor, and asyncio-native libraries can share the loop).  Logging goes through
twisted.logger, as text or one JSON object per line; the sans-IO core logs with the
standard ``logging`` module, forwarded here into the same observers.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import IO, Any

from . import __version__
from .config import Config

__all__ = ["run"]


def install_reactor() -> Any:
    """Install the asyncio reactor unless a reactor is already installed."""
    if "twisted.internet.reactor" not in sys.modules:
        from twisted.internet import asyncioreactor

        asyncioreactor.install(asyncio.new_event_loop())
    from twisted.internet import reactor

    return reactor


LIFECYCLE = "sipresence.lifecycle"  # a leaf: its level must not leak to others
# At SIGTERM, how long the answers held behind the last commits may take to go out
# before the listeners close (a store that writes takes milliseconds).
STOP_DRAIN = 5.0
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "error": logging.ERROR}


def setup_logging(fmt: str, level: str, stream: IO[str]) -> None:
    """Send twisted.logger events (and stdlib ``logging`` records) to *stream*."""
    from twisted.logger import (
        FilteringLogObserver,
        ILogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        formatEvent,
        globalLogBeginner,
        textFileLogObserver,
    )
    from zope.interface import provider

    if fmt == "json":
        @provider(ILogObserver)
        def observer(event: dict[str, Any]) -> None:
            record = {"time": event.get("log_time"),
                      "level": event["log_level"].name if "log_level" in event else "info",
                      "namespace": event.get("log_namespace"),
                      "message": formatEvent(event)}
            failure = event.get("log_failure")
            if failure is not None:
                record["traceback"] = failure.getTraceback()
            stream.write(json.dumps(record, default=str) + "\n")
            stream.flush()
    else:
        observer = textFileLogObserver(stream)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    # Start-up and shutdown lines ("ready", "stopped") print at every level: scripts
    # and service managers wait for them.
    predicate.setLogLevelForNamespace(LIFECYCLE, LogLevel.info)
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(observer, [predicate])],
                                     redirectStandardIO=False)

    class ToTwisted(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            from twisted.logger import Logger

            levels = {logging.DEBUG: LogLevel.debug, logging.INFO: LogLevel.info,
                      logging.WARNING: LogLevel.warn}
            Logger(namespace=record.name).emit(
                levels.get(record.levelno, LogLevel.error), "{message}",
                message=self.format(record))

    root = logging.getLogger("sipresence")
    root.handlers[:] = [ToTwisted()]
    root.setLevel(_LEVELS[level])
    root.propagate = False


def run(config: Config) -> int:
    """Run the agent until SIGTERM/SIGINT; returns the process exit status."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    reactor = install_reactor()
    setup_logging(config.log_format, config.log_level, sys.stdout)

    from twisted.internet.error import CannotListenError
    from twisted.logger import Logger

    from .store.base import StoreError

    log = Logger(namespace=LIFECYCLE)
    try:
        services = build_services(config, reactor)
    except StoreError as exc:
        log.error("cannot start: {error}", error=exc)
        return 1
    status = {"code": 0}

    def start() -> None:
        try:
            services.startService()
        except StoreError as exc:  # the database opened, but cannot be read back
            log.error("cannot start: {error}", error=exc)
            status["code"] = 1
            reactor.stop()
            return
        except (CannotListenError, OSError) as exc:
            log.error("cannot listen: {error}", error=exc)
            status["code"] = 2
            reactor.stop()
            return
        addresses = " ".join(s.address() for s in services if isinstance(s, ListenerService))
        log.info("sipresence {version} ready: {addresses}", version=__version__,
                 addresses=addresses)

    def stop() -> Any:
        if not services.running:
            return None
        driver = next(s for s in services if isinstance(s, DriverService)).driver

        def drained(held: int) -> Any:
            if held:
                log.warn("stopping: {held} answers held behind a commit that did not end "
                         "in {timeout:.0f} s were not sent", held=held, timeout=STOP_DRAIN)
            if driver.ignored:
                log.info("stopping: {ignored} messages that arrived meanwhile left unread "
                         "(their senders retransmit)", ignored=driver.ignored)
            return services.stopService()

        return driver.drain(STOP_DRAIN).addCallback(drained)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.run()
    if status["code"] == 0:
        log.info("sipresence stopped")
    return status["code"]


def build_services(config: Config, reactor: Any) -> Any:
    """The agent as a MultiService.

    Children start in order and stop in reverse: the store opens first and closes
    last, after the listeners stopped and the last changes were handed to it; the
    agent restores its state last, once the listeners are bound, so NOTIFYs caused by
    the restore leave from the right addresses.
    """
    from prometheus_client import CollectorRegistry
    from twisted.application.service import MultiService

    from .api.http import build_site
    from .api.metrics import PresenceCollector, SipCollector, StoreCollector
    from .net.driver import Driver
    from .net.tcp import listen_tcp
    from .net.udp import listen_udp
    from .presence.agent import CHANGES_STATE, Agent
    from .sip.admission import Admission
    from .sip.endpoint import Endpoint
    from .store.base import Store
    from .store.commit import GroupCommit
    from .store.sqlite import SqliteStore

    agent = Agent(domains=config.served_domains(), user_agent=f"sipresence/{__version__}",
                  config=config.presence)
    endpoint = Endpoint(agent, timers=config.timers, admission=Admission(
        retry_after=config.overload_retry_after, max_lag=config.overload_lag))
    driver = Driver(reactor, endpoint, agent)
    registry = CollectorRegistry()
    registry.register(SipCollector(endpoint))
    registry.register(PresenceCollector(agent))
    store: Store = SqliteStore(config.db)

    def refuse(retry_after: int | None) -> None:
        agent.refusing = retry_after

    commit = GroupCommit(
        agent.journal, store.submit, on_state=refuse,
        withdraw=partial(endpoint.withdraw, methods=CHANGES_STATE, status=500,
                         reason="Store Failure"))
    driver.hold_for(commit)
    registry.register(StoreCollector(store, commit))

    services = MultiService()
    StoreService(store, agent, driver).setServiceParent(services)
    DriverService(driver).setServiceParent(services)
    for address in config.listen:
        if address.transport == "udp":
            listen = partial(listen_udp, reactor, driver, address.host, address.port,
                             config.udp_buffer)
        elif address.transport == "tcp":
            listen = partial(listen_tcp, reactor, driver, address.host, address.port,
                             config.tcp_idle_timeout)
        elif address.transport == "tls":
            from .net.tls import listen_tls

            listen = partial(listen_tls, reactor, driver, address.host, address.port,
                             config.tcp_idle_timeout, config.tls_certificate, config.tls_key)
        elif address.transport == "ws":
            from .net.ws import listen_ws

            listen = partial(listen_ws, reactor, driver, address.host, address.port)
        else:
            from .net.ws import listen_wss

            listen = partial(listen_wss, reactor, driver, address.host, address.port,
                             config.tls_certificate, config.tls_key)
        ListenerService(address.transport, listen).setServiceParent(services)
    if config.http is not None:
        host, port = config.http
        site = build_site(registry, agent, driver)
        ListenerService("http", partial(reactor.listenTCP, port, site,
                                        interface=host)).setServiceParent(services)
    RestoreService(agent, driver, config).setServiceParent(services)
    if config.xmpp is not None:
        from .api.metrics import BridgeCollector
        from .bridges.xmpp import XmppBridge

        # Last: it connects once the state is back, and stops first, while the
        # driver can still send what its goodbye causes.
        bridge = XmppBridge(reactor, driver, agent, config.xmpp)
        registry.register(BridgeCollector(bridge.gateway))
        bridge.setServiceParent(services)
    return services


def _service_base() -> Any:
    from twisted.application.service import Service

    return Service


class ListenerService(_service_base()):  # type: ignore[misc]
    """One bound address; binding happens in startService so errors stop start-up."""

    def __init__(self, label: str, listen: Callable[[], Any]) -> None:
        self.label = label
        self.listen = listen
        self.port: Any = None

    def startService(self) -> None:
        self.port = self.listen()
        super().startService()

    def stopService(self) -> Any:
        super().stopService()
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None

    def address(self) -> str:
        host = self.port.getHost()
        shown = f"[{host.host}]" if ":" in host.host else host.host
        return f"{self.label}:{shown}:{host.port}"


class StoreService(_service_base()):  # type: ignore[misc]
    """Reads the state back at start and starts the writer, whose reports of each
    batch come back to the driver on the reactor thread (group commit: the answers
    it holds go out then).  At stop, writes what is left and closes."""

    def __init__(self, store: Any, agent: Any, driver: Any) -> None:
        self.store = store
        self.agent = agent
        self.driver = driver
        self.snapshot: Any = None

    def startService(self) -> None:
        self.snapshot = self.store.load()
        reactor = self.driver.reactor
        self.store.start(lambda batch, error: reactor.callFromThread(
            self.driver.committed, batch, error))
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        if len(self.agent.journal):
            self.store.submit(self.agent.journal.drain())
        self.store.close()


class RestoreService(_service_base()):  # type: ignore[misc]
    """Puts the stored publications and subscriptions back into the agent."""

    def __init__(self, agent: Any, driver: Any, config: Config) -> None:
        self.agent = agent
        self.driver = driver
        self.config = config

    def startService(self) -> None:
        super().startService()
        store_service = next(s for s in self.parent if isinstance(s, StoreService))
        snapshot = store_service.snapshot
        from twisted.logger import Logger

        Logger(namespace="sipresence.store").info(
            "restored {publications} publications, {subscriptions} subscriptions, "
            "{bindings} registrations, {rules} rules and {roster} watchers of other "
            "networks{unclean}",
            publications=len(snapshot.publications), subscriptions=len(snapshot.subscriptions),
            bindings=len(snapshot.bindings), rules=len(snapshot.rules),
            roster=len(snapshot.roster),
            unclean="" if snapshot.clean else " after an unclean stop")
        self.agent.restore(snapshot, self.driver.now())
        snapshot.publications.clear()
        snapshot.subscriptions.clear()
        snapshot.bindings.clear()
        snapshot.rules.clear()
        snapshot.roster.clear()
        self.driver.flush()
        # Watched from now on: a long restore is not an overload.
        self.driver.watch_load()
        if self.config.gc_tuning:
            tune_gc(self.driver.reactor)
        release_memory(self.driver.reactor)


def release_memory(reactor: Any, interval: float = 30.0) -> None:
    """Give the C heap's free pages back to the system every *interval* seconds.

    Measured in the soak (``python -m bench soak``, glibc's ``mallinfo2`` sampled in
    the agent): under steady load the memory malloc hands out stays flat (20-22 MiB
    from minute 2 on, and the same after the drain), but the free space glibc keeps
    inside its main arena grows to 20-24 MiB and stays resident, because freed
    chunks sit between live ones and the arena's top never shrinks; that was the
    RSS growth the soak called a leak.  ``malloc_trim(0)`` releases the whole pages
    inside those free chunks (madvise), which took 0.5-1.6 ms every 30 s and kept
    RSS flat.  A C library without it (musl) is left alone.
    """
    import ctypes
    import ctypes.util

    from twisted.internet import task

    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is None:
        return
    trim.argtypes = [ctypes.c_size_t]
    loop = task.LoopingCall(trim, 0)
    loop.clock = reactor
    loop.start(interval, now=False)


def tune_gc(reactor: Any) -> None:
    """Keep the cyclic collector out of the latency tail (DESIGN.md), as measured.

    Everything alive is moved to the permanent generation (never scanned) at start
    and again every 5 s, so full collections never walk 100,000 subscriptions; young
    collections stay small (threshold 2,000).  Measured on SIPp PUBLISH and SUBSCRIBE
    at 1,000/s: p99 8-16 ms, against 20-30 ms with one freeze and a 50,000 threshold,
    and 70-250 ms with the defaults.  Reference counting frees objects as before; only
    garbage *cycles* could hide among frozen objects, so once an hour everything is
    unfrozen and collected in full, and that pause is logged.
    """
    from twisted.internet import task
    from twisted.logger import Logger

    log = Logger(namespace="sipresence.gc")

    def full_collection() -> None:
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        log.info("full garbage collection: {found} unreachable objects, {ms:.0f} ms",
                 found=found, ms=(time.perf_counter() - started) * 1000)

    gc.collect()
    gc.freeze()
    gc.set_threshold(2000, 10, 10)
    for function, interval in ((gc.freeze, 5.0), (full_collection, 3600.0)):
        loop = task.LoopingCall(function)
        loop.clock = reactor
        loop.start(interval, now=False)


class DriverService(_service_base()):  # type: ignore[misc]
    """Stops the driver's timer and closes stream connections at shutdown."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def stopService(self) -> None:
        super().stopService()
        self.driver.stop()
        for connection in list(self.driver.connections.values()):
            connection.close()
