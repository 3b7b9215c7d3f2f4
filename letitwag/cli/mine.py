"""``letitwag mine``: pick the rarest concepts of a frequency table under recorded criteria.

Thin layer over ``letitwag.builders.mine``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from letitwag import cli

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "mine",
        help="choose the K rarest concepts of a frequency table (explicit, recorded criteria)",
        description="Rank the concepts of one (corpus, count type) of TABLE from rarest to most frequent "
        "(ties by concept id) and keep the first K that pass every criterion. The output concept list "
        "records each concept's counts in every bundled pretraining set and why it was chosen.",
        examples="  letitwag mine --table paper:laion400m --count-type matched --k 290 --exclude-zero --out concepts.json\n"
        "  letitwag mine --table paper:laion400m --sources cub,birdsnap --min-count 1 --max-count 100 --out birds.json\n"
        "  letitwag mine --table counts/text.parquet --candidates candidates/ --min-candidates 450 --out c.json\n"
        "  letitwag mine --table paper:laion400m --exclude-zero --explain Harriss_Hawk",
    )
    parser.add_argument("--table", required=True,
                        help="frequency table: paper:<corpus>[:<count type>] (bundled) or a parquet from `letitwag frequency`")
    parser.add_argument("--count-type", default=None,
                        help="count type to rank by: matched | text | image (or a raw paper name); default: the table's only one")
    parser.add_argument("--corpus", default=None, help="corpus to rank by when the table holds several")
    parser.add_argument("--k", type=int, default=290, help="number of concepts to choose")
    parser.add_argument("--min-count", type=int, default=None, help="drop concepts counted fewer times than this")
    parser.add_argument("--max-count", type=int, default=None, help="drop concepts counted more times than this")
    parser.add_argument("--exclude-zero", action="store_true",
                        help="drop concepts with a count of 0 (often spelling mismatches rather than true rarity)")
    parser.add_argument("--sources", default="",
                        help="comma-separated bundled downstream lists to draw from (e.g. cub,birdsnap,imagenet); default: all")
    parser.add_argument("--exclude", default=None,
                        help="concepts never to choose: a concept list file (text/JSON/CSV) or comma-separated ids")
    parser.add_argument("--candidates", default=None, help="candidate manifest directory (for --min-candidates)")
    parser.add_argument("--min-candidates", type=int, default=None,
                        help="require at least this many candidate images per concept in --candidates")
    parser.add_argument("--out", type=Path, default=None, help="output concept list JSON (letitwag.concepts/1)")
    parser.add_argument("--explain", default=None, metavar="CONCEPT",
                        help="print where CONCEPT ranks and which criterion kept or dropped it (no --out needed)")
    parser.set_defaults(handler=_run)


def _exclusions(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    if Path(value).exists():
        from letitwag.concepts import load_concepts

        return tuple(load_concepts(value).ids)
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _run(args) -> int:
    from letitwag.builders.mine import MiningCriteria, candidate_counts_from_manifest, mine, result_document
    from letitwag.errors import UserInputError
    from letitwag.io import atomic_write_json
    from letitwag.tables import FrequencyTable

    if args.out is None and args.explain is None:
        raise UserInputError("give --out FILE to write the concept list, or --explain CONCEPT")
    criteria = MiningCriteria(
        k=args.k,
        count_type=args.count_type,
        corpus=args.corpus,
        min_count=args.min_count,
        max_count=args.max_count,
        exclude_zero=args.exclude_zero,
        sources=tuple(s.strip() for s in args.sources.split(",") if s.strip()),
        exclude=_exclusions(args.exclude),
        min_candidates=args.min_candidates,
    )
    counts = candidate_counts_from_manifest(args.candidates) if args.candidates else None
    result = mine(FrequencyTable.read(args.table), criteria, counts, table_name=args.table)
    if args.explain is not None:
        print(result.explain(args.explain))
    if args.out is not None:
        document = result_document(result)
        atomic_write_json(args.out, document)
        logger.info("wrote %d concepts to %s (dropped by: %s)", len(result.concepts), args.out,
                    json.dumps(document["mining"]["dropped_by"]))
    return 0
