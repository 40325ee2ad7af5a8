"""Run pjsua2 user agents (``tests/support/pjsua_ua.py``) as subprocesses."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def pjsua_available() -> bool:
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        return False
    return True


class PjsuaUA:
    """One pjsua2 phone; events are JSON objects read from its stdout."""

    def __init__(self, agent: tuple[str, int], user: str, transport: str = "udp",
                 register: bool = False, password: str | None = None,
                 domain: str | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.pjsua_ua", "--agent",
             f"{agent[0]}:{agent[1]}", "--user", user, "--transport", transport,
             *(["--register"] if register else []),
             *(["--password", password] if password is not None else []),
             *(["--domain", domain] if domain is not None else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, cwd=ROOT)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.noise: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda e: e["event"] == "ready", 20)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except json.JSONDecodeError:
                self.noise.append(line.rstrip())

    def command(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 15.0,
                 after: dict[str, Any] | None = None) -> dict[str, Any]:
        """The first event (seen before or arriving within *timeout*) that matches;
        with *after*, the first one that came after that event."""
        start = 0
        if after is not None:
            start = next(i for i, e in enumerate(self.seen) if e is after) + 1
        for event in self.seen[start:]:
            if match(event):
                return event
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                event = self.events.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(event)
            if match(event):
                return event
        raise AssertionError(f"no matching event within {timeout}s; saw {self.seen[-8:]}"
                             f"\n{chr(10).join(self.noise[-20:])}")

    def forget(self) -> None:
        """Drop the events seen so far (wait for new ones only)."""
        while not self.events.empty():
            self.seen.append(self.events.get())
        self.seen.clear()

    def close(self) -> None:
        """Quit, and fail if the phone crashed at any point (pjsua aborts or segfaults)."""
        if self.proc.poll() is None:
            try:
                self.command(cmd="quit")
                self.proc.wait(10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
                return
        if self.proc.returncode != 0:
            raise AssertionError(f"pjsua exited with {self.proc.returncode}:\n"
                                 + "\n".join(self.noise[-20:]))
