"""RFC 8048 and RFC 7247 as mapped: addresses both ways, composed state to XMPP, XMPP
presence to a source whose document is valid PIDF."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipresence.bridges.rfc8048 import Addresses, XmppPresence, from_summary, source_of
from sipresence.documents.compose import Summary, compose, summary
from sipresence.documents.pidf import serialize_pidf
from tests.support.phone import valid

ADDRESSES = Addresses("sip.example.com", "example.com", ("xmpp.example.com",))


def test_addresses_map_both_ways_and_refuse_what_is_not_bridged():
    a = ADDRESSES
    assert a.sip_user_jid("sip:alice@example.com") == "alice@sip.example.com"
    assert a.sip_user_aor("Alice@SIP.example.com/phone") == "sip:alice@example.com"
    assert a.xmpp_user_aor("bob@xmpp.example.com/laptop") == "sip:bob@xmpp.example.com"
    assert a.xmpp_user_jid("sip:bob@XMPP.example.com") == "bob@xmpp.example.com"
    assert a.sip_user_jid("sip:alice@elsewhere.test") is None
    assert a.sip_user_jid("tel:+15551234") is None
    assert a.xmpp_user_aor("bob@jabber.elsewhere.test") is None
    assert a.xmpp_user_aor("xmpp.example.com") is None  # a server, not a user
    assert a.sip_user_aor("alice@xmpp.example.com") is None
    assert a.sip_user_jid("sip:a%20b@example.com") is None  # no silent rewriting
    assert Addresses.bare("Bob@Xmpp.Example.com/Res") == "bob@xmpp.example.com"
    assert Addresses.resource("bob@xmpp.example.com/Res/x") == "Res/x"


@given(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True))
def test_a_portable_user_survives_the_round_trip(user):
    jid = ADDRESSES.sip_user_jid(f"sip:{user}@example.com")
    assert jid is not None and ADDRESSES.sip_user_aor(jid) == f"sip:{user}@example.com"
    aor = ADDRESSES.xmpp_user_aor(f"{user}@xmpp.example.com/r")
    assert aor is not None and ADDRESSES.xmpp_user_jid(aor) == f"{user}@xmpp.example.com"


@pytest.mark.parametrize(("state", "shown"), [
    (Summary("open", (), "Here", False), XmppPresence(True, None, "Here")),
    (Summary("closed", (), None, False), XmppPresence(False, None, None)),
    (Summary("closed", ("away",), "Gone", False), XmppPresence(False, None, "Gone")),
    (Summary("open", ("busy",), None, False), XmppPresence(True, "dnd", None)),
    (Summary("open", ("meeting",), "Weekly", False), XmppPresence(True, "dnd", "Weekly")),
    (Summary("open", ("away",), None, False), XmppPresence(True, "away", None)),
    (Summary("open", ("lunch",), None, False), XmppPresence(True, "away", None)),
    (Summary("open", ("vacation",), "Back Monday", False),
     XmppPresence(True, "xa", "Back Monday")),
    # On the phone wins over everything, closed tuples included, and says so.
    (Summary("open", ("on-the-phone",), "On the phone", True),
     XmppPresence(True, "dnd", "On the phone")),
    (Summary("closed", ("on-the-phone", "away"), None, True),
     XmppPresence(True, "dnd", "On the phone")),
])
def test_the_composed_state_as_xmpp_shows_it(state, shown):
    assert from_summary(state) == shown


@pytest.mark.parametrize(("show", "activities"), [
    (None, ()), ("chat", ()), ("away", ("away",)), ("xa", ("away",)), ("dnd", ("busy",))])
def test_an_xmpp_resource_is_a_valid_open_source_with_its_activity(show, activities):
    aor = "sip:bob@xmpp.example.com"
    source = source_of(aor, "bob@xmpp.example.com/laptop",
                       XmppPresence(True, show, "Status & <text>"), 5.0)
    assert (source.id, source.updated, source.device) == (
        "xmpp:laptop", 5.0, "bob@xmpp.example.com/laptop")
    composed = compose(aor, [source])
    assert summary(composed) == Summary("open", activities, "Status & <text>", False)
    assert valid(serialize_pidf(composed))
    assert composed.tuples[0].contact == "xmpp:bob@xmpp.example.com"
