"""The hardened parser and the shared plumbing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from sipresence.documents.xml import (
    DocumentError,
    any_uri,
    format_datetime,
    parse_datetime,
    parse_xml,
    schema,
    xml_id,
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE presence [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><note>&lol3;</note></presence>"""


def test_parses_a_document_and_drops_comments_and_processing_instructions():
    root = parse_xml(b"<?xml version='1.0'?><a><!-- hi --><?pi x?><b>t</b></a>")
    assert [child.tag for child in root] == ["b"]


@pytest.mark.parametrize("body, reason", [
    (b"", "empty XML body"),
    (b" \r\n\t", "empty XML body"),
    (b"<a><b></a>", "XML body not well-formed"),
    (b"not xml at all", "XML body not well-formed"),
    (b"<a>&undefined;</a>", "XML body not well-formed"),
    (b"<a>" * 300 + b"</a>" * 300, "XML body not well-formed"),  # libxml2's depth limit
    (b'<?xml version="1.0" encoding="bogus"?><a/>', "XML body not well-formed"),
    # SIP.js user code: an attribute without a value
    (b'<?xml version="1.0"?>\n<presence entity="sip:32@example.com" foo>'
     b'<tuple id="32"><status><basic>open</basic></status></tuple></presence>',
     "XML body not well-formed"),
])
def test_rejects_what_is_not_well_formed(body, reason):
    with pytest.raises(DocumentError) as info:
        parse_xml(body)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value) and len(str(info.value)) < 60  # a reason phrase


def test_rejects_oversize_bodies_before_parsing():
    body = b"<a>" + b" " * 70000 + b"</a>"
    with pytest.raises(DocumentError, match="too large"):
        parse_xml(body)
    assert parse_xml(body, max_size=80000).tag == "a"


def test_refuses_entity_expansion():
    with pytest.raises(DocumentError, match="entity declarations"):
        parse_xml(BILLION_LAUGHS)


def test_never_reads_an_external_entity(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    body = (f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file://{secret}">]>'
            f"<a>&xxe;</a>").encode()
    with pytest.raises(DocumentError, match="entity"):
        parse_xml(body)


def test_never_reads_an_external_parameter_entity(tmp_path):
    # libxml2 would load this file even with load_dtd=False; the resolver answers nothing
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY leak "LEAKED">')
    body = (f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY % pe SYSTEM "file://{dtd}"> %pe;]>'
            f"<a>x</a>").encode()
    with pytest.raises(DocumentError, match="entity declarations"):
        parse_xml(body)


def test_an_undefined_entity_behind_an_external_dtd_is_refused():
    body = b'<!DOCTYPE a SYSTEM "http://example.invalid/a.dtd"><a>&x;</a>'
    with pytest.raises(DocumentError, match="entity references"):
        parse_xml(body)


def test_an_external_doctype_is_tolerated_and_not_fetched():
    body = (b'<?xml version="1.0"?>\n<!DOCTYPE presence PUBLIC "-//IETF//DTD RFCxxxx XPIDF 1.0//EN"'
            b' "http://example.invalid/xpidf.dtd">\n<presence/>')
    assert parse_xml(body).tag == "presence"


def test_honours_the_encoding_declaration_and_forgives_leading_whitespace():
    body = '\r\n <?xml version="1.0" encoding="ISO-8859-1"?> <a>Café</a>'.encode("latin-1")
    assert parse_xml(body).text == "Café"


def test_the_schema_comes_from_the_package_and_is_cached():
    assert schema() is schema()
    assert isinstance(schema(), etree.XMLSchema)


@pytest.mark.parametrize("value, expected", [
    ("t1", "t1"),
    ("_x.y-z", "_x.y-z"),
    ("800", "t800"),
    ("1", "t1"),
    (None, "t"),
    ("", "t"),
])
def test_xml_id_prefixes_what_only_lacks_a_leading_letter(value, expected):
    assert xml_id(value, "t") == expected


def test_xml_id_repairs_uris_stably_and_distinctly():
    uri = "sip:+YYYYYYYYYY@sip.linphone.org;user=phone"
    repaired = xml_id(uri, "p")
    assert repaired == xml_id(uri, "p")
    assert repaired.startswith("sip-YYYYYYYYYY-sip.linphone.org-user-phone-")
    assert xml_id("a:b", "p") != xml_id("a;b", "p")
    assert xml_id("é", "p") != xml_id("ü", "p")
    for value in (uri, "a:b", "é", "1 2", "-x"):
        check = etree.Element("{urn:ietf:params:xml:ns:pidf}presence", entity="x")
        tuple_ = etree.SubElement(check, "{urn:ietf:params:xml:ns:pidf}tuple",
                                  id=xml_id(value, "t"))
        etree.SubElement(tuple_, "{urn:ietf:params:xml:ns:pidf}status")
        assert schema().validate(check), (value, schema().error_log)


@pytest.mark.parametrize("value", [
    "sip:alice@example.com", "**1001@192.0.2.1", "sip:a b@x", "", "http://[::1", "sip:[v6",
    "sip:é@x", "%zz",
])
def test_any_uri_always_gives_a_valid_any_uri(value):
    check = etree.Element("{urn:ietf:params:xml:ns:pidf}presence", entity=any_uri(value))
    assert schema().validate(check), schema().error_log


def test_any_uri_keeps_valid_values_unchanged():
    for value in ("sip:alice@example.com", "**1001@192.0.2.1", "http://[2001:db8::1]:80/"):
        assert any_uri(value) == value
    # libxml2 refuses brackets in an opaque URI: the address is kept, percent-encoded
    assert any_uri("sip:[2001:db8::1]:5060") == "sip:%5B2001:db8::1%5D:5060"


def test_datetimes_are_read_leniently_and_written_as_utc():
    assert parse_datetime(" 2024-05-01T10:00:00.000Z ") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_datetime("2020-11-18T12:57:35+01:00") == datetime(2020, 11, 18, 11, 57, 35,
                                                                   tzinfo=UTC)
    assert parse_datetime("yesterday") is None
    assert parse_datetime(None) is None
    assert format_datetime(datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2)))) == (
        "2024-05-01T10:00:00Z")
    assert format_datetime(datetime(2024, 5, 1, 12, 0, 0, 5000)) == "2024-05-01T12:00:00.005000"
