"""Run the atheris targets of ``fuzz/targets.py``.

    python -m fuzz TARGET [--corpus DIR] [--crashes DIR] [libFuzzer flags]
                                     one target, in this process
    python -m fuzz all [--corpus DIR] [--crashes DIR] [libFuzzer flags]
                                     each target in turn, one line each
    python -m fuzz replay TARGET FILE...
                                     inputs again, without atheris

``make fuzz`` is ``python -m fuzz all -runs=1000000``.  The corpus grows in
``var/fuzz/corpus/TARGET`` (seeded from the repository at every start), crashes are
written to ``var/fuzz/crashes/``; replay one with ``replay``, then make it a
regression test (``tests/unit/fuzz/test_regressions.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("sip", "stream", "endpoint", "xml", "pidf", "xpidf", "dialoginfo", "watcherinfo",
         "compose")
_STAT = re.compile(rb"stat::(number_of_executed_units|average_exec_per_sec):\s*(\d+)")


def _seeded(name: str, corpus: Path) -> Path:
    from fuzz.targets import TARGETS

    corpus.mkdir(parents=True, exist_ok=True)
    for seed in TARGETS[name].corpus():
        path = corpus / f"seed-{hashlib.sha1(seed).hexdigest()}"
        if not path.exists():
            path.write_bytes(seed)
    return corpus


def fuzz_one(name: str, corpus: Path | None, crashes: Path, flags: list[str]) -> None:
    """Fuzz *name* until libFuzzer stops (``-runs``, ``-max_total_time``); never returns."""
    import atheris

    # Coverage of the agent's own code guides the fuzzer; lxml's C code is not traced.
    with atheris.instrument_imports(include=["sipresence"]):
        from fuzz.targets import TARGETS
    crashes.mkdir(parents=True, exist_ok=True)
    directory = _seeded(name, corpus or ROOT / "var" / "fuzz" / "corpus" / name)
    atheris.Setup([sys.argv[0], "-print_final_stats=1", f"-artifact_prefix={crashes}/{name}-",
                   *flags, str(directory)], TARGETS[name].run)
    atheris.Fuzz()


def fuzz_all(corpus: Path | None, crashes: Path, flags: list[str]) -> int:
    """Each target in a subprocess; one line per target with its cases per second."""
    if importlib.util.find_spec("atheris") is None:
        print("atheris is not installed (pip install '.[fuzz]'; wheels exist for Linux "
              "and macOS only): nothing to fuzz with", file=sys.stderr)
        return 1
    failed = 0
    for name in NAMES:
        command = [sys.executable, "-m", "fuzz", name, "--crashes", str(crashes), *flags]
        if corpus is not None:
            command += ["--corpus", str(corpus / name)]
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
        elapsed = time.monotonic() - started
        stats = {key.decode(): int(value) for key, value in _STAT.findall(done.stderr)}
        status = "ok"
        if done.returncode != 0:
            failed += 1
            written = re.findall(rb"Test unit written to (\S+)", done.stderr)
            status = f"FAILED (exit {done.returncode}" + (
                f", input in {written[-1].decode()})" if written else ")")
            sys.stderr.write(done.stderr.decode("utf-8", "replace")[-4000:])
        print(f"{name:12} {stats.get('number_of_executed_units', 0):>9} cases "
              f"{stats.get('average_exec_per_sec', 0):>7} cases/s  {elapsed:7.1f} s  {status}",
              flush=True)
    return 1 if failed else 0


def replay(name: str, files: list[str]) -> None:
    from fuzz.targets import TARGETS

    for file in files:
        print(file, flush=True)
        TARGETS[name].run(Path(file).read_bytes())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=(*NAMES, "all", "replay"))
    parser.add_argument("--corpus", type=Path, help="corpus directory (for all: its parent)")
    parser.add_argument("--crashes", type=Path, default=ROOT / "var" / "fuzz" / "crashes",
                        help="where failing inputs are written")
    args, rest = parser.parse_known_args(argv)
    if args.target == "replay":
        if not rest or rest[0] not in NAMES:
            parser.error(f"replay TARGET FILE...: TARGET is one of {', '.join(NAMES)}")
        replay(rest[0], rest[1:])
        return 0
    if args.target == "all":
        return fuzz_all(args.corpus, args.crashes, rest)
    fuzz_one(args.target, args.corpus, args.crashes, rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
