"""`make run`: the whole pipeline locally (issue 6)."""

from __future__ import annotations

import sys


def main() -> int:
    sys.stderr.write("make run: the services are not built yet (issues 3-6); nothing to run.\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
