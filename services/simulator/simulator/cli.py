"""`lifecycle` command line: simulate, import (issue 6)."""

from __future__ import annotations

import sys


def main() -> int:
    sys.stderr.write("lifecycle: the simulator and importer are not built yet (issue 6)\n")
    return 1
