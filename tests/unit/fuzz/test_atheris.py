"""A short coverage-guided pass of every atheris target (``make fuzz`` runs the long one).

Each target runs in its own process (atheris instruments the agent's modules as they
are imported, and libFuzzer exits when done) for a bounded number of cases, from the
repository's seeds, in a corpus directory of its own.  Two run at a time: one per core.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fuzz.__main__ import NAMES

ROOT = Path(__file__).resolve().parents[3]
RUNS = ["-runs=1500", "-max_total_time=2", "-seed=1"]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                                reason="atheris is not installed (pip install '.[fuzz]')")


def test_every_target_survives_a_short_pass(tmp_path):
    def run(name: str) -> tuple[str, subprocess.CompletedProcess[bytes]]:
        command = [sys.executable, "-m", "fuzz", name, "--corpus", str(tmp_path / name),
                   "--crashes", str(tmp_path / "crashes"), *RUNS]
        return name, subprocess.run(command, cwd=ROOT, capture_output=True, timeout=60,
                                    check=False)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, NAMES))
    failed = {name: done.stderr.decode("utf-8", "replace")[-3000:]
              for name, done in results if done.returncode != 0}
    assert not failed, "\n\n".join(f"{name}:\n{text}" for name, text in failed.items())
