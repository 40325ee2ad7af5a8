"""dialog-info (RFC 4235): every PBX's dialect in, the patched schema out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from sipresence.documents.dialoginfo import (
    DIALOG_STATES,
    Dialog,
    DialogInfo,
    Participant,
    parse_dialog_info,
    serialize_dialog_info,
)
from sipresence.documents.xml import DocumentError

# Asterisk chan_sip, ringing with pickup hints: remote before local, both before state.
CHAN_SIP_EARLY_PICKUP = b"""<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="5" state="full"
  entity="sip:1000@pbx.example.com">
<dialog id="1000" call-id="pickup-a84b4c76e66710@192.0.2.4" local-tag="1928301774"
  remote-tag="a6c85cf" direction="recipient">
<remote>
<identity display="Alice">sip:2001@pbx.example.com</identity>
<target uri="sip:**1000@pbx.example.com"/>
</remote>
<local>
<identity>sip:1000@pbx.example.com</identity>
<target uri="sip:1000@pbx.example.com"/>
</local>
<state>early</state>
</dialog>
</dialog-info>
"""

# Asterisk res_pjsip on hold and FreeSWITCH: pvalue= for pval=; a target without scheme.
PVALUE_AND_SCHEMELESS_TARGET = b"""<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="2" state="full"
  entity="sip:1001@192.0.2.5">
 <dialog id="6a0b8c5e-1f2a-4c3b-9d8e-7f6a5b4c3d2e" direction="recipient">
  <state>confirmed</state>
  <local>
   <identity display="1001">sip:1001@192.0.2.5</identity>
   <target uri="sip:1001@192.0.2.5">
    <param pname="+sip.rendering" pvalue="no"/>
   </target>
  </local>
  <remote>
   <identity display="Alice">sip:1002@192.0.2.5</identity>
   <target uri="**1001@192.0.2.5"/>
  </remote>
 </dialog>
</dialog-info>"""

# Kamailio pua_dialoginfo with the display option: display on target, remote before
# local, an empty local-tag.
KAMAILIO_DISPLAY = b"""<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full"
  entity="sip:alice@example.com">
  <dialog id="c8f1@192.0.2.1" call-id="c8f1@192.0.2.1" local-tag="" remote-tag="77ab"
    direction="initiator">
    <state>confirmed</state>
    <remote>
      <identity>sip:bob@example.com</identity>
      <target uri="sip:bob@192.0.2.9" display="Bob"/>
    </remote>
    <local>
      <identity>sip:alice@example.com</identity>
      <target uri="sip:alice@192.0.2.1" display="Alice"/>
    </local>
  </dialog>
</dialog-info>"""

# Snom: the standard pval, state event and code, duration.
SNOM_TERMINATED = b"""<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="7" state="partial"
  entity="sip:201@example.com">
