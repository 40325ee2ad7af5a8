"""Digest authentication in the agent: who may register, publish and watch as whom."""

from __future__ import annotations

from sipresence.presence.agent import AgentConfig
from tests.support.phone import PIDF, Phone, subscribe_headers

from ..sip.test_digest import answer

USERS = {"alice": "s3cret", "bob": "hunter2"}


def phone():
    return Phone(config=AgentConfig(realm="example.com", users=USERS))


def signed(p, method, user, password, *, uri="sip:alice@example.com", headers=(), **kwargs):
    """Send once, get 401, answer its first challenge: the second answer."""
    first = p.request(method, uri=uri, headers=list(headers), **kwargs)
    assert first.status == 401
    challenge = first.headers.get_all("WWW-Authenticate")[0]
    credentials = answer(challenge, user, password, method=method, uri=uri)
    kwargs["cseq"] = kwargs.get("cseq", 1) + 1
    return p.request(method, uri=uri, headers=[*headers, f"Authorization: {credentials}"],
                     **kwargs)


def publish_headers():
    return ["Event: presence", "Content-Type: application/pidf+xml"]


def test_requests_without_credentials_are_challenged_and_change_nothing():
    p = phone()
    body = PIDF.format(basic="open", activity="busy", note="x")
    refused = p.request("PUBLISH", headers=publish_headers(), body=body,
                        from_uri="sip:alice@example.com")
    assert refused.status == 401
    challenges = refused.headers.get_all("WWW-Authenticate")
    assert [c.split("algorithm=")[1].split(",")[0] for c in challenges] == ["SHA-256", "MD5"]
    assert 'realm="example.com"' in challenges[0]
    assert p.agent.publications.all() == [] and len(p.agent.journal) == 0
    # What needs no identity is not challenged: OPTIONS, and calls (answered by presence).
    assert p.request("OPTIONS", call_id="o1").status == 200
    assert p.request("INVITE", call_id="i1").status == 480


def test_each_user_registers_publishes_and_watches_as_itself_only():
    p = phone()
    assert signed(p, "REGISTER", "alice", "s3cret", uri="sip:example.com",
                  to_uri="sip:alice@example.com", from_uri="sip:alice@example.com",
                  call_id="r1", headers=["Contact: <sip:alice@192.0.2.7>"]).status == 200
    body = PIDF.format(basic="open", activity="busy", note="x")
    assert signed(p, "PUBLISH", "bob", "hunter2", headers=publish_headers(), body=body,
                  from_uri="sip:bob@example.com", call_id="p1").status == 403  # not his
    assert signed(p, "PUBLISH", "alice", "s3cret", headers=publish_headers(), body=body,
                  from_uri="sip:alice@example.com", call_id="p2").status == 200
    watching = signed(p, "SUBSCRIBE", "bob", "hunter2", headers=subscribe_headers(),
                      from_uri="sip:bob@example.com", call_id="s1")
    assert watching.status == 200
    posing = signed(p, "SUBSCRIBE", "bob", "hunter2", headers=subscribe_headers(),
                    from_uri="sip:carol@example.com", from_tag="c1", call_id="s2")
    assert posing.status == 403  # bob cannot watch as carol (her rules would apply)
    assert [s.watcher for s in p.agent.notifier.watchers("presence", "sip:alice@example.com")
            ] == ["sip:bob@example.com"]


def test_a_stale_nonce_is_challenged_again_with_stale_true():
    p = phone()
    first = p.request("REGISTER", uri="sip:example.com", to_uri="sip:alice@example.com",
                      from_uri="sip:alice@example.com", call_id="r1",
                      headers=["Contact: <sip:alice@192.0.2.7>"])
    old = answer(first.headers.get_all("WWW-Authenticate")[1], "alice", "s3cret",
                 uri="sip:example.com")
    p.now = 301.0
    again = p.request("REGISTER", uri="sip:example.com", to_uri="sip:alice@example.com",
                      from_uri="sip:alice@example.com", call_id="r1", cseq=2,
                      headers=["Contact: <sip:alice@192.0.2.7>", f"Authorization: {old}"])
    assert again.status == 401
    assert "stale=true" in again.headers.get_all("WWW-Authenticate")[0]
    assert p.agent.registrar.all() == []


def test_credentials_replayed_or_moved_to_another_request_uri_prove_nothing():
    p = phone()
    headers = ["Contact: <sip:alice@192.0.2.7>"]
    first = p.request("REGISTER", uri="sip:example.com", to_uri="sip:alice@example.com",
                      from_uri="sip:alice@example.com", call_id="r1", headers=headers)
    challenge = first.headers.get_all("WWW-Authenticate")[0]
    credentials = f"Authorization: {answer(challenge, 'alice', 's3cret')}"
    ok = p.request("REGISTER", uri="sip:example.com", to_uri="sip:alice@example.com",
                   from_uri="sip:alice@example.com", call_id="r1", cseq=2,
                   headers=[*headers, credentials])
    assert ok.status == 200
    # The same credentials in a new transaction (a captured request sent again).
    replay = p.request("REGISTER", uri="sip:example.com", to_uri="sip:alice@example.com",
                       from_uri="sip:alice@example.com", call_id="r1", cseq=3,
                       headers=[*headers, credentials])
    assert replay.status == 401 and "stale=true" in replay.headers.get("WWW-Authenticate")
    # Fresh credentials computed over another Request-URI, sent straight from the phone.
    second = p.request("REGISTER", uri="sip:example.com", to_uri="sip:alice@example.com",
                       from_uri="sip:alice@example.com", call_id="r2", headers=headers)
    moved = answer(second.headers.get_all("WWW-Authenticate")[0], "alice", "s3cret",
                   uri="sip:elsewhere.test")
    assert p.request("REGISTER", uri="sip:example.com", to_uri="sip:alice@example.com",
                     from_uri="sip:alice@example.com", call_id="r2", cseq=2,
                     headers=[*headers, f"Authorization: {moved}"]).status == 401
