"""``letitwag frequency ...``: the concept-frequency engine's command group.

Its subcommands live in ``_frequency_*.py`` modules beside this one (text counting, image
tagging and joins), each with a ``register(subparsers)`` function, so each part of the engine
owns its own command-line code.
"""

from __future__ import annotations

import importlib
import pkgutil

from letitwag import cli


def register(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "frequency",
        help="count how often concepts occur in a pretraining corpus (text, image tags, both)",
        examples="  letitwag frequency count --captions shard-*.parquet --concepts all --out counts/\n"
        "  letitwag frequency show counts/text.parquet --rarest 20",
    )
    commands = parser.add_subparsers(dest="frequency_command", metavar="SUBCOMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_frequency_"):
            importlib.import_module(f"{cli.__name__}.{module_info.name}").register(commands)
