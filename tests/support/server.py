"""Start the real agent in a subprocess on ephemeral loopback ports.

The agent is started with port 0 everywhere and the test reads the addresses it
really bound from its ``ready`` log line, so tests never race for free ports.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT = 20.0
_ADDRESS_RE = re.compile(r"(udp|tcp|tls|wss|ws|http):(\[[^\]]+\]|[^: ]+):(\d+)")


@dataclass
class Server:
    proc: subprocess.Popen[str]
    addresses: dict[str, tuple[str, int]]
    lines: list[str] = field(default_factory=list)

    def address(self, kind: str) -> tuple[str, int]:
        return self.addresses[kind]

    @property
    def udp(self) -> tuple[str, int]:
        return self.addresses["udp"]

    @property
    def tcp(self) -> tuple[str, int]:
        return self.addresses["tcp"]

    @property
    def http(self) -> tuple[str, int]:
        return self.addresses["http"]

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, needle: str, timeout: float = 10.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                if needle in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line with {needle!r} in:\n{self.output()}")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, as a service manager would; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"agent did not stop on SIGTERM:\n{self.output()}") from None


def start_server(tmp_path: Path, *args: str, listen: tuple[str, ...] = (
        "udp:127.0.0.1:0", "tcp:127.0.0.1:0"), http: str | None = "127.0.0.1:0",
        db: str | None = None, expect_ready: bool = True) -> Server:
    cmd = [sys.executable, "-m", "sipresence", "serve"]
    for address in listen:
        cmd += ["--listen", address]
    cmd += ["--http", http or "off", "--db", db or str(tmp_path / "agent.sqlite3"), *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=tmp_path)
    server = Server(proc, {})
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            server.lines.append(line.rstrip("\n"))
            if "ready" in line and not ready.is_set():
                for kind, host, port in _ADDRESS_RE.findall(line):
                    server.addresses.setdefault(kind, (host.strip("[]"), int(port)))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not expect_ready:
        proc.wait(READY_TIMEOUT)
        time.sleep(0.1)
        return server
    if not ready.wait(READY_TIMEOUT) or not server.addresses:
        proc.kill()
        raise AssertionError(f"agent did not get ready:\n{server.output()}")
    return server


def wait_for_metric(agent: Server, needle: str, timeout: float = 10.0) -> None:
    """Wait until the agent's /metrics text contains *needle*."""
    host, port = agent.http
    end = time.monotonic() + timeout
    text = ""
    while time.monotonic() < end:
        text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
        if needle in text:
            return
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in metrics:\n{text}")
