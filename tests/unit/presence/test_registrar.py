"""RFC 3261 section 10 registrar, with the RFC 4475 contact-parameter messages."""

from __future__ import annotations

import pytest

from sipresence.presence.registrar import RegisterError, Registrar
from sipresence.sip.parser import parse_datagram, validate


def register(contacts=("<sip:alice@192.0.2.7:5070>",), *, expires="3600", cseq=1,
             call_id="reg-1", user="alice"):
    lines = ["REGISTER sip:example.com SIP/2.0",
             f"Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK-r{cseq}",
             f"From: <sip:{user}@example.com>;tag=f1", f"To: <sip:{user}@example.com>",
             f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER", "Max-Forwards: 70",
             "User-Agent: test-phone/1.0"]
    lines += [f"Contact: {c}" for c in contacts]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    message = parse_datagram(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
    validate(message)
    return message


def test_a_binding_is_added_returned_with_its_expiry_and_expires():
    reg = Registrar()
    result = reg.register(register(), now=0.0)
    assert result.aor == "sip:alice@example.com" and result.changed
    assert reg.contact_headers(result.bindings, now=100.0) == [
        ("Contact", "<sip:alice@192.0.2.7:5070>;expires=3500")]
    assert reg.next_deadline() == 3600
    assert [b.uri for b in reg.expire(3600.0)] == ["sip:alice@192.0.2.7:5070"]
    assert reg.bindings("sip:alice@example.com") == []


def test_several_contacts_with_q_are_ordered_best_first():
    reg = Registrar()
    reg.register(register(["<sip:a@192.0.2.7>;q=0.5", "<sip:b@192.0.2.8>;q=0.9"]), now=0)
    assert [b.uri for b in reg.bindings("sip:alice@example.com")] == ["sip:b@192.0.2.8",
                                                                      "sip:a@192.0.2.7"]


def test_contact_expires_zero_removes_one_and_star_removes_all():
    reg = Registrar()
    reg.register(register(["<sip:a@192.0.2.7>", "<sip:b@192.0.2.8>"]), now=0)
    result = reg.register(register(["<sip:a@192.0.2.7>;expires=0"], cseq=2), now=1)
    assert [b.uri for b in result.removed] == ["sip:a@192.0.2.7"]
    result = reg.register(register(["*"], expires="0", cseq=3), now=2)
    assert [b.uri for b in result.removed] == ["sip:b@192.0.2.8"]
    assert reg.all() == []


@pytest.mark.parametrize("contacts, expires, status", [
    (["*"], "3600", 400),
    (["*", "<sip:a@192.0.2.7>"], "0", 400),
    (["<sip:a@192.0.2.7>"], "30", 423),
    (["<sip:a@192.0.2.7>;q=2"], "3600", 400),
    (["<sip:a@exa mple.com>"], "3600", 400),
])
def test_bad_registers_change_nothing(contacts, expires, status):
    reg = Registrar()
    reg.register(register(), now=0)
    with pytest.raises(RegisterError) as error:
        reg.register(register(contacts, expires=expires, cseq=2), now=1)
    assert error.value.status == status
    if status == 423:  # RFC 3261 10.3 step 7: the answer says what is acceptable
        assert ("Min-Expires", str(reg.min_expires)) in error.value.headers
    assert [b.uri for b in reg.all()] == ["sip:alice@192.0.2.7:5070"]


def test_an_older_cseq_in_the_same_call_id_is_refused():
    reg = Registrar()
    reg.register(register(cseq=5), now=0)
    with pytest.raises(RegisterError) as error:
        reg.register(register(cseq=5), now=1)
    assert error.value.status == 500


def test_instance_id_identifies_the_device_across_contact_changes():
    reg = Registrar()
    inst = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1'
    reg.register(register([f"<sip:alice@192.0.2.7:5070>;{inst}"]), now=0)
    reg.register(register([f"<sip:alice@198.51.100.1:40000>;{inst}"], cseq=2), now=10)
    [binding] = reg.all()
    assert binding.uri == "sip:alice@198.51.100.1:40000"
    assert binding.instance == "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
    assert reg.contact_headers([binding], 10)[0][1] == (
        f"<sip:alice@198.51.100.1:40000>;{inst};expires=3600")


def test_rfc4475_cparam01_parameter_of_a_bare_contact_belongs_to_the_header():
    reg = Registrar()
    result = reg.register(register(["sip:+19725552222@gw1.example.net;unknownparam"]), now=0)
    [binding] = result.bindings
    assert binding.uri == "sip:+19725552222@gw1.example.net"
    assert binding.contact == "<sip:+19725552222@gw1.example.net>;unknownparam"


def test_rfc4475_cparam02_parameter_inside_brackets_belongs_to_the_uri():
    reg = Registrar()
    result = reg.register(register(["<sip:+19725552222@gw1.example.net;unknownparam>"]), now=0)
    [binding] = result.bindings
    assert binding.uri == "sip:+19725552222@gw1.example.net;unknownparam"
    assert binding.contact == "<sip:+19725552222@gw1.example.net;unknownparam>"


def test_rfc4475_regescrt_escaped_uri_header_is_kept_intact():
    reg = Registrar()
    value = "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>"
    result = reg.register(register([value], user="user"), now=0)
    assert reg.contact_headers(result.bindings, 0) == [("Contact", value + ";expires=3600")]


def test_no_gruu_is_offered():
    reg = Registrar()
    result = reg.register(register(['<sip:a@192.0.2.7>;+sip.instance="<urn:uuid:1>"']), now=0)
    assert "gruu" not in reg.contact_headers(result.bindings, 0)[0][1]
