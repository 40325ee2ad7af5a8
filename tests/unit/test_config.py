"""Configuration: TOML file, flags on top, clear errors."""

from __future__ import annotations

import pytest

from sipresence.cli import _parser, build_config
from sipresence.config import ConfigError, ListenAddress, load, parse_listen


def write(tmp_path, text):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return str(path)


def test_defaults_follow_the_cli_contract():
    config = build_config(_parser().parse_args(["serve"]))
    assert config.listen == [ListenAddress("udp", "127.0.0.1", 5060),
                             ListenAddress("tcp", "127.0.0.1", 5060)]
    assert config.http == ("127.0.0.1", 8080)
    assert config.db == "var/sipresence.sqlite3" and config.domains == []


def test_file_then_flags(tmp_path):
    path = write(tmp_path, '[server]\nlisten = ["udp:[::1]:5070"]\ndomains = ["a.example"]\n'
                           '[presence]\nmin_expires = 120\nnotify_retries = 5\n'
                           'sub_handling = "confirm"\n'
                           '[auth]\nrealm = "a.example"\n[auth.users]\nalice = "s3cret"\n'
                           '[sip]\nt1 = 0.25\n[log]\nformat = "json"\n'
                           '[routing]\nunavailable_target = "sip:{reason}@vm.example"\n'
                           'busy_activities = ["busy", "meeting"]\n')
    config = build_config(_parser().parse_args(
        ["serve", "--config", path, "--domain", "b.example", "--http", "off"]))
    assert config.listen == [ListenAddress("udp", "::1", 5070)]
    assert config.domains == ["b.example"]  # the flag wins
    assert config.http is None
    assert (config.presence.min_expires, config.presence.notify_retries) == (120, 5)
    assert config.presence.sub_handling == "confirm"
    assert (config.presence.realm, config.presence.users) == ("a.example", {"alice": "s3cret"})
    assert config.timers.t1 == 0.25 and config.log_format == "json"
    routing = config.presence.routing
    assert routing.unavailable_target == "sip:{reason}@vm.example"
    assert routing.busy_activities == frozenset({"busy", "meeting"})


@pytest.mark.parametrize("text, message", [
    ("[server]\nlisten = \"udp:1.2.3.4:5\"\n", "server.listen must be a list"),
    ("[sever]\n", "unknown section [sever]"),
    ("[presence]\nmin_expire = 1\n", "unknown setting presence.min_expire"),
    ("[presence]\nmin_expires = -1\n", "presence.min_expires must be a number"),
    ("[presence]\nmin_expires = 100\nmax_expires = 50\n", "larger than presence.max_expires"),
    ("[runtime]\ngc_tuning = \"yes\"\n", "runtime.gc_tuning must be true or false"),
    ("[auth.users]\nalice = 1234\n", "auth.users must be a table of user names and"),
    ("[presence]\nsub_handling = \"polite-block\"\n",
     "presence.sub_handling must be one of allow, confirm, block"),
    ("[sip\n", "Expected"),
])
def test_bad_files_are_reported(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        build_config(_parser().parse_args(["serve", "--config", write(tmp_path, text)]))


def test_listen_syntax():
    assert parse_listen("tls:[2001:db8::1]:5061") == ListenAddress("tls", "2001:db8::1", 5061)
    with pytest.raises(ConfigError):
        parse_listen("udp:localhost")
    with pytest.raises(ConfigError):
        load("/nonexistent/agent.toml")


XMPP = ('[xmpp]\nserver = "127.0.0.1:5347"\ncomponent = "sip.example.com"\n'
        'secret = "s"\nsip_domain = "Example.com"\nxmpp_domains = ["XMPP.example.com"]\n')


def test_the_xmpp_table_and_the_domains_it_serves(tmp_path):
    config = load(write(tmp_path, '[server]\ndomains = ["example.com"]\n' + XMPP))
    config.check()
    assert config.xmpp is not None
    assert (config.xmpp.server, config.xmpp.component, config.xmpp.sip_domain,
            config.xmpp.xmpp_domains) == (("127.0.0.1", 5347), "sip.example.com",
                                          "example.com", ("xmpp.example.com",))
    # The bridged domain's people are presentities here too.
    assert config.served_domains() == ["example.com", "xmpp.example.com"]
    assert load(None).served_domains() == [] and load(None).xmpp is None


@pytest.mark.parametrize(("text", "message"), [
    (XMPP.replace('secret = "s"\n', ""), "xmpp.secret is needed"),
    (XMPP + 'port = 5\n', "unknown setting xmpp.port"),
    (XMPP.replace('"127.0.0.1:5347"', '"nowhere"'), "xmpp.server"),
    (XMPP.replace('["XMPP.example.com"]', '["example.com"]'), "must not hold the SIP domain"),
    (XMPP.replace('["XMPP.example.com"]', '"xmpp.example.com"'), "list of strings"),
])
def test_a_bad_xmpp_table_is_reported(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text))


def test_the_sip_domain_must_be_served(tmp_path):
    config = load(write(tmp_path, '[server]\ndomains = ["other.example"]\n' + XMPP))
    with pytest.raises(ConfigError, match="not one of server.domains"):
        config.check()


def test_a_domain_cannot_be_both_sip_and_xmpp(tmp_path):
    config = load(write(tmp_path, '[server]\ndomains = ["example.com", "xmpp.example.com"]\n'
                        + XMPP))
    with pytest.raises(ConfigError, match="both a SIP domain"):
        config.check()
