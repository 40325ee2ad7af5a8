"""Configuration: a TOML file (``--config``) read into dataclasses, flags on top.

Every setting has a default that makes ``sipresence serve`` work on a fresh machine:
UDP and TCP on 127.0.0.1:5060, HTTP on 127.0.0.1:8080, data in
``./var/sipresence.sqlite3``, any domain.  Unknown keys in the file are errors, so a
misspelt setting is reported instead of silently ignored.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .presence.agent import AgentConfig
from .presence.policy import ACTIONS
from .sip.transaction import TimerConfig

__all__ = ["ConfigError", "ListenAddress", "Config", "XmppConfig", "parse_listen",
           "parse_hostport", "load"]

TRANSPORTS = ("udp", "tcp", "tls", "ws", "wss")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warn", "error")


class ConfigError(ValueError):
    """A setting that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ListenAddress:
    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def parse_hostport(text: str, what: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` or ``[IPV6]:PORT``; port 0 asks the system for a free one."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{what}: expected HOST:PORT, got {text!r}")
    return host, int(port)


def parse_listen(text: str) -> ListenAddress:
    """Parse ``udp:HOST:PORT``, ``tcp:``, ``tls:``, ``ws:`` or ``wss:HOST:PORT``."""
    transport, sep, rest = text.partition(":")
    if not sep or transport.lower() not in TRANSPORTS:
        raise ConfigError(f"listen: expected udp:, tcp:, tls:, ws: or wss:HOST:PORT, "
                          f"got {text!r}")
    host, port = parse_hostport(rest, "listen")
    return ListenAddress(transport.lower(), host, port)


def _default_listen() -> list[ListenAddress]:
    return [ListenAddress("udp", "127.0.0.1", 5060), ListenAddress("tcp", "127.0.0.1", 5060)]


@dataclass(frozen=True)
class XmppConfig:
    """The ``[xmpp]`` table: the IM bridge (``bridges/xmpp.py``), an XEP-0114 component."""

    server: tuple[str, int]  # the XMPP server's component port
    component: str  # SIP user sip:U@<sip_domain> is U@<component> in XMPP
    secret: str
    sip_domain: str
    xmpp_domains: tuple[str, ...] = ()  # XMPP user U@D (D listed) is sip:U@D


_XMPP_KEYS = ("server", "component", "secret", "sip_domain", "xmpp_domains")


def parse_xmpp(values: dict[str, Any]) -> XmppConfig:
    """Check the ``[xmpp]`` table: every key but xmpp_domains is needed."""
    unknown = sorted(set(values) - set(_XMPP_KEYS))
    if unknown:
        raise ConfigError(f"unknown setting xmpp.{unknown[0]}")
    missing = [k for k in _XMPP_KEYS[:4] if not values.get(k)]
    if missing:
        raise ConfigError(f"xmpp.{missing[0]} is needed for the XMPP bridge")
    domains = tuple(d.lower() for d in _strings(values.get("xmpp_domains", []),
                                                "xmpp.xmpp_domains"))
    sip_domain = _string(values["sip_domain"], "xmpp.sip_domain").lower()
    component = _string(values["component"], "xmpp.component").lower()
    if sip_domain in domains or component in domains:
        raise ConfigError("xmpp.xmpp_domains must not hold the SIP domain or the component")
    return XmppConfig(parse_hostport(_string(values["server"], "xmpp.server"), "xmpp.server"),
                      component, _string(values["secret"], "xmpp.secret"), sip_domain, domains)


@dataclass
class Config:
    listen: list[ListenAddress] = field(default_factory=_default_listen)
    http: tuple[str, int] | None = ("127.0.0.1", 8080)
    db: str = "var/sipresence.sqlite3"
    domains: list[str] = field(default_factory=list)
    log_format: str = "text"
    log_level: str = "info"
    tcp_idle_timeout: float = 300.0
    udp_buffer: int = 1 << 20
    overload_lag: float = 0.1
    overload_retry_after: int = 2
    timers: TimerConfig = field(default_factory=TimerConfig)
    tls_certificate: str | None = None
    tls_key: str | None = None
    gc_tuning: bool = True
    presence: AgentConfig = field(default_factory=AgentConfig)
    xmpp: XmppConfig | None = None

    def check(self) -> None:
        if not self.listen:
            raise ConfigError("listen: at least one address is needed")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"log format must be one of {', '.join(LOG_FORMATS)}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}")
        if self.presence.min_expires > self.presence.max_expires:
            raise ConfigError("presence.min_expires is larger than presence.max_expires")
        if self.tcp_idle_timeout <= 0:
            raise ConfigError("sip.tcp_idle_timeout must be positive")
        for secure in ("tls", "wss"):
            if any(a.transport == secure for a in self.listen) and not (
                    self.tls_certificate and self.tls_key):
                raise ConfigError(f"a {secure}: listener needs tls.certificate and tls.key")
        domains = {d.lower() for d in self.domains}
        if self.xmpp is not None and domains and self.xmpp.sip_domain not in domains:
            raise ConfigError(f"xmpp.sip_domain {self.xmpp.sip_domain} is not one of "
                              "server.domains")
        overlap = sorted(domains & set(self.xmpp.xmpp_domains if self.xmpp else ()))
        if overlap:
            raise ConfigError(f"{overlap[0]} is both a SIP domain (server.domains) and "
                              "an XMPP domain (xmpp.xmpp_domains)")

    def served_domains(self) -> list[str]:
        """The domains the agent answers for: server.domains and, when those are set,
        the bridged XMPP domains (their users are presentities here).  Empty: any."""
        if not self.domains:
            return []
        return [*self.domains, *(self.xmpp.xmpp_domains if self.xmpp else ())]


# The file layout: section -> key -> (Config attribute, converter).
def _timer(name: str) -> Any:
    return lambda config, value: _set_timer(config, name, value)


def _set_timer(config: Config, name: str, value: Any) -> None:
    if not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"sip.{name} must be a positive number of seconds")
    values = {f.name: getattr(config.timers, f.name) for f in fields(TimerConfig)}
    values[name] = float(value)
    config.timers = TimerConfig(**values)


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} must be a list of strings")
    return value


def _presence(name: str, kind: type) -> Any:
    def setter(config: Config, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"presence.{name} must be a number of at least 0")
        _set_presence(config, name, kind(value))
    return setter


def _set_presence(config: Config, name: str, value: Any) -> None:
    values = {f.name: getattr(config.presence, f.name) for f in fields(AgentConfig)}
    values[name] = value
    config.presence = AgentConfig(**values)


def _set_routing(config: Config, name: str, value: Any) -> None:
    _set_presence(config, "routing", replace(config.presence.routing, **{name: value}))


def _boolean(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{what} must be true or false")
    return value


def _users(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()):
        raise ConfigError("auth.users must be a table of user names and passwords")
    return dict(value)


def _choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}")
    return str(value)


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string")
    return value


_SCHEMA: dict[str, dict[str, Any]] = {
    "server": {
        "listen": lambda c, v: setattr(c, "listen",
                                       [parse_listen(x) for x in _strings(v, "server.listen")]),
        "domains": lambda c, v: setattr(c, "domains", _strings(v, "server.domains")),
    },
    "http": {
        "listen": lambda c, v: setattr(
            c, "http", None if v in ("", "off") else parse_hostport(_string(v, "http.listen"),
                                                                    "http.listen")),
    },
    "store": {"path": lambda c, v: setattr(c, "db", _string(v, "store.path"))},
    "log": {
        "format": lambda c, v: setattr(c, "log_format", _string(v, "log.format")),
        "level": lambda c, v: setattr(c, "log_level", _string(v, "log.level")),
    },
    "sip": {
        "t1": _timer("t1"),
        "t2": _timer("t2"),
        "t4": _timer("t4"),
        "tcp_idle_timeout": lambda c, v: setattr(c, "tcp_idle_timeout", float(v)),
        "udp_buffer": lambda c, v: setattr(c, "udp_buffer", int(v)),
        "overload_lag": lambda c, v: setattr(c, "overload_lag", float(v)),
        "overload_retry_after": lambda c, v: setattr(c, "overload_retry_after", int(v)),
    },
    "presence": {
        "min_expires": _presence("min_expires", int),
        "max_expires": _presence("max_expires", int),
        "notify_retries": _presence("notify_retries", int),
        "retry_delay": _presence("retry_delay", float),
        "registrations_as_source": lambda c, v: _set_presence(
            c, "registrations_as_source", _boolean(v, "presence.registrations_as_source")),
        "sub_handling": lambda c, v: _set_presence(
            c, "sub_handling", _choice(v, ACTIONS, "presence.sub_handling")),
    },
    "routing": {
        "unavailable_target": lambda c, v: _set_routing(
            c, "unavailable_target", _string(v, "routing.unavailable_target") or None),
        "require_registration": lambda c, v: _set_routing(
            c, "require_registration", _boolean(v, "routing.require_registration")),
        "busy_activities": lambda c, v: _set_routing(
            c, "busy_activities", frozenset(_strings(v, "routing.busy_activities"))),
        "away_activities": lambda c, v: _set_routing(
            c, "away_activities", frozenset(_strings(v, "routing.away_activities"))),
    },
    "auth": {
        "realm": lambda c, v: _set_presence(c, "realm", _string(v, "auth.realm")),
        "users": lambda c, v: _set_presence(c, "users", _users(v)),
    },
    "runtime": {
        "gc_tuning": lambda c, v: setattr(c, "gc_tuning", _boolean(v, "runtime.gc_tuning")),
    },
    "tls": {
        "certificate": lambda c, v: setattr(c, "tls_certificate", _string(v, "tls.certificate")),
        "key": lambda c, v: setattr(c, "tls_key", _string(v, "tls.key")),
    },
}


def load(path: str | Path | None, config: Config | None = None) -> Config:
    """Read a TOML file into a Config (defaults for what it does not set)."""
    config = config or Config()
    if path is None:
        return config
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for section, values in data.items():
        if section == "xmpp" and isinstance(values, dict):
            try:
                config.xmpp = parse_xmpp(values)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc}") from None
            continue
        setters = _SCHEMA.get(section)
        if setters is None or not isinstance(values, dict):
            raise ConfigError(f"{path}: unknown section [{section}]")
        for key, value in values.items():
            setter = setters.get(key)
            if setter is None:
                raise ConfigError(f"{path}: unknown setting {section}.{key}")
            setter(config, value)
    return config
