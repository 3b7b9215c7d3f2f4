"""``python -m letitwag.evaluate ...`` is ``letitwag evaluate ...`` (same options and errors)."""

import sys

from letitwag.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["evaluate", *sys.argv[1:]]))
