"""Run every benchmark and print its figures: ``python -m bench [name ...]``."""

from __future__ import annotations

import sys

from . import kamailio, options, parser, presence

BENCHMARKS = {"parser": parser.main, "options": options.main, "presence": presence.main,
              "kamailio": kamailio.main}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
            return 2
    for name in names:
        print(f"== {name}")
        BENCHMARKS[name]()
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
