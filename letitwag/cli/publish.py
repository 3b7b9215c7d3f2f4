"""``letitwag publish``: curated manifest -> Hugging Face Hub dataset layout (+ optional push)."""

from __future__ import annotations

import logging
from pathlib import Path

from letitwag import cli

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "publish",
        help="write a curated manifest as a Hugging Face Hub dataset (parquet shards + data card), optionally push",
        description="Writes OUT/data/<split>-NNNNN-of-NNNNN.parquet (Image, ClassLabel label, metadata columns) and "
        "OUT/README.md rendered from the data card template. `datasets.load_dataset(OUT)` loads it exactly as "
        "from the Hub. With --push the folder is uploaded in one commit (huggingface_hub create_commit; "
        "token from HF_TOKEN or `huggingface-cli login`).",
        examples="  letitwag publish curated/ --out hub/\n"
        "  letitwag publish curated/ --out hub/ --license mit --repo my-org/let-it-wag --push\n"
        "  letitwag publish curated/ --out hub/ --repo bethgelab/Let-It-Wag --push --pr",
    )
    parser.add_argument("curated", type=Path, help="curated manifest directory (from letitwag curate)")
    parser.add_argument("--out", type=Path, required=True, help="output folder in the Hub layout")
    parser.add_argument("--split", default="test", help="split name of the shards")
    parser.add_argument("--max-shard-mb", type=float, default=500, help="largest shard, in MB of encoded images")
    parser.add_argument("--license", default="other", help="license id for the card (Hub license identifiers, e.g. mit)")
    parser.add_argument("--pretty-name", default="Let It Wag!", help="dataset title in the card")
    parser.add_argument("--frequencies", default="paper:laion400m",
                        help="frequency table for the card's concept list when the concept list has no counts")
    parser.add_argument("--card-template", type=Path, default=None, help="Jinja2 data card template (default: bundled)")
    parser.add_argument("--repo", default=None, help="Hub dataset repo ORG/NAME to push to")
    parser.add_argument("--push", action="store_true", help="upload OUT to --repo after writing it")
    parser.add_argument("--pr", action="store_true", help="open a pull request instead of committing to main")
    parser.add_argument("--endpoint", default=None, help="Hub endpoint (default: huggingface_hub's, HF_ENDPOINT)")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    from letitwag.builders.publish import DEFAULT_TEMPLATE, PublishOptions, publish, push
    from letitwag.errors import UserInputError

    if args.push and not args.repo:
        raise UserInputError("--push needs --repo ORG/NAME")
    options = PublishOptions(split=args.split, max_shard_bytes=int(args.max_shard_mb * 1e6), license=args.license,
                             pretty_name=args.pretty_name, frequency_table=args.frequencies,
                             template=args.card_template or DEFAULT_TEMPLATE)
    summary = publish(args.curated, args.out, options)
    print(f"wrote {summary['num_examples']} images of {summary['num_classes']} concepts in {summary['shards']} "
          f"shard(s) to {args.out}")
    if args.push:
        url = push(args.out, args.repo, create_pr=args.pr, endpoint=args.endpoint)
        print(f"pushed: {url}")
    return 0
