"""The ``sipresence`` command.

``sipresence serve`` runs the agent (see README.md for the flags); flags override
the configuration file, which overrides the built-in defaults.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
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
    try:
        config = build_config(args)
    except (ConfigError, ValueError) as exc:
        print(f"sipresence: {exc}", file=sys.stderr)
        return 2
    from .app import run

    return run(config)


if __name__ == "__main__":
    sys.exit(main())
