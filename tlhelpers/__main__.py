"""The kit's command line: ``python -m tlhelpers run|sweep|exercises ...``.

``run`` executes the course's notebooks (:mod:`tlhelpers.runner`); ``sweep`` runs one
notebook over a parameter grid, resumably, in parallel or on a Dask cluster
(:mod:`tlhelpers.sweep`); ``exercises`` generates student copies and grades a class
(:mod:`tlhelpers.classroom`). ``python -m tlhelpers COMMAND --help`` for the options.
"""

from __future__ import annotations

import sys

USAGE = """usage: python -m tlhelpers {run,sweep,exercises} ...

  run    execute the course's notebooks into build/ and write build/summary.md
  sweep  run one notebook over a parameter grid (resumable; --workers N; --scheduler ADDRESS)
  exercises generate [--check] | grade CLASS_DIR --exercise exNN [--workers N] [--timeout S]
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "run":
            from .runner import main as run_main

            return run_main(["run", *rest])
        if cmd == "sweep":
            from .sweep import main as sweep_main

            return sweep_main(rest)
        if cmd == "exercises":
            from .classroom import main as exercises_main

            return exercises_main(rest)
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130
    print(f"error: unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
