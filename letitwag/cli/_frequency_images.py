"""``letitwag frequency tag-images | match | misalignment``: image-side counts and their joins with text.

Thin layer: parses options, calls ``letitwag.builders.tagging`` / ``letitwag.builders.alignment``
and prints a short summary. Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import logging
from pathlib import Path

from letitwag import cli

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    _register_match(subparsers)
    _register_misalignment(subparsers)


def _add_sides(parser) -> None:
    parser.add_argument(
        "--text",
        required=True,
        help="text side: the --out directory of `letitwag frequency count --postings` "
        "(text_postings.parquet + text.parquet) or a postings parquet (sample_id, concept_id)",
    )
    parser.add_argument(
        "--image",
        required=True,
        help="image side: the --out directory of `letitwag frequency tag-images` "
        "(image_postings.parquet + image.parquet) or a postings parquet",
    )
    parser.add_argument(
        "--concepts",
        default=None,
        help="restrict to this concept list (bundled name or file); default: the concepts the inputs' tables list",
    )


def _register_match(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "match",
        help="image-text matched counts: per concept, samples whose caption mentions it AND whose image shows it",
        description="Per concept, |text sample ids ∩ image sample ids| (the paper's main frequency). "
        "A concept known to only one side gets 0 and is listed in the provenance.",
        examples="  letitwag frequency match --text counts/ --image tags/ --out matched/\n"
        "  letitwag frequency show matched/matched.parquet --rarest 20",
    )
    _add_sides(parser)
    parser.add_argument("--corpus", default=None, help="corpus name for the table (default: the inputs' corpus)")
    parser.add_argument("--out", required=True, type=Path, help="output directory: matched.parquet + provenance")
    parser.set_defaults(handler=_run_match)


def _register_misalignment(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "misalignment",
        help="how many image-text pairs share no concept (the paper's misalignment degree)",
        description="A sample with at least one caption concept and one image concept is misaligned when the two "
        "sets share none; degree = misaligned / corpus size (a fraction). Also reports the paper's "
        "'extracted size' degree.",
        examples="  letitwag frequency misalignment --text counts/ --image tags/ --out misalignment.json\n"
        "  letitwag frequency misalignment --text t.parquet --image i.parquet --corpus-size 3318333 --out m.json",
    )
    _add_sides(parser)
    parser.add_argument(
        "--corpus-size",
        type=int,
        default=None,
        help="samples in the corpus (the denominator); default: corpus_size of the text table, else the image table",
    )
    parser.add_argument("--out", required=True, type=Path, help="output JSON file")
    parser.set_defaults(handler=_run_misalignment)


def _concepts(spec):
    if spec is None:
        return None
    from letitwag.concepts import load_concepts

    return load_concepts(spec)


def _run_match(args) -> int:
    from letitwag.builders.alignment import matched_table

    table = matched_table(args.text, args.image, concepts=_concepts(args.concepts), corpus=args.corpus)
    path = table.write(args.out / "matched.parquet")
    counts = table.counts()
    nonzero = sum(1 for value in counts.values() if value)
    print(f"wrote {path}: {len(counts)} concepts, {nonzero} with at least one matched sample")
    return 0


def _run_misalignment(args) -> int:
    from letitwag.builders.alignment import misalignment, write_misalignment

    metrics = misalignment(args.text, args.image, corpus_size=args.corpus_size, concepts=_concepts(args.concepts))
    write_misalignment(args.out, metrics)
    print(
        f"wrote {args.out}: {metrics['misaligned_samples']} misaligned samples, degree {metrics['degree']:.4f} "
        f"of {metrics['corpus_size']} ({metrics['corpus_size_source']})"
    )
    return 0
