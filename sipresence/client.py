"""The command-line client of the HTTP API: ``sipresence status|set|clear|route|
watchers|allow|confirm|block|unrule|events``, for shells and routing scripts.

Each command is one request to a running agent (``--api``, 127.0.0.1:8080 by
default) and prints a line a person can read, or the JSON with ``--json``.  Exit
status 0 when the agent did it, 1 when it refused (its reason is printed) or could
not be reached, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

__all__ = ["add_commands", "run"]

COMMANDS = ("status", "set", "clear", "route", "watchers", "allow", "confirm", "block",
            "unrule", "events")


class ApiFailure(Exception):
    """The agent said no, or could not be reached; the text says which."""


def add_commands(commands: Any) -> None:
    """Add the client subcommands to the ``sipresence`` parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", metavar="HOST:PORT", default="127.0.0.1:8080",
                        help="the agent's HTTP API (default 127.0.0.1:8080)")
    common.add_argument("--json", action="store_true", help="print the API's JSON")
    status = commands.add_parser("status", parents=[common], help="a presentity's state")
    status.add_argument("aor")
    put = commands.add_parser("set", parents=[common],
                              help="set the api source of a presentity")
    put.add_argument("aor")
    put.add_argument("basic", choices=("open", "closed"))
    put.add_argument("--activity", action="append", default=[], metavar="RPID",
                     help="an RPID activity (busy, away, meeting, ...), repeatable")
    put.add_argument("--note")
    put.add_argument("--expires", type=int, metavar="SECONDS")
    clear = commands.add_parser("clear", parents=[common],
                                help="remove the api source of a presentity")
    clear.add_argument("aor")
    route = commands.add_parser("route", parents=[common],
                                help="how a call to CALLEE would be answered")
    route.add_argument("callee")
    watchers = commands.add_parser("watchers", parents=[common],
                                   help="who watches a presentity, and the rules")
    watchers.add_argument("aor")
    for action, what in (("allow", "may watch"), ("confirm", "waits for a decision"),
                         ("block", "may not watch")):
        rule = commands.add_parser(action, parents=[common],
                                   help=f"WATCHER (an address or a domain) {what}")
        rule.add_argument("aor")
        rule.add_argument("watcher")
    unrule = commands.add_parser("unrule", parents=[common],
                                 help="remove the rule for WATCHER (back to the default)")
    unrule.add_argument("aor")
    unrule.add_argument("watcher")
    events = commands.add_parser("events", parents=[common],
                                 help="print each change as it happens (all, or one AOR)")
    events.add_argument("aor", nargs="?")


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "events":
            return _events(args)
        value = _call(args)
    except ApiFailure as exc:
        print(f"sipresence {args.command}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(value, indent=2) if args.json else _describe(args.command, value))
    return 0


def _path(aor: str) -> str:
    return quote(aor, safe="")


def _call(args: argparse.Namespace) -> Any:
    command = args.command
    if command == "status":
        return _request(args.api, "GET", f"/v1/presentities/{_path(args.aor)}")
    if command == "set":
        body: dict[str, Any] = {"basic": args.basic, "activities": args.activity}
        if args.note is not None:
            body["note"] = args.note
        if args.expires is not None:
            body["expires"] = args.expires
        return _request(args.api, "PUT", f"/v1/presentities/{_path(args.aor)}", body)
    if command == "clear":
        return _request(args.api, "DELETE", f"/v1/presentities/{_path(args.aor)}")
    if command == "route":
        return _request(args.api, "GET", f"/v1/route?callee={_path(args.callee)}")
    if command == "watchers":
        return _request(args.api, "GET", f"/v1/presentities/{_path(args.aor)}/watchers")
    path = f"/v1/presentities/{_path(args.aor)}/rules/{_path(args.watcher)}"
    if command == "unrule":
        return _request(args.api, "DELETE", path)
    return _request(args.api, "PUT", path, {"sub_handling": command})


def _request(api: str, method: str, path: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{api}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        try:
            reason = json.loads(error.read())["error"]
        except (ValueError, KeyError, TypeError):
            reason = error.reason
        raise ApiFailure(f"{error.code} {reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ApiFailure(f"cannot reach the agent at {api}: {reason}") from None


def _events(args: argparse.Namespace) -> int:
    """Print each ``presence`` event of ``GET /v1/events`` until interrupted."""
    path = "/v1/events" + (f"?aor={_path(args.aor)}" if args.aor else "")
    try:
        answer = urllib.request.urlopen(f"http://{args.api}{path}", timeout=None)
    except (urllib.error.URLError, OSError) as error:
        print(f"sipresence events: cannot reach the agent at {args.api}: "
              f"{getattr(error, 'reason', error)}", file=sys.stderr)
        return 1
    try:
        with answer:
            for raw in answer:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("data: "):
                    state = json.loads(line[6:])
                    print(json.dumps(state) if args.json else _describe("status", state),
                          flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def _describe(command: str, value: Any) -> str:
    """One readable line (or a few) for what the API answered."""
    if command in ("status", "set", "clear"):
        parts = [value["basic"], *value["activities"]]
        if value["on_the_phone"] and "on-the-phone" not in value["activities"]:
            parts.append("on the phone")
        text = f"{value['aor']}: {', '.join(parts)}"
        if value["note"]:
            text += f' "{value["note"]}"'
        sources = [s["id"] for s in value["sources"]]
        return text + (f" (from {', '.join(sources)})" if sources else " (no source)")
    if command == "route":
        text = f"{value['callee']}: {value['action']}, {value['status']}"
        if value["targets"]:
            text += " to " + ", ".join(value["targets"])
        if value["retry_after"] is not None:
            text += f", retry after {value['retry_after']} s"
        if value["note"]:
            text += f' "{value["note"]}"'
        return text + f" ({value['why']})"
    if command == "watchers":
        lines = [f"{w['watcher']}  {w['package']}  {w['state']}  {w['expires']} s"
                 for w in value["watchers"]] or ["no watchers"]
        lines += [f"rule: {r['watcher']} {r['sub_handling']}" for r in value["rules"]]
        lines.append(f"anyone else: {value['default']}")
        return "\n".join(lines)
    if command == "unrule":
        return f"{value['presentity']}: no rule for {value['watcher']} any more"
    return f"{value['presentity']}: {value['watcher']} {value['sub_handling']}"
