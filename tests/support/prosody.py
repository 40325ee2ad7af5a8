"""A real Prosody for the bridge's tests: free loopback ports, a configuration and its
data in a temporary directory, users made with prosodyctl, and slixmpp clients.

Prosody refuses to run as root unless told (``run_as_root``), and reads
``/etc/prosody`` unless given ``--config``: both are always set here, so a test never
touches the machine's own server.  The tests skip, saying why, only when Prosody is
not installed (``make test`` installs it).
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

XMPP_DOMAIN = "xmpp.example.com"
COMPONENT = "sip.example.com"
SIP_DOMAIN = "example.com"
SECRET = "bridge-secret"
PASSWORD = "pw-for-tests"


def prosody_missing() -> str | None:
    """Why Prosody cannot run here, or None."""
    for tool in ("prosody", "prosodyctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package prosody; make test installs it)"
    try:
        import slixmpp  # noqa: F401
    except ImportError:
        return "slixmpp is not installed (pip install -e '.[test]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_CONFIG = """\
run_as_root = true
daemonize = false
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
plugin_paths = {{}}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "presence"; "message"; "iq";
                    "ping"; "posix" }}
modules_disabled = {{ "s2s"; "tls"; "offline" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
component_ports = {{ {component_port} }}
component_interface = "127.0.0.1"
s2s_ports = {{}}
http_ports = {{}}
https_ports = {{}}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
storage = "internal"
log = {{ debug = "{dir}/prosody.log" }}
limits = {{}}

VirtualHost "{domain}"

Component "{component}"
    component_secret = "{secret}"
"""


@dataclass
class Prosody:
    """One Prosody process; :meth:`restart` keeps its configuration and ports."""

    directory: Path
    c2s: int
    component_port: int
    proc: subprocess.Popen[bytes] | None = None
    users: list[str] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.directory / "prosody.cfg.lua"

    @classmethod
    def create(cls, directory: Path) -> Prosody:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").mkdir(exist_ok=True)
        server = cls(directory, free_port(), free_port())
        server.config.write_text(_CONFIG.format(
            dir=directory, c2s=server.c2s, component_port=server.component_port,
            domain=XMPP_DOMAIN, component=COMPONENT, secret=SECRET))
        return server

    def ctl(self, *args: str) -> None:
        subprocess.run(["prosodyctl", "--config", str(self.config), *args], check=True,
                       capture_output=True, timeout=30)

    def add_user(self, user: str) -> str:
        self.ctl("register", user, XMPP_DOMAIN, PASSWORD)
        self.users.append(user)
        return f"{user}@{XMPP_DOMAIN}"

    def start(self) -> None:
        self.proc = subprocess.Popen(["prosody", "--config", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"prosody exited {self.proc.returncode}:\n{self.log()}")
            if all(_listening(port) for port in (self.c2s, self.component_port)):
                return
            time.sleep(0.05)
        raise AssertionError(f"prosody did not listen in 15 s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.directory / "prosody.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else "(no log)"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class ChatUser:
    """A slixmpp client on a loop of its own thread, read and driven synchronously.

    Everything it receives is kept (``presences``, ``messages``, ``requests``, the
    subscription requests); :meth:`wait_for` polls them."""

    def __init__(self, jid: str, port: int, *, auto_authorize: bool | None = True) -> None:
        self.jid = jid
        self.port = port
        self.auto_authorize = auto_authorize
        self.loop = asyncio.new_event_loop()
        self.presences: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.client: Any = None
        self._online = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self._online.wait(15):
            raise AssertionError(f"{jid} could not log in to Prosody")

    def _run(self) -> None:
        import slixmpp

        asyncio.set_event_loop(self.loop)
        client = slixmpp.ClientXMPP(self.jid, PASSWORD)
        client.loop = self.loop
        # A roster answer waits for the person in a real client: None leaves it so.
        client.auto_authorize = self.auto_authorize
        client.auto_subscribe = False
        client.enable_direct_tls = client.enable_starttls = False
        client.enable_plaintext = True
        client.add_event_handler("session_start", self._started)
        client.add_event_handler("presence", self._presence)
        client.add_event_handler("presence_subscribe", self._subscribe_request)
        client.add_event_handler("message", self._message)
        client.add_event_handler("message_error", self._message)
        client.plugin["feature_mechanisms"].unencrypted_plain = True
        self.client = client
        client.connect("127.0.0.1", self.port)
        self.loop.run_forever()

    async def _started(self, _: Any) -> None:
        self.client.send_presence()
        await self.client.get_roster()
        self._online.set()

    def _presence(self, presence: Any) -> None:
        self.presences.append({"from": str(presence["from"]), "type": presence["type"],
                               "show": presence["show"], "status": presence["status"]})

    def _subscribe_request(self, presence: Any) -> None:
        self.requests.append(str(presence["from"].bare))

    def _message(self, message: Any) -> None:
        self.messages.append({"from": str(message["from"]), "type": message["type"],
                              "body": message["body"],
                              "error": message["error"]["condition"]
                              if message["type"] == "error" else None})

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run a slixmpp call on the client's loop."""
        self.loop.call_soon_threadsafe(lambda: function(*args, **kwargs))

    def wait_for(self, what: Callable[[], Any], timeout: float = 10.0,
                 message: str = "") -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = what()
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{self.jid}: {message or 'condition'} not met in {timeout} s; "
                             f"presences {self.presences[-5:]}, messages {self.messages[-5:]}")

    def last_presence(self, sender: str) -> dict[str, Any] | None:
        for presence in reversed(self.presences):
            if presence["from"].partition("/")[0] == sender and presence["type"] in (
                    "available", "unavailable", "away", "dnd", "xa", "chat"):
                return presence
        return None

    def close(self) -> None:
        """Log out (the server tells the contacts: unavailable) and end the loop,
        with nothing of slixmpp left to run on it."""
        if not self.thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._logout(), self.loop).result(10)
        except Exception:  # noqa: BLE001 - a client that is gone already
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _logout(self) -> None:
        await self.client.disconnect(wait=2.0)
        for task in asyncio.all_tasks(self.loop):
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.sleep(0)
        # slixmpp's finaliser schedules on its loop: run it while the loop still runs.
        self.client = None
        gc.collect()
