"""One subscription (RFC 6665): its dialog, its state and its counters, as the
notifier (``presence/subscriptions.py``) keeps them and the store persists them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..sip.transport import Peer

__all__ = ["COUNTER_BLOCK", "SubState", "Subscription"]


# How far ahead counters are reserved in the store (see Subscription).
COUNTER_BLOCK = 100


class SubState(enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    TERMINATED = "terminated"


@dataclass(slots=True)
class Subscription:
    """One subscription: its dialog, its state and its counters (all persisted).

    The counters are persisted as *reservations*: :attr:`stored_counters` says up to
    which CSeq and document version the store already vouches, and the store writes
    that rather than the current value.  A counter passing its reservation reserves
    :data:`COUNTER_BLOCK` more, so a steady stream of NOTIFYs writes one row per
    block, and after any restart (clean or crash) counting resumes above every value
    ever sent: phones ignore NOTIFYs whose CSeq or version goes back (INTEROP.md).

    The fields after ``version`` are runtime only and start fresh after a restart.
    """

    id: str
    package: str
    resource: str
    event_id: str | None
    watcher: str
    watcher_display: str | None
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    route_set: list[str]
    local_cseq: int
    remote_cseq: int
    transport: str
    host: str
    port: int
    connection: int | None
    local: tuple[str, int] | None
    content_type: str
    state: SubState
    expires_at: float
    created_at: float
    version: int = 0
    # -- runtime only --
    stored_counters: tuple[int, int] = field(default=(0, 0), compare=False)
    in_flight: bool = field(default=False, compare=False)
    dirty: bool = field(default=False, compare=False)
    failures: int = field(default=0, compare=False)
    ending: str | None = field(default=None, compare=False)  # reason of a pending termination
    full_state_due: bool = field(default=True, compare=False)
    # Ever allowed to see the state (active, now or before it ended): what a NOTIFY
    # may carry.  A watcher rejected or timed out while pending never sees any.
    authorized: bool = field(default=False, compare=False)

    def reserve_counters(self) -> bool:
        """Reserve a new block when a counter passed the stored one; True if it did."""
        cseq, version = self.stored_counters
        if self.local_cseq <= cseq and self.version <= version:
            return False
        self.stored_counters = (self.local_cseq + COUNTER_BLOCK, self.version + COUNTER_BLOCK)
        return True

    @property
    def dialog_key(self) -> tuple[str, str, str, str, str | None]:
        return (self.call_id, self.local_tag, self.remote_tag, self.package, self.event_id)

    @property
    def peer(self) -> Peer:
        return Peer(self.transport, self.host, self.port, self.connection, self.local)
