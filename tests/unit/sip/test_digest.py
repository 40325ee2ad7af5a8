"""Digest authentication: RFC 7616's test vectors, our challenges, stale nonces."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipresence.sip.digest import (
    ALGORITHMS,
    Authenticator,
    Credentials,
    parse_credentials,
    response_for,
    same_uri,
)
from sipresence.sip.headers import HeaderError

RFC7616 = Credentials(
    username="Mufasa", realm="http-auth@example.org",
    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", uri="/dir/index.html",
    response="", qop="auth", nc="00000001",
    cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")


@pytest.mark.parametrize("algorithm, expected", [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_section_3_9_1_vectors(algorithm, expected):
    ha1 = ALGORITHMS[algorithm]("Mufasa:http-auth@example.org:Circle of Life")
    assert response_for(algorithm, ha1, "GET", RFC7616) == expected


def test_rfc2617_section_3_5_vector_and_rfc2069_without_qop():
    c = Credentials("Mufasa", "testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                    "/dir/index.html", "", qop="auth", nc="00000001", cnonce="0a4f113b")
    ha1 = hashlib.md5(b"Mufasa:testrealm@host.com:Circle Of Life").hexdigest()
    assert response_for("MD5", ha1, "GET", c) == "6629fae49393a05397450978507c4ef1"
    bare = Credentials("Mufasa", "r", "n", "/", "")
    assert response_for("MD5", ha1, "GET", bare) == hashlib.md5(
        f"{ha1}:n:{hashlib.md5(b'GET:/').hexdigest()}".encode()).hexdigest()
    assert response_for("SHA-512", ha1, "GET", bare) is None
    assert response_for("MD5", ha1, "GET", Credentials("u", "r", "n", "/", "",
                                                       qop="auth-int")) is None


def answer(challenge: str, user: str, password: str, method="REGISTER",
           uri="sip:example.com", nc="00000001", cnonce="c0ffee") -> str:
    """What a phone sends back to *challenge*."""
    fields = dict(part.strip().split("=", 1) for part in challenge[len("Digest "):].split(","))
    realm, nonce = fields["realm"].strip('"'), fields["nonce"].strip('"')
    algorithm = fields["algorithm"]
    ha1 = ALGORITHMS[algorithm](f"{user}:{realm}:{password}")
    c = Credentials(user, realm, nonce, uri, "", algorithm, "auth", nc, cnonce)
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response_for(algorithm, ha1, method, c)}", algorithm={algorithm}, '
            f'qop=auth, nc={nc}, cnonce="{cnonce}"')


def test_challenges_offer_sha256_then_md5_and_good_answers_pass():
    auth = Authenticator("example.com", {"alice": "s3cret"})
    challenges = auth.challenge(now=1000.0)
    assert [name for name, _ in challenges] == ["WWW-Authenticate"] * 2
    assert "algorithm=SHA-256" in challenges[0][1] and "algorithm=MD5" in challenges[1][1]
    assert 'qop="auth"' in challenges[0][1] and "stale" not in challenges[0][1]
    for index, (_, challenge) in enumerate(challenges):  # two devices, one per algorithm
        assert auth.check("REGISTER", [answer(challenge, "alice", "s3cret",
                                              cnonce=f"dev{index}")], 1010.0) == "alice"


def test_wrong_passwords_users_methods_realms_and_forged_nonces_fail():
    auth = Authenticator("example.com", {"alice": "s3cret"})
    challenge = auth.challenge(now=1000.0)[0][1]
    assert auth.check("REGISTER", [answer(challenge, "alice", "guess")], 1010.0) is False
    assert auth.check("REGISTER", [answer(challenge, "mallory", "s3cret")], 1010.0) is False
    good = answer(challenge, "alice", "s3cret")
    assert auth.check("PUBLISH", [good], 1010.0) is False  # signed for REGISTER
    assert auth.check("REGISTER", [good.replace("example.com", "elsewhere")], 1010.0) is False
    other = Authenticator("example.com", {"alice": "s3cret"})  # another secret
    assert other.check("REGISTER", [good], 1010.0) is False
    assert auth.check("REGISTER", ["Basic YWxpY2U6czNjcmV0", 'Digest realm="x'], 1010.0) is False


def test_an_old_nonce_with_the_right_password_is_stale():
    auth = Authenticator("example.com", {"alice": "s3cret"}, nonce_lifetime=300)
    challenge = auth.challenge(now=1000.0)[0][1]
    old = answer(challenge, "alice", "s3cret")
    assert auth.check("REGISTER", [old], 1300.0) == "alice"
    assert auth.check("REGISTER", [old], 1301.0) is True  # stale: challenge again
    assert "stale=true" in auth.challenge(now=1301.0, stale=True)[0][1]
    wrong = answer(challenge, "alice", "guess")
    assert auth.check("REGISTER", [wrong], 1301.0) is False  # stale only if right


@pytest.mark.parametrize("value", [
    'Basic abc', 'Digest username="a"', 'Digest username', 'Digest username="a, realm="r"'])
def test_malformed_credentials_are_header_errors(value):
    with pytest.raises(HeaderError):
        parse_credentials(value)


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=300) | st.from_regex(
    r'Digest( [a-z]{1,9}=("[^"]{0,20}"|[a-zA-Z0-9=/+.]{0,20}),?){0,9}', fullmatch=True))
def test_any_authorization_value_is_refused_or_parsed_never_raises(value):
    auth = Authenticator("example.com", {"alice": "s3cret"})
    assert auth.check("REGISTER", [value], 1000.0) in (False, True)  # no valid MAC
    try:
        parse_credentials(value)
    except HeaderError:
        pass


def test_a_replayed_request_is_refused_as_stale_and_counting_on_is_accepted():
    auth = Authenticator("example.com", {"alice": "s3cret", "bob": "pw"})
    challenge = auth.challenge(now=1000.0)[0][1]
    first = answer(challenge, "alice", "s3cret")
    assert auth.check("REGISTER", [first], 1001.0) == "alice"
    assert auth.check("REGISTER", [first], 1002.0) is True  # the same again: a replay
    assert auth.replays == 1
    assert auth.check("REGISTER", [answer(challenge, "alice", "s3cret", nc="00000002")],
                      1003.0) == "alice"  # the client counting on, as RFC 7616 asks
    assert auth.check("REGISTER", [answer(challenge, "alice", "s3cret", nc="00000002")],
                      1004.0) is True
    # Another client nonce (another device of Alice's, or Bob) counts on its own.
    assert auth.check("REGISTER", [answer(challenge, "alice", "s3cret", cnonce="beef")],
                      1005.0) == "alice"
    assert auth.check("REGISTER", [answer(challenge, "bob", "pw")], 1005.0) == "bob"


def test_credentials_without_qop_are_good_once():
    auth = Authenticator("example.com", {"alice": "s3cret"})
    nonce = auth.challenge(now=1000.0)[0][1].split('nonce="')[1].split('"')[0]
    ha1 = ALGORITHMS["MD5"]("alice:example.com:s3cret")
    c = Credentials("alice", "example.com", nonce, "sip:example.com", "")
    value = (f'Digest username="alice", realm="example.com", nonce="{nonce}", '
             f'uri="sip:example.com", response="{response_for("MD5", ha1, "REGISTER", c)}"')
    assert auth.check("REGISTER", [value], 1001.0) == "alice"
    assert auth.check("REGISTER", [value], 1002.0) is True


def test_every_challenge_has_its_own_nonce():
    auth = Authenticator("example.com", {"alice": "s3cret"})
    assert auth.challenge(now=1000.0)[0][1] != auth.challenge(now=1000.0)[0][1]


def test_credentials_are_for_the_request_uri_they_were_computed_over():
    auth = Authenticator("example.com", {"alice": "s3cret"})
    challenge = auth.challenge(now=1000.0)[0][1]
    moved = answer(challenge, "alice", "s3cret", uri="sip:example.com")
    assert auth.check("REGISTER", [moved], 1001.0, uri="sip:other.example") is False
    assert auth.check("REGISTER", [moved], 1001.0, uri="sip:EXAMPLE.com;transport=tcp") \
        == "alice"  # the same URI written otherwise
    assert same_uri("sip:alice@example.com:5060", "sip:alice@Example.COM:5060;lr")
    assert not same_uri("sip:alice@example.com", "sip:Alice@example.com")
    assert not same_uri("sip:alice@example.com", "sips:alice@example.com")
    assert same_uri("tel:+1555", "TEL:+1555") and not same_uri("x", "y")
