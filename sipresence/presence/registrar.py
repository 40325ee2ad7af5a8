"""The registrar of RFC 3261 section 10: bindings from addresses of record to contacts.

Linphone publishes only after a 2xx to REGISTER (INTEROP.md), and a registration is a
presence source of its own (a registered phone can take calls), so the agent is a
registrar.  Contacts are kept exactly as received, parameters and escaped URI headers
included (RFC 4475 ``cparam01``, ``cparam02``, ``regescrt``), and returned that way.

Bindings are matched by ``+sip.instance`` (and ``reg-id``) when the device gives one
(RFC 5626), otherwise by contact URI.  No GRUU is offered: a GRUU has to route back to
the device, and this agent does not proxy calls to it (INTEROP.md: linphone uses any
GRUU it is given).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..sip.headers import HeaderError, parse_name_addr, quote
from ..sip.message import Request
from ..sip.uas import RequestError, origin
from ..sip.uri import SipURI, URIError, parse_uri
from .timers import DeadlineQueue

__all__ = ["Binding", "RegisterError", "RegisterResult", "Registrar"]


@dataclass(slots=True)
class Binding:
    """One registered contact (persisted)."""

    aor: str
    contact: str          # the whole Contact value as received, minus expires/q params
    uri: str              # the contact URI, for matching and for redirects
    instance: str | None  # +sip.instance, RFC 5626
    reg_id: str | None
    q: float
    call_id: str
    cseq: int
    expires_at: float
    updated_at: float
    user_agent: str
    # The device that registered (sip.uas.origin): its PUBLISHes, from the same
    # address, speak for it in presence instead of the binding (presentity.py).
    source: str = ""

    @property
    def key(self) -> str:
        """Identity of the binding within its address of record."""
        if self.instance is not None:
            return f"{self.instance};reg-id={self.reg_id or ''}"
        return self.uri

    @property
    def store_key(self) -> str:
        return f"{self.aor}\n{self.key}"


class RegisterError(RequestError):
    """A REGISTER answered with an error (RFC 3261 10.3); nothing was changed."""


@dataclass(slots=True)
class RegisterResult:
    aor: str
    bindings: list[Binding]          # what the AOR has now, for the 200
    added: list[Binding]             # new or refreshed
    removed: list[Binding]
    changed: bool                    # the set of bindings (not only expiries) changed


class Registrar:
    def __init__(self, *, default_expires: int = 3600, min_expires: int = 60,
                 max_expires: int = 86400) -> None:
        self.default_expires = default_expires
        self.min_expires = min_expires
        self.max_expires = max_expires
        self._bindings: dict[str, dict[str, Binding]] = {}
        self._expiry = DeadlineQueue()

    def bindings(self, aor: str) -> list[Binding]:
        """The live bindings of *aor*, best first (highest q, then most recent)."""
        found = self._bindings.get(aor, {})
        return sorted(found.values(), key=lambda b: (-b.q, -b.updated_at))

    def all(self) -> list[Binding]:
        return [b for group in self._bindings.values() for b in group.values()]

    def register(self, request: Request, now: float) -> RegisterResult:
        """Apply a REGISTER (10.3); raises :class:`RegisterError`.  All checks come first."""
        to_uri = request.to.uri
        if not isinstance(to_uri, SipURI):
            raise RegisterError(404, "Address of record is not a SIP URI")
        aor = to_uri.aor()
        call_id, cseq = request.call_id, request.cseq.number
        header_expires = request.expires
        values = request.headers.values("contact")
        current = self._bindings.get(aor, {})

        if any(v.strip() == "*" for v in values):
            if len(values) != 1 or header_expires != 0:
                raise RegisterError(400, "Wildcard Contact needs Expires: 0 and no other Contact")
            for binding in current.values():
                if binding.call_id == call_id and cseq <= binding.cseq:
                    raise RegisterError(500, "Out-of-order CSeq")
            removed = list(current.values())
            for binding in removed:
                self._remove(binding)
            return RegisterResult(aor, [], [], removed, bool(removed))

        updates: list[tuple[Binding, int]] = []
        for value in values:
            binding, expires = self._binding(aor, value, header_expires, request, now)
            old = current.get(binding.key)
            if old is not None and old.call_id == call_id and cseq <= old.cseq:
                raise RegisterError(500, "Out-of-order CSeq")
            updates.append((binding, expires))

        added, removed = [], []
        changed = False
        for binding, expires in updates:
            old = current.get(binding.key)
            if expires == 0:
                if old is not None:
                    self._remove(old)
                    removed.append(old)
                    changed = True
                continue
            binding.expires_at = now + expires
            if old is not None:
                self._remove(old)
                changed = changed or (old.contact, old.q, old.source) != (
                    binding.contact, binding.q, binding.source)
            else:
                changed = True
            self._add(binding)
            added.append(binding)
        return RegisterResult(aor, self.bindings(aor), added, removed, changed)

    def _binding(self, aor: str, value: str, header_expires: int | None, request: Request,
                 now: float) -> tuple[Binding, int]:
        try:
            contact = parse_name_addr(value)
            parse_uri(contact.uri_text)
        except (HeaderError, URIError) as exc:
            raise RegisterError(400, f"Bad Contact: {exc}") from None
        params = dict(contact.params)
        expires_text = params.pop("expires", None)
        if expires_text is not None:
            if not expires_text.isdigit():
                raise RegisterError(400, "Bad Contact expires")
            expires = int(expires_text)
        elif header_expires is not None:
            expires = header_expires
        else:
            expires = self.default_expires
        if 0 < expires < self.min_expires:
            raise RegisterError(423, headers=[("Min-Expires", str(self.min_expires))])
        expires = min(expires, self.max_expires)
        q_text = params.pop("q", None)
        try:
            q = 1.0 if q_text is None else float(q_text)
        except ValueError:
            raise RegisterError(400, "Bad Contact q") from None
        if not 0.0 <= q <= 1.0:
            raise RegisterError(400, "Bad Contact q")
        instance = params.get("+sip.instance")
        reg_id = params.get("reg-id")
        # Keep the value as sent (display name, URI with its parameters and escaped
        # headers, header parameters), without the expiry and q the registrar restates.
        kept = "".join(f";{k}" if v is None else f";{k}={_param(v)}" for k, v in params.items())
        display = f"{quote(contact.display)} " if contact.display else ""
        text = f"{display}<{contact.uri_text}>{kept}"
        return Binding(aor, text, contact.uri_text, instance, reg_id, q, request.call_id,
                       request.cseq.number, now, now,
                       request.headers.get("user-agent") or "", origin(request)), expires

    def contact_headers(self, bindings: Iterable[Binding], now: float) -> list[tuple[str, str]]:
        """Contact values for a 200 to REGISTER, each with its remaining expiry."""
        out = []
        for binding in bindings:
            remaining = max(0, int(binding.expires_at - now))
            # A qvalue has at most three decimals and no sign (RFC 3261 25.1): "q=1e-05"
            # or "q=-0" (both read as in range) would be malformed Contacts.
            q = "" if binding.q == 1.0 else f";q={abs(binding.q):.3f}".rstrip("0").rstrip(".")
            out.append(("Contact", f"{binding.contact};expires={remaining}{q}"))
        return out

    def restore(self, binding: Binding) -> None:
        self._add(binding)

    def next_deadline(self) -> float | None:
        return self._expiry.next_deadline()

    def expire(self, now: float) -> list[Binding]:
        gone = []
        for store_key in self._expiry.pop_due(now):
            aor, _, key = str(store_key).partition("\n")
            binding = self._bindings.get(aor, {}).get(key)
            if binding is not None:
                self._remove(binding)
                gone.append(binding)
        return gone

    def _add(self, binding: Binding) -> None:
        self._bindings.setdefault(binding.aor, {})[binding.key] = binding
        self._expiry.set(binding.store_key, binding.expires_at)

    def _remove(self, binding: Binding) -> None:
        group = self._bindings.get(binding.aor)
        if group is not None:
            group.pop(binding.key, None)
            if not group:
                del self._bindings[binding.aor]
        self._expiry.cancel(binding.store_key)


def _param(value: str) -> str:
    """Parameter values are re-quoted when they need it (``+sip.instance`` does)."""
    if value and all(c.isalnum() or c in "-.!%*_+`'~:[]/" for c in value):
        return value
    return quote(value)
