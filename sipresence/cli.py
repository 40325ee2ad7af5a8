"""The ``sipresence`` command.

``sipresence serve`` runs the agent (see README.md for the flags); flags override
the configuration file, which overrides the built-in defaults.  ``sipresence
announce`` plays prompts to redirected callers; the other commands talk to a running
agent's HTTP API (:mod:`sipresence.client`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .client import COMMANDS, add_commands
from .client import run as run_client
from .config import Config, ConfigError, load, parse_hostport, parse_listen

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipresence",
                                     description="A SIP/SIMPLE presence agent for voice systems.")
    parser.add_argument("--version", action="version", version=f"sipresence {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the presence agent")
    serve.add_argument("--config", metavar="FILE", help="TOML configuration file")
    serve.add_argument("--listen", metavar="TRANSPORT:HOST:PORT", action="append",
                       help="SIP listener, repeatable: udp:, tcp: or tls: "
                            "(default udp:127.0.0.1:5060 and tcp:127.0.0.1:5060)")
    serve.add_argument("--http", metavar="HOST:PORT",
                       help="HTTP API and /metrics (default 127.0.0.1:8080; 'off' to disable)")
    serve.add_argument("--db", metavar="PATH",
                       help="SQLite database (default ./var/sipresence.sqlite3; :memory: allowed)")
    serve.add_argument("--domain", metavar="NAME", action="append",
                       help="a domain served, repeatable (default: any domain)")
    serve.add_argument("--tls-certificate", metavar="PEM", help="certificate for tls: listeners")
    serve.add_argument("--tls-key", metavar="PEM", help="private key for tls: listeners")
    serve.add_argument("--log-format", choices=("text", "json"))
    serve.add_argument("--log-level", choices=("debug", "info", "warn", "error"))
    announce = commands.add_parser(
        "announce", help="answer redirected calls with a busy or unavailable prompt "
                         "(needs the 'media' extra: pjsua2)")
    announce.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:5090",
                          help="UDP address to take calls on (default 127.0.0.1:5090)")
    announce.add_argument("--busy-prompt", metavar="WAV", help="prompt for busy callees")
    announce.add_argument("--unavailable-prompt", metavar="WAV",
                          help="prompt for unavailable callees")
    announce.add_argument("--max-calls", type=int, default=0,
                          help="stop after this many calls (0: run until SIGTERM)")
    add_commands(commands)
    return parser


def build_config(args: argparse.Namespace) -> Config:
    config = load(args.config)
    if args.listen:
        config.listen = [parse_listen(text) for text in args.listen]
    if args.http:
        config.http = None if args.http == "off" else parse_hostport(args.http, "--http")
    if args.db:
        config.db = args.db
    if args.domain:
        config.domains = list(args.domain)
    if args.tls_certificate:
        config.tls_certificate = args.tls_certificate
    if args.tls_key:
        config.tls_key = args.tls_key
    if args.log_format:
        config.log_format = args.log_format
    if args.log_level:
        config.log_level = args.log_level
    config.check()
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "announce":
        return _announce(args)
    if args.command in COMMANDS:
        return run_client(args)
    try:
        config = build_config(args)
    except (ConfigError, ValueError) as exc:
        print(f"sipresence: {exc}", file=sys.stderr)
        return 2
    from .app import run

    return run(config)


def _announce(args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        host, port = parse_hostport(args.listen, "--listen")
    except ConfigError as exc:
        print(f"sipresence: {exc}", file=sys.stderr)
        return 2
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        print("sipresence announce needs pjsua2: pip install 'sipresence[media]'",
              file=sys.stderr)
        return 2
    from .media.announce import run as announce
    from .media.tones import write_prompts

    prompts = None
    if args.busy_prompt or args.unavailable_prompt:
        import tempfile

        prompts = write_prompts(Path(tempfile.mkdtemp(prefix="sipresence-prompts-")))
        if args.busy_prompt:
            prompts["busy"] = Path(args.busy_prompt)
        if args.unavailable_prompt:
            prompts["unavailable"] = Path(args.unavailable_prompt)
    return announce(host, port, prompts, args.max_calls)


if __name__ == "__main__":
    sys.exit(main())
