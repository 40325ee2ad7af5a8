"""Run every benchmark and print its figures: ``python -m bench [name ...]``.

``soak`` runs only when named (``python -m bench soak [--minutes N] [--rate R]``):
it takes ten minutes and more; so does ``profile`` (``python -m bench profile
[SCENARIO RATE]``), which writes a flame graph rather than figures.
"""

from __future__ import annotations

import sys

from . import kamailio, options, parser, presence, profile, soak

BENCHMARKS = {"parser": parser.main, "options": options.main, "presence": presence.main,
              "kamailio": kamailio.main}


def main(argv: list[str]) -> int:
    if argv[:1] == ["soak"]:
        return soak.main(argv[1:])
    if argv[:1] == ["profile"]:
        return profile.main(argv[1:])
    names = argv or list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)} "
                  "(or soak or profile, on its own)")
            return 2
    for name in names:
        print(f"== {name}")
        BENCHMARKS[name]()
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
