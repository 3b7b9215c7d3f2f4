"""``python -m letitwag`` is the same as the ``letitwag`` command."""

from letitwag.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
