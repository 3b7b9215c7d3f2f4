"""The ``letitwag`` command: a thin layer over the Python API.

Each module in this package adds one top-level subcommand through ``register(subparsers)``
and is found automatically, so adding a command touches no shared file. Command modules
import heavy libraries (torch, ray, ...) inside their handlers, never at import time, so
``letitwag --help`` stays fast. No library module imports this package.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import pkgutil
import sys
from typing import Sequence

from letitwag import __version__
from letitwag.errors import UserInputError

EPILOG = """examples:
  letitwag frequency count --captions captions.parquet --concepts all --out counts/
  letitwag frequency show paper:laion400m:matched --rarest 20
  python -m letitwag.evaluate --model open_clip:ViT-B-32/laion2b_s34b_b79k
Run `letitwag COMMAND --help` for the options of each command."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the hand-wrapped examples in descriptions/epilogs."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="letitwag",
        description="Let it Wag!: concept frequencies, long-tail dataset building, zero-shot evaluation, "
        "analysis and leaderboard.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"letitwag {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging verbosity"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def add_command(subparsers, name: str, help: str, description: str = "", examples: str = "") -> argparse.ArgumentParser:
    """Add a subcommand with the shared formatter, its help text and an examples epilog."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=f"examples:\n{examples}" if examples else None,
        formatter_class=HelpFormatter,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run the handler, turn user errors into one line and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        result = args.handler(args)
    except UserInputError as error:
        print(f"letitwag {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # Every long job writes atomically and records finished work, so a full disk loses nothing:
        # say so in one line instead of a traceback.
        where = f" writing {error.filename}" if error.filename else ""
        print(
            f"letitwag {args.command}: error: disk full{where}; free space and rerun the same command "
            "(finished work is kept)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"letitwag {args.command}: interrupted; finished shards are kept, rerun to resume", file=sys.stderr)
        return 130
    return int(result or 0)
