"""RFC 3903 event state compositor."""

from __future__ import annotations

import pytest

from sipresence.presence.packages import EventPackage
from sipresence.presence.publications import EventStateCompositor, PublishError


def parse(body: bytes, content_type: str) -> str:
    if body.startswith(b"bad"):
        raise ValueError("not a document")
    return body.decode()


PKG = EventPackage("presence", ("application/pidf+xml",), ("application/pidf+xml",), parse,
                   min_expires=60, max_expires=7200)
ALICE = "sip:alice@example.com"


def publish(esc, *, if_match=None, expires=None, body=b"open", publisher="udp:192.0.2.1:5060",
            call_id="c1", now=0.0, content_type="application/pidf+xml", resource=ALICE):
    return esc.publish(package=PKG, resource=resource, if_match=if_match, expires=expires,
                       content_type=content_type, body=body, publisher=publisher,
                       call_id=call_id, now=now)


def test_initial_publish_stores_state_with_default_expiry_and_an_etag():
    esc = EventStateCompositor()
    result = publish(esc)
    assert result.etag and result.expires == 3600 and result.changed
    [pub] = esc.for_resource(ALICE, "presence")
    assert pub.document == "open" and pub.expires_at == 3600


def test_refresh_without_body_gives_a_new_etag_and_keeps_state_unchanged():
    esc = EventStateCompositor()
    first = publish(esc)
    refreshed = publish(esc, if_match=first.etag, body=b"", content_type=None, now=100,
                        expires=600)
    assert refreshed.etag != first.etag and not refreshed.changed
    assert esc.get(first.etag) is None  # the old tag is no longer valid
    [pub] = esc.for_resource(ALICE, "presence")
    assert pub.expires_at == 700 and pub.document == "open"


def test_modify_replaces_the_body():
    esc = EventStateCompositor()
    first = publish(esc)
    modified = publish(esc, if_match=first.etag, body=b"closed", now=5)
    assert modified.changed
    [pub] = esc.for_resource(ALICE, "presence")
    assert pub.document == "closed" and pub.updated_at == 5


def test_expires_zero_removes():
    esc = EventStateCompositor()
    first = publish(esc)
    removed = publish(esc, if_match=first.etag, body=b"", content_type=None, expires=0)
    assert removed.changed and removed.expires == 0 and removed.etag is None
    assert esc.for_resource(ALICE, "presence") == []


@pytest.mark.parametrize("kwargs, status, header", [
    ({"if_match": "nope"}, 412, None),
    ({"expires": 10}, 423, ("Min-Expires", "60")),
    ({"content_type": "text/plain"}, 415, ("Accept", "application/pidf+xml")),
    ({"body": b"bad xml"}, 400, None),
    ({"body": b"", "content_type": None}, 400, None),
])
def test_errors_change_nothing(kwargs, status, header):
    esc = EventStateCompositor()
    first = publish(esc)
    with pytest.raises(PublishError) as error:
        publish(esc, **kwargs)
    assert error.value.status == status
    if header:
        assert header in error.value.headers
    [pub] = esc.for_resource(ALICE, "presence")
    assert pub.etag == first.etag and pub.document == "open"


def test_an_expired_etag_is_412_and_publications_expire_on_time():
    esc = EventStateCompositor()
    first = publish(esc, expires=60)
    assert esc.next_deadline() == 60
    with pytest.raises(PublishError) as error:
        publish(esc, if_match=first.etag, body=b"", content_type=None, now=61)
    assert error.value.status == 412
    assert [p.etag for p in esc.expire(60.0)] == [first.etag]
    assert esc.for_resource(ALICE, "presence") == []


def test_expiry_is_capped_at_the_maximum():
    esc = EventStateCompositor()
    assert publish(esc, expires=10**6).expires == 7200


def test_the_same_publisher_starting_over_replaces_its_old_publication():
    esc = EventStateCompositor()
    first = publish(esc, call_id="pj-1")
    again = publish(esc, body=b"closed", call_id="pj-1", publisher="udp:192.0.2.1:5060")
    assert again.removed is not None and again.removed.etag == first.etag
    assert [p.document for p in esc.for_resource(ALICE, "presence")] == ["closed"]


def test_two_devices_keep_two_publications():
    esc = EventStateCompositor()
    publish(esc, call_id="a", publisher="udp:192.0.2.1:5060")
    publish(esc, call_id="b", publisher="udp:192.0.2.2:5060", body=b"closed")
    assert sorted(p.document for p in esc.for_resource(ALICE, "presence")) == ["closed", "open"]


def test_an_etag_of_another_resource_is_412():
    esc = EventStateCompositor()
    first = publish(esc)
    with pytest.raises(PublishError) as error:
        publish(esc, if_match=first.etag, resource="sip:bob@example.com")
    assert error.value.status == 412
