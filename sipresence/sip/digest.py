"""Digest authentication of requests (RFC 3261 section 22; RFC 7616 as RFC 8760 brings
it to SIP): challenges out, credentials checked, sans-IO.

The agent is a registrar and a UAS, so it challenges with ``401`` and
``WWW-Authenticate`` (RFC 3261 22.2).  Two challenges go out, SHA-256 first and MD5
second (RFC 8760 section 2.4: clients take the first algorithm they support; desk
phones of the last decade know only MD5).  ``qop=auth`` is offered; credentials
without qop (RFC 2069 clients) are still checked.

Nonces are stateless: the time they were made, a random part (so no two challenges
share one) and an HMAC of both under a secret of this process, so no table grows
with the challenges sent.  A nonce older than ``nonce_lifetime`` whose MAC is good
gets a new challenge with ``stale=true``: the client retries with the same password
without asking its user (RFC 7616 3.3).  After a restart every nonce is stale, which
clients handle the same way.

Replays are refused.  The transaction layer absorbs a retransmission (same branch),
but a captured request sent again in a new transaction carries valid credentials:
for each nonce in use (only those, and only while fresh) the highest nonce count
(``nc``) accepted per client nonce is kept, and credentials must count higher
(RFC 7616 3.4.5); credentials without qop (RFC 2069) are good once.  A replay is
answered like a stale nonce, so a client whose requests crossed simply retries with
a new one; an attacker without the password cannot.  The ``uri`` the credentials
were computed over must name the Request-URI (RFC 7616 3.4.6), so credentials for
one request cannot be moved to another (checked for requests that come straight
from the device: a proxy may have retargeted the request after it was signed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .headers import HeaderError, quote, split_commas
from .uri import SipURI, URIError, parse_uri

__all__ = ["ALGORITHMS", "Credentials", "parse_credentials", "response_for", "Authenticator",
           "same_uri"]


def _bytes(text: str) -> bytes:
    """Header text as the bytes that were sent: non-UTF-8 ones arrive as surrogate
    escapes (the parser decodes with ``surrogateescape``), which plain UTF-8 refuses."""
    return text.encode("utf-8", "surrogateescape")


def _hasher(name: str) -> Callable[[str], str]:
    return lambda text: hashlib.new(name, _bytes(text)).hexdigest()


def _same(a: str, b: str) -> bool:
    """Constant-time equality; ``compare_digest`` takes str only when it is ASCII."""
    return hmac.compare_digest(_bytes(a), _bytes(b))


# RFC 8760 names; the order is the order of the challenges.
ALGORITHMS: dict[str, Callable[[str], str]] = {"SHA-256": _hasher("sha256"),
                                               "MD5": _hasher("md5")}


@dataclass(frozen=True)
class Credentials:
    """An ``Authorization`` header's digest-response (RFC 3261 25.1)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None


