"""watcherinfo (RFC 3858)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipresence.documents.watcherinfo import (
    WATCHER_EVENTS,
    WATCHER_STATUSES,
    Watcher,
    WatcherInfo,
    WatcherList,
    parse_watcherinfo,
    serialize_watcherinfo,
)
from sipresence.documents.xml import DocumentError


def test_kamailio_sample(sample):
    info = parse_watcherinfo(sample("kamailio-presence-winfo.xml"))
    assert info == WatcherInfo(2, "full", (WatcherList("sip:alice@example.com", "presence", (
        Watcher("0x7f3a2c1b.5e6d", "sip:bob@example.com", "active", "subscribe"),
        Watcher("0x7f3a2c1b.5e6e", "sip:carol@example.com", "pending", "subscribe"),
    )),))


def test_sample_reserializes_validly(sample, valid):
    out = serialize_watcherinfo(parse_watcherinfo(sample("kamailio-presence-winfo.xml")))
    valid(out)
    assert b'<watcher id="0x7f3a2c1b.5e6d" status="active" event="subscribe">sip:bob@' in out


def test_every_attribute_is_written(valid):
    info = WatcherInfo(7, "partial", (WatcherList("sip:alice@example.com", "presence", (
        Watcher("w1", "sip:bob@example.com", "terminated", "timeout", "Bob Dylan", 0, 3600,
                "en"),)),))
    out = serialize_watcherinfo(info)
    valid(out)
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<watcherinfo xmlns="urn:ietf'
                          b':params:xml:ns:watcherinfo" version="7" state="partial">')
    assert (b'<watcher id="w1" status="terminated" event="timeout" display-name="Bob Dylan"'
            b' expiration="0" duration-subscribed="3600" xml:lang="en">sip:bob@example.com'
            b"</watcher>") in out
    assert parse_watcherinfo(out) == info


def test_lenient_reading():
    body = b"""<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="x">
      <watcher-list resource=" sip:a@b " package="presence">
        <watcher status="Active" event="refreshed">sip:c@d</watcher>
        <watcher id="2" status="paused" event="APPROVED" expiration="-5">sip:e@f</watcher>
        <watcher id="3" status="active" event="subscribe"> </watcher>
      </watcher-list>
      <other/>
    </watcherinfo>"""
    assert parse_watcherinfo(body) == WatcherInfo(0, "full", (WatcherList("sip:a@b", "presence", (
        Watcher("sip:c@d", "sip:c@d", "active", "subscribe"),
        Watcher("2", "sip:e@f", "pending", "approved"),
    )),))


def test_wrong_document_is_refused():
    with pytest.raises(DocumentError, match="not a watcherinfo"):
        parse_watcherinfo(b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>')


URI = st.builds("sip:{}@{}".format, st.text("ab1", min_size=1, max_size=4),
                st.sampled_from(["example.com", "192.0.2.1:5060"]))
TEXT = st.text("ab yzÉ€漢<&>'\"", min_size=1, max_size=10).map(str.strip).filter(bool)
WATCHERS = st.builds(
    Watcher, id=TEXT, uri=URI, status=st.sampled_from(WATCHER_STATUSES),
    event=st.sampled_from(WATCHER_EVENTS), display_name=st.none() | TEXT,
    expiration=st.none() | st.integers(0, 2**63),
    duration_subscribed=st.none() | st.integers(0, 2**63),
    lang=st.sampled_from([None, "en", "de-CH"]),
)
INFOS = st.builds(
    WatcherInfo, version=st.integers(0, 2**40), state=st.sampled_from(["full", "partial"]),
    lists=st.lists(st.builds(WatcherList, resource=URI, package=st.sampled_from(
        ["presence", "dialog", "message-summary"]),
        watchers=st.lists(WATCHERS, max_size=3).map(tuple)), max_size=3).map(tuple),
)


@given(INFOS)
def test_generated_documents_are_valid_and_read_back_equal(valid, info):
    out = serialize_watcherinfo(info)
    valid(out)
    assert parse_watcherinfo(out) == info
