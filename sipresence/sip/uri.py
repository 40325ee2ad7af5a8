"""SIP and SIPS URIs (RFC 3261 section 19.1, RFC 5118 for IPv6 references).

A URI keeps its components in their *escaped* wire form, so that re-serialising a URI
the agent did not change gives back the same text.  ``%HH`` escapes are decoded only
where the grammar has them (user, password, parameter and header values), through the
``unescape`` helper, never in the host or the scheme.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = [
    "URIError",
    "SipURI",
    "AbsoluteURI",
    "URI",
    "parse_uri",
    "parse_host",
    "format_host",
    "unescape",
]


class URIError(ValueError):
    """A URI that does not follow the grammar; its text is the reason phrase to use."""


_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")
# hostname = *( domainlabel "." ) toplabel [ "." ]; a toplabel starts with a letter.
_HOSTNAME_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*"
                          r"[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?\Z")
_IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\Z")
# unreserved / escaped / user-unreserved, and ':' for the password.
_USERINFO_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/:]|%[0-9A-Fa-f]{2})*\Z")
# paramchar = param-unreserved / unreserved / escaped; lenient: also ',' and '@' seen in the wild.
_PARAM_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$@,]|%[0-9A-Fa-f]{2})*\Z")
_NOT_IN_URI = re.compile(r'[ \t\r\n<>"]').search
_BARE_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]+\Z")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def unescape(text: str) -> str:
    """Decode ``%HH`` escapes (as UTF-8; invalid sequences stay escaped-as-replaced).

    Only for components whose grammar allows escapes: user, password, parameter and
    header values.  ``%00`` decodes to NUL, as RFC 4475 ``escnull`` expects.
    """
    if "%" not in text:
        return text
    raw = _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), text)
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return raw


@lru_cache(maxsize=4096)
def parse_host(text: str) -> str:
    """Validate a host (hostname, IPv4 address or bracketed IPv6 reference).

    Returns the host as it is compared: lower case, IPv6 in brackets and in RFC 5952
    form.  A bare IPv6 address (no brackets) is not a host (RFC 5118 section 4.2).
    One run of three colons is read as two (RFC 5118 section 4.10: the buggy ABNF of
    RFC 3261 made implementations write ``[2001:db8:::192.0.2.1]``, and "a SIP
    implementation receiving such a message may exhibit robustness by successfully
    parsing the IPv6 reference"): lenient in, and the address it stands for is plain.
    """
    if not text:
        raise URIError("Empty host")
    if text[0] == "[":
        if text[-1] != "]":
            raise URIError("Unterminated IPv6 reference")
        try:
            address = ipaddress.IPv6Address(text[1:-1].replace(":::", "::"))
        except ValueError:
            raise URIError("Bad IPv6 reference") from None
        mapped = address.ipv4_mapped
        if mapped is not None:
            # RFC 5952 section 5: IPv4-mapped addresses keep the dotted quad, as the
            # socket layer reports them (and as Python >= 3.13 prints them).
            return f"[::ffff:{mapped}]"
        return "[" + address.compressed + "]"
    if _IPV4_RE.match(text):
        if any(int(octet) > 255 for octet in text.split(".")):
            raise URIError("Bad IPv4 address")
        return text
    if not _HOSTNAME_RE.match(text):
        raise URIError("Bad host")
    return text.lower()


def format_host(host: str) -> str:
    """Put an IP address in URI/Via form: IPv6 literals get brackets."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def split_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` where host may be a bracketed IPv6 reference."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise URIError("Unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if not rest:
            return parse_host(host), None
        if rest[0] != ":":
            raise URIError("Bad host")
        return parse_host(host), _parse_port(rest[1:])
    host, sep, port = text.partition(":")
    if sep:
        if ":" in port and _BARE_IPV6_RE.match(text):
            # RFC 5118 4.2: an IPv6 address must be a bracketed IPv6reference here.
            raise URIError("IPv6 address without brackets")
        return parse_host(host), _parse_port(port)
    return parse_host(host), None


def _parse_port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > 65535:
        raise URIError("Bad port")
    return int(text)


def _parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name[=value]`` URI parameters (names are case-insensitive)."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    for item in text.split(";")[1:]:
        name, sep, value = item.partition("=")
        if not name or not _PARAM_RE.match(name) or (sep and not _PARAM_RE.match(value)):
            raise URIError("Bad URI parameter")
        params[name.lower()] = value if sep else None
    return params


@dataclass(slots=True)
class SipURI:
    """A ``sip:`` or ``sips:`` URI.  Components are kept escaped, as on the wire."""

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out += [":", self.password]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out += [":", str(self.port)]
        for name, value in self.params.items():
            out += [";", name] if value is None else [";", name, "=", value]
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(out)

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter in upper case, or None."""
        value = self.params.get("transport")
        return value.upper() if value else None

    def aor(self) -> str:
        """The address-of-record form: scheme, user and host, no port or parameters.

        Used as the key for presentities and registrations.  The user part is compared
        with escapes decoded (RFC 3261 19.1.4), so it is normalised here.
        """
        scheme = "sip" if self.scheme == "sips" else self.scheme
        if self.user is None:
            return f"{scheme}:{self.host}"
        return f"{scheme}:{_normalise_user(self.user)}@{self.host}"


def _normalise_user(user: str) -> str:
    """Decode escapes of characters that need none, so equal users compare equal."""
    if "%" not in user:
        return user

    def repl(m: re.Match[str]) -> str:
        ch = chr(int(m.group(1), 16))
        return ch if re.match(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]", ch) else m.group(0).upper()

    return _ESCAPE_RE.sub(repl, user)


@dataclass(slots=True, frozen=True)
class AbsoluteURI:
    """Any other URI (tel:, pres:, unknown schemes): kept opaque."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"

    def aor(self) -> str:
        """The opaque URI itself, with the scheme in lower case."""
        return f"{self.scheme}:{self.opaque}"


URI = SipURI | AbsoluteURI


def parse_uri(text: str) -> URI:
    """Parse a URI; SIP and SIPS URIs are checked against the grammar in full.

    Raises :class:`URIError` with a reason phrase.  White space anywhere, a missing
    scheme, a bare IPv6 address, a bad port or escape are all errors.
    """
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME_RE.match(scheme):
        if text[:1] == "<":
            raise URIError("URI enclosed in <>")  # RFC 4475 ltgtruri
        raise URIError("Bad URI scheme")
    if not rest or _NOT_IN_URI(rest):
        raise URIError("Bad URI")
    scheme = scheme.lower()
    if scheme not in ("sip", "sips"):
        return AbsoluteURI(scheme, rest)
    if _BAD_ESCAPE_RE.search(rest):
        raise URIError("Bad escape in URI")

    user = password = None
    at = rest.find("@")
    if at >= 0 and _USERINFO_RE.match(rest, 0, at):
        userinfo, rest = rest[:at], rest[at + 1 :]
        # The password follows the first ':' (user-unreserved has no ':').
        user, colon, pw = userinfo.partition(":")
        password = pw if colon else None
        if not user:
            raise URIError("Empty user in URI")
    rest, qmark, hdrs = rest.partition("?")
    semi = rest.find(";")
    hostport, ptext = (rest, "") if semi < 0 else (rest[:semi], rest[semi:])
    host, port = split_hostport(hostport)
    params = _parse_params(ptext)
    headers: dict[str, str] = {}
    if qmark:
        for item in hdrs.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise URIError("Bad URI header")
            headers[name] = value
    return SipURI(scheme, host, user, password, port, params, headers)