def parse_credentials(value: str) -> Credentials:
    """Parse ``Digest username="alice", realm=..., ...``; raise HeaderError."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise HeaderError("Authorization is not Digest")
    params: dict[str, str] = {}
    for item in split_commas(rest):
        name, eq, raw = item.partition("=")
        name, raw = name.strip().lower(), raw.strip()
        if not eq or not name:
            raise HeaderError("Bad Authorization parameter")
        if raw.startswith('"'):
            if len(raw) < 2 or not raw.endswith('"'):
                raise HeaderError("Bad Authorization parameter")
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[name] = raw
    try:
        return Credentials(
            username=params["username"], realm=params["realm"], nonce=params["nonce"],
            uri=params["uri"], response=params["response"].lower(),
            algorithm=params.get("algorithm", "MD5"), qop=params.get("qop"),
            nc=params.get("nc"), cnonce=params.get("cnonce"))
    except KeyError as missing:
        raise HeaderError(f"Authorization without {missing.args[0]}") from None


def response_for(algorithm: str, ha1: str, method: str, c: Credentials) -> str | None:
    """The request-digest the credentials must carry (RFC 7616 3.4.1); None for a qop
    or algorithm not supported."""
    hash_ = ALGORITHMS.get(algorithm.upper())
    if hash_ is None:
        return None
    ha2 = hash_(f"{method}:{c.uri}")
    if c.qop is None:
        return hash_(f"{ha1}:{c.nonce}:{ha2}")
    if c.qop.lower() == "auth" and c.nc and c.cnonce:
        return hash_(f"{ha1}:{c.nonce}:{c.nc}:{c.cnonce}:{c.qop}:{ha2}")
    return None


class Authenticator:
    """Challenges and checks against one realm and a table of users and passwords."""

    def __init__(self, realm: str, users: Mapping[str, str], *, nonce_lifetime: float = 300.0,
                 secret: bytes | None = None) -> None:
        self.realm = realm
        self.nonce_lifetime = nonce_lifetime
        self._secret = secret or secrets.token_bytes(32)
        # H(username:realm:password) per algorithm, made once (RFC 7616 3.4.2).
        self._ha1 = {(user, name): hash_(f"{user}:{realm}:{password}")
                     for user, password in users.items()
                     for name, hash_ in ALGORITHMS.items()}
        # (nonce, user, client nonce or response) -> (highest nc accepted, until when
        # the nonce is fresh): what a replay would repeat.
        self._counts: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._purged = 0.0
        self.replays = 0

    def challenge(self, now: float, stale: bool = False) -> list[tuple[str, str]]:
        """The ``WWW-Authenticate`` headers of a 401."""
        nonce = self._nonce(now)
        extra = ", stale=true" if stale else ""
        return [("WWW-Authenticate",
                 f"Digest realm={quote(self.realm)}, nonce={quote(nonce)}, "
                 f'algorithm={name}, qop="auth"{extra}') for name in ALGORITHMS]

    def check(self, method: str, authorizations: list[str], now: float,
              uri: str | None = None) -> str | bool:
        """The user name the request proved it is, False when it proved nothing, and
        True when its credentials were right but its nonce stale or the request a
        replay (challenge again with ``stale=true``).  Credentials for other realms,
        or computed over another URI than *uri* (the Request-URI), are ignored."""
        stale = False
        for value in authorizations:
            try:
                credentials = parse_credentials(value)
            except HeaderError:
                continue
            if credentials.realm != self.realm:
                continue
            if uri is not None and not same_uri(credentials.uri, uri):
                continue
            verdict = self._verify(method, credentials, now)
            if verdict == "ok":
                return credentials.username
            stale = stale or verdict == "stale"
        return stale

    def _verify(self, method: str, c: Credentials, now: float) -> str:
        algorithm = c.algorithm.upper()
        ha1 = self._ha1.get((c.username, algorithm))
        if ha1 is None:
            return "bad"
        expected = response_for(algorithm, ha1, method, c)
        if expected is None or not _same(expected, c.response):
            return "bad"
        age = self._nonce_age(c.nonce, now)
        if age is None:
            return "bad"
        if age > self.nonce_lifetime:
            return "stale"
        return "ok" if self._count(c, now - age + self.nonce_lifetime, now) else "stale"

    def _count(self, c: Credentials, fresh_until: float, now: float) -> bool:
        """Record the credentials' use; False when they were used so before."""
        if c.qop is None:
            key, count = (c.nonce, c.username, c.response), 1
        else:
            try:
                count = int(c.nc or "", 16)
            except ValueError:
                return False
            key = (c.nonce, c.username, c.cnonce or "")
        seen = self._counts.get(key)
        if seen is not None and count <= seen[0]:
            self.replays += 1
            return False
        if len(self._counts) >= 4096 and now >= self._purged + 1.0:
            # Forget the nonces no longer fresh, at most once a second.
            self._purged = now
            self._counts = {k: v for k, v in self._counts.items() if v[1] >= now}
        self._counts[key] = (count, fresh_until)
        return True

    def _nonce(self, now: float) -> str:
        stamp = f"{int(now):x}.{secrets.token_hex(6)}"
        return stamp + "." + self._mac(stamp)

    def _nonce_age(self, nonce: str, now: float) -> float | None:
        """How old a nonce of ours is; None if it is not one of ours."""
        stamp, _, mac = nonce.rpartition(".")
        if not stamp or not _same(mac, self._mac(stamp)):
            return None
        try:
            return now - int(stamp.partition(".")[0], 16)
        except ValueError:
            return None

    def _mac(self, stamp: str) -> str:
        return hmac.new(self._secret, _bytes(stamp), hashlib.sha256).hexdigest()[:32]


def same_uri(credential_uri: str, request_uri: str) -> bool:
    """Whether the ``uri`` of credentials names the Request-URI: equal SIP URIs
    (scheme, user, host without case, port; parameters aside, since clients differ
    in which they repeat), otherwise equal text."""
    try:
        a, b = parse_uri(credential_uri), parse_uri(request_uri)
    except URIError:
        return credential_uri == request_uri
    if isinstance(a, SipURI) and isinstance(b, SipURI):
        return (a.scheme, a.user, a.host.lower(), a.port) == (
            b.scheme, b.user, b.host.lower(), b.port)
    return str(a).lower() == str(b).lower()