<dialog id="x1" call-id="3c2a@192.0.2.3" local-tag="aa" remote-tag="bb" direction="initiator">
<state event="remote-bye" code="200">Terminated</state>
<duration>42</duration>
<local><identity display="Me">sip:201@example.com</identity>
<target uri="sip:201@192.0.2.3"><param pname="+sip.rendering" pval="yes"/></target></local>
</dialog>
</dialog-info>"""


def test_asterisk_pjsip_early_sample(sample):
    info = parse_dialog_info(sample("asterisk-pjsip-dialoginfo-early.xml"))
    assert (info.entity, info.version, info.state) == ("sip:1000@pbx.example.com", 3, "full")
    [dialog] = info.dialogs
    assert (dialog.id, dialog.state, dialog.direction) == ("1000", "early", "recipient")
    assert dialog.local == Participant("sip:1000@pbx.example.com", "Bob",
                                       "sip:1000@pbx.example.com")
    assert dialog.remote == Participant("sip:2001@pbx.example.com", "Alice",
                                        "sip:2001@pbx.example.com")


def test_yealink_full_and_bare_dialogs(sample):
    info = parse_dialog_info(sample("yealink-t46g-dialoginfo-full.xml"))
    assert info.entity == "sip:1000@10.2.1.48:5060" and info.version == 1
    full, bare = info.dialogs
    assert full == Dialog("65626", "confirmed", "0_3138198645@10.10.20.31", "2331766736",
                          "1786911541", "initiator",
                          local=Participant("sip:1000@10.2.1.48:5060", None,
                                            "sip:1000@10.2.1.48:5060"),
                          remote=Participant("sip:1@10.2.1.48:5060", None,
                                             "sip:1@10.2.1.48:5060"))
    assert bare == Dialog("65622", "terminated")


def test_chan_sip_pickup_with_participants_before_state():
    [dialog] = parse_dialog_info(CHAN_SIP_EARLY_PICKUP).dialogs
    assert dialog.state == "early" and dialog.call_id == "pickup-a84b4c76e66710@192.0.2.4"
    assert dialog.remote == Participant("sip:2001@pbx.example.com", "Alice",
                                        "sip:**1000@pbx.example.com")
    assert dialog.local.identity == "sip:1000@pbx.example.com"


def test_pvalue_and_a_target_without_scheme():
    [dialog] = parse_dialog_info(PVALUE_AND_SCHEMELESS_TARGET).dialogs
    assert dialog.local.target_params == (("+sip.rendering", "no"),)
    assert dialog.remote.target == "**1001@192.0.2.5"


def test_kamailio_display_on_target_and_empty_local_tag():
    [dialog] = parse_dialog_info(KAMAILIO_DISPLAY).dialogs
    assert dialog.local_tag is None and dialog.remote_tag == "77ab"
    assert dialog.remote == Participant("sip:bob@example.com", "Bob", "sip:bob@192.0.2.9")
    assert dialog.local.display == "Alice"


def test_snom_state_event_code_duration_and_partial():
    info = parse_dialog_info(SNOM_TERMINATED)
    assert info.state == "partial"
    [dialog] = info.dialogs
    assert (dialog.state, dialog.event, dialog.code, dialog.duration) == (
        "terminated", "remote-bye", 200, 42)
    assert dialog.local.target_params == (("+sip.rendering", "yes"),)


@pytest.mark.parametrize("body, expected", [
    (b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="12" state="full"'
     b' entity="sip:101@192.0.2.1"/>', DialogInfo("sip:101@192.0.2.1", 12)),
    (b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info"/>', DialogInfo("")),
    (b'<dialog-info version="x" state="weird" entity="sip:a@b"><dialog><state>trying</state>'
     b"</dialog><dialog id='q'/></dialog-info>", DialogInfo("sip:a@b", 0, "full",
                                                            (Dialog("d0", "trying"),))),
])
def test_idle_and_broken_documents(body, expected):
    assert parse_dialog_info(body) == expected


def test_bad_event_and_code_values_are_dropped():
    body = (b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full"'
            b' entity="sip:a@b"><dialog id="1"><state event="hangup" code="99">terminated</state>'
            b"<duration>-1</duration></dialog></dialog-info>")
    assert parse_dialog_info(body).dialogs == (Dialog("1", "terminated"),)


def test_wrong_documents_are_refused():
    with pytest.raises(DocumentError, match="not a dialog-info"):
        parse_dialog_info(b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>')
    with pytest.raises(DocumentError, match="not well-formed"):
        parse_dialog_info(b"<dialog-info")


@pytest.mark.parametrize("body", [CHAN_SIP_EARLY_PICKUP, PVALUE_AND_SCHEMELESS_TARGET,
                                  KAMAILIO_DISPLAY, SNOM_TERMINATED])
def test_quirky_documents_come_out_valid_and_in_schema_order(body, valid):
    out = serialize_dialog_info(parse_dialog_info(body))
    valid(out)
    dialog = etree.fromstring(out)[0]
    order = [etree.QName(child).localname for child in dialog]
    assert order == sorted(order, key=["state", "duration", "local", "remote"].index)
    assert b"pvalue" not in out and b'display="' not in out.split(b"<target")[-1]


def test_written_document_keeps_local_and_remote_and_pickup_ids(valid):
    info = DialogInfo("sip:1000@pbx.example.com", 9, "full", (
        Dialog("1000", "confirmed", "abc@host", "lt", "rt", "recipient", duration=5,
               local=Participant("sip:1000@pbx.example.com", "Bob", "sip:1000@192.0.2.2",
                                 (("+sip.rendering", "no"),)),
               remote=Participant("sip:2000@pbx.example.com", "Alice")),))
    out = serialize_dialog_info(info)
    valid(out)
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<dialog-info xmlns="urn:'
                          b'ietf:params:xml:ns:dialog-info" version="9" state="full"')
    assert (b'<dialog id="1000" call-id="abc@host" local-tag="lt" remote-tag="rt"'
            b' direction="recipient">') in out
    assert b'<param pname="+sip.rendering" pval="no"/>' in out
    assert parse_dialog_info(out) == info


TEXT = st.text("ab yzÉ€漢<&>'\"", min_size=1, max_size=10).map(str.strip).filter(bool)
URI = st.builds("sip:{}@{}".format, st.text("ab1*", min_size=1, max_size=4),
                st.sampled_from(["example.com", "192.0.2.1:5060"]))
PARTICIPANTS = st.builds(
    Participant, identity=st.none() | URI, display=st.none() | TEXT, target=st.none() | URI,
    target_params=st.lists(st.tuples(TEXT, TEXT), max_size=2).map(tuple),
).filter(lambda p: (p.identity is not None or p.display is None)
         and (p.target is not None or not p.target_params))
DIALOGS = st.builds(
    Dialog, id=TEXT, state=st.sampled_from(DIALOG_STATES), call_id=st.none() | TEXT,
    local_tag=st.none() | TEXT, remote_tag=st.none() | TEXT,
    direction=st.sampled_from([None, "initiator", "recipient"]),
    event=st.sampled_from([None, "cancelled", "rejected", "replaced", "local-bye", "remote-bye",
                           "error", "timeout"]),
    code=st.none() | st.integers(100, 699), duration=st.none() | st.integers(0, 10**9),
    local=st.none() | PARTICIPANTS, remote=st.none() | PARTICIPANTS,
)
INFOS = st.builds(DialogInfo, entity=URI, version=st.integers(0, 2**40),
                  state=st.sampled_from(["full", "partial"]),
                  dialogs=st.lists(DIALOGS, max_size=3).map(tuple))


@given(INFOS)
def test_generated_documents_are_valid_and_read_back_equal(valid, info):
    out = serialize_dialog_info(info)
    valid(out)
    assert parse_dialog_info(out) == info
