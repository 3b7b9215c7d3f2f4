"""``letitwag curate``: candidate manifest -> curated manifest + report (thin layer over the API)."""

from __future__ import annotations

import logging
from pathlib import Path

from letitwag import cli

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "curate",
        help="clean a candidate manifest: validate, de-duplicate, filter, review, balance; with a report",
        description="Runs, in order: 1 validate, 2 exact duplicates, 3 pHash near-duplicates within each concept, "
        "4 overlap with reference test sets, 5 outliers, 6 relevance, 7 human review, 8 seeded balancing. "
        "Every step can be switched off; thresholds are recorded in the report. Reruns resume from the "
        "finished chunks/steps in OUT/_work; the same inputs and seed give byte-identical output.",
        examples="  letitwag curate candidates/ --out curated/ --per-class 450 --seed 0\n"
        "  letitwag curate candidates/ --out curated/ --reference imagenet_val_hashes.parquet --reference val_images/\n"
        "  letitwag curate candidates/ --out curated/ --model open_clip:ViT-B-32/laion2b_s34b_b79k --outliers --relevance\n"
        "  letitwag curate candidates/ --out curated/ --review-file review.json --serve-review 8765",
    )
    parser.add_argument("candidates", type=Path, help="candidate manifest directory (candidates.parquet)")
    parser.add_argument("--out", type=Path, required=True, help="output directory: curated.parquet, report.{json,md,html}")
    parser.add_argument("--concepts", default=None,
                        help="concept list (class order, groups, prompts); default: the candidates' concept ids, sorted")
    parser.add_argument("--seed", type=int, default=0, help="seed of the class balancing")
    parser.add_argument("--workers", type=int, default=2, help="processes decoding images")
    parser.add_argument("--chunk-size", type=int, default=1024, help="images per resumable validation chunk")
    step = parser.add_argument_group("steps and thresholds")
    step.add_argument("--no-validate", action="store_true",
                      help="skip the size/bomb limits (undecodable images are still rejected: they cannot be hashed)")
    step.add_argument("--min-side", type=int, default=64, help="reject images whose shorter side is below this")
    step.add_argument("--max-pixels", type=int, default=64_000_000, help="refuse images with more pixels (bombs)")
    step.add_argument("--no-exact-dedup", action="store_true", help="keep byte/pixel-identical copies")
    step.add_argument("--no-near-dedup", action="store_true", help="keep pHash near-duplicates")
    step.add_argument("--near-distance", type=int, default=10, help="pHash Hamming distance counted as a near duplicate")
    step.add_argument("--reference", action="append", default=[],
                      help="reference test set to remove overlap with: an image folder, a hash file "
                           "(.parquet/.csv/.json with a 'phash' column) or an embedding file (.npy, needs --model); repeatable")
    step.add_argument("--reference-distance", type=int, default=10, help="pHash distance to a reference image that rejects")
    step.add_argument("--reference-cosine", type=float, default=0.95,
                      help="embedding cosine similarity to a reference image that rejects")
    step.add_argument("--model", default=None, help="embedding model spec for outliers/relevance/reference embeddings")
    step.add_argument("--device", default="cpu", help="device of the embedding model")
    step.add_argument("--batch-size", type=int, default=64, help="embedding batch size")
    step.add_argument("--outliers", action="store_true", help="drop each concept's least typical images (needs --model)")
    step.add_argument("--outlier-fraction", type=float, default=0.05, help="fraction dropped per concept as outliers")
    step.add_argument("--relevance", action="store_true", help="drop images unlike the concept's prompts (needs --model)")
    step.add_argument("--relevance-threshold", type=float, default=0.2, help="minimum image-prompt cosine similarity")
    step.add_argument("--prompts", default="simple", help="bundled prompt set for relevance: simple | ensemble | class")
    step.add_argument("--review-file", default=None,
                      help="human review decisions (JSON); read on every run, written by --serve-review")
    step.add_argument("--serve-review", type=int, default=None, metavar="PORT",
                      help="before balancing, serve the review page on 127.0.0.1:PORT and wait for 'finish'")
    step.add_argument("--no-balance", action="store_true", help="keep every surviving image")
    step.add_argument("--per-class", type=int, default=450, help="images per concept after balancing")
    step.add_argument("--keep-short-classes", action="store_true",
                      help="keep concepts with fewer than --per-class images (default: drop them, as the paper did)")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    from letitwag.builders.curate import CurateConfig, curate
    from letitwag.errors import UserInputError

    if args.serve_review is not None and not args.review_file:
        raise UserInputError("--serve-review needs --review-file FILE to save the decisions in")
    config = CurateConfig(
        seed=args.seed, workers=args.workers, chunk_size=args.chunk_size, concepts=args.concepts,
        validate=not args.no_validate, min_side=args.min_side, max_pixels=args.max_pixels,
        exact_dedup=not args.no_exact_dedup, near_dedup=not args.no_near_dedup, near_distance=args.near_distance,
        reference=tuple(args.reference), reference_distance=args.reference_distance,
        reference_cosine=args.reference_cosine, model=args.model, device=args.device, batch_size=args.batch_size,
        outliers=args.outliers, outlier_fraction=args.outlier_fraction, relevance=args.relevance,
        relevance_threshold=args.relevance_threshold, prompts=args.prompts, review_file=args.review_file,
        balance=not args.no_balance, per_class=args.per_class, drop_short_classes=not args.keep_short_classes,
    )
    report = curate(args.candidates, args.out, config, serve_review_port=args.serve_review)
    totals = report["totals"]
    print(f"curated {totals['candidates']} candidates -> {totals['kept']} images in {totals['concepts_kept']} "
          f"concepts; report: {args.out / 'report.html'}")
    return 0
