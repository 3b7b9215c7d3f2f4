"""``letitwag frequency tag-images | match | misalignment``: image-side counts and their joins with text.

Thin layer: parses options, calls ``letitwag.frequency.images`` / ``letitwag.frequency.alignment``
and prints a short summary. Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import logging
from pathlib import Path

from letitwag import cli

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    _register_tag_images(subparsers)
    _register_match(subparsers)
    _register_misalignment(subparsers)


def _register_tag_images(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "tag-images",
        help="image-side counts: tag every image against the concepts (zero-shot CLIP tagger or RAM++)",
        description="Tag images against a concept list; a concept is present when its probability is > --threshold "
        "(0.7, as the paper). Writes OUT/image.parquet (count type 'image', corpus size = images tagged), its "
        "provenance (skipped images by reason) and OUT/image_postings.parquet (sample_id, concept_id). Sample ids: "
        "folder = relative path without extension, tar = webdataset key, parquet = --id-column or <file>:<row>, "
        "HF = --id-column or <name>/<split>:<row> (the same defaults as frequency count). "
        "Resumable: rerun the same command after an interruption.",
        examples="  letitwag frequency tag-images --images shards/{00000..00009}.tar --concepts let-it-wag \\\n"
        "      --model open_clip:ViT-B-32/laion2b_s34b_b79k --device cuda --out tags/\n"
        "  letitwag frequency tag-images --images shards/{00000..00099}.tar --concepts let-it-wag --device cuda \\\n"
        "      --decode gpu --precision bf16 --batch-size 256 --model open_clip:ViT-B-32/laion2b_s34b_b79k --out tags/\n"
        "  letitwag frequency tag-images --images photos/ --concepts my_concepts.txt \\\n"
        "      --model open_clip:ViT-B-32/laion2b_s34b_b79k --prompts descriptions.json --out tags/\n"
        "  letitwag frequency tag-images --images shards/00000.tar --concepts all --tagger ram-plus \\\n"
        "      --model ~/ram_plus_swin_large_14m.pth --device cuda --out tags/",
    )
    parser.add_argument("--images", nargs="+", required=True, metavar="SPEC",
                        help="image folders, webdataset .tar files, parquet files with image bytes, or hf:DATASET "
                        "(a saved/local dataset directory or a Hub id)")
    parser.add_argument("--concepts", required=True, help="concept list: bundled name (all, let-it-wag, imagenet, ...) "
                        "or a file")
    parser.add_argument("--model", required=True,
                        help="zero-shot: an encoder spec (open_clip:ARCH/PRETRAINED, transformers:ID_OR_DIR, ...); "
                        "ram-plus: path to the RAM++ checkpoint")
    parser.add_argument("--tagger", default="zero-shot", choices=["zero-shot", "ram-plus"],
                        help="zero-shot: multi-label CLIP tagger, p = sigmoid(scale * (cos(img, concept) - "
                        "cos(img, background))); ram-plus: RAM++ (needs the `ram` package)")
    parser.add_argument("--threshold", type=float, default=0.7, help="a concept is present iff probability > this")
    parser.add_argument("--prompts", default="ensemble",
                        help="ensemble | simple | FILE: templates with {c} (JSON list or one per line) or "
                        "per-concept descriptions (JSON {concept_id: [text, ...]})")
    parser.add_argument("--background", default="object",
                        help="zero-shot: the generic class each concept is weighed against, in the same templates")
    parser.add_argument("--batch-size", type=int, default=64, help="images per model call")
    parser.add_argument("--shard-size", type=int, default=1000,
                        help="images per shard for folders, parquet and HF inputs (a tar is one shard)")
    parser.add_argument("--workers", type=int, default=1,
                        help="shards in parallel (local: processes, each loads the model; ray: CPUs of a local Ray)")
    parser.add_argument("--executor", default="local", choices=["local", "ray"], help="where shards run")
    parser.add_argument("--ray-address", default=None, help="join this Ray cluster (with --executor ray)")
    parser.add_argument("--decode-threads", type=int, default=None,
                        help="threads decoding images per worker (default: min(4, CPUs))")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda when available)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "amp", "bf16", "fp16"],
                        help="model precision")
    parser.add_argument("--decode", default="auto", choices=["auto", "cpu", "gpu"],
                        help="zero-shot: where images are decoded. cpu: PIL in --decode-threads threads; gpu: baseline "
                        "JPEGs decoded in batches on the device (nvJPEG) and preprocessed there as the model does, "
                        "the rest on the CPU; auto: gpu on CUDA when possible. Recorded in the provenance; part of "
                        "the shards' identity")
    parser.add_argument("--image-column", default=None, help="parquet/HF: column holding the images (auto-detected)")
    parser.add_argument("--id-column", default=None,
                        help="parquet/HF: column of sample ids (never guessed; pass the same one to frequency count)")
    parser.add_argument("--split", default=None, help="HF datasets: tag only this split (default: all splits, "
                        "as frequency count reads them)")
    parser.add_argument("--corpus", default=None, help="corpus name in the table (default: the first input's name)")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.set_defaults(handler=_run_tag_images)


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


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _run_tag_images(args) -> int:
    from letitwag.concepts import load_concepts
    from letitwag.engine.executors import make_executor
    from letitwag.frequency.images import build_tagger, tag_images

    concepts = load_concepts(args.concepts)
    tagger = build_tagger(args.tagger, args.model, prompts=args.prompts, device=_device(args.device),
                          precision=args.precision, background=args.background,
                          cache_dir=args.out / "shards-image" / "concept-vectors", decode=args.decode)
    table = tag_images(
        args.images, concepts, tagger, args.out,
        threshold=args.threshold, batch_size=args.batch_size, shard_size=args.shard_size,
        executor=make_executor(args.executor, args.workers, args.ray_address), decode_threads=args.decode_threads,
        corpus=args.corpus, image_column=args.image_column, id_column=args.id_column, split=args.split,
    )
    provenance = table.provenance
    skipped = sum(provenance["skipped"].values())
    print(f"wrote {args.out / 'image.parquet'}: {provenance['images_tagged']} images tagged, {skipped} skipped, "
          f"{sum(1 for v in table.counts().values() if v)} of {len(concepts)} concepts seen")
    return 0


def _concepts(spec):
    if spec is None:
        return None
    from letitwag.concepts import load_concepts

    return load_concepts(spec)


def _run_match(args) -> int:
    from letitwag.frequency.alignment import matched_table

    table = matched_table(args.text, args.image, concepts=_concepts(args.concepts), corpus=args.corpus)
    path = table.write(args.out / "matched.parquet")
    counts = table.counts()
    nonzero = sum(1 for value in counts.values() if value)
    print(f"wrote {path}: {len(counts)} concepts, {nonzero} with at least one matched sample")
    return 0


def _run_misalignment(args) -> int:
    from letitwag.frequency.alignment import misalignment, write_misalignment

    metrics = misalignment(args.text, args.image, corpus_size=args.corpus_size, concepts=_concepts(args.concepts))
    write_misalignment(args.out, metrics)
    print(
        f"wrote {args.out}: {metrics['misaligned_samples']} misaligned samples, degree {metrics['degree']:.4f} "
        f"of {metrics['corpus_size']} ({metrics['corpus_size_source']})"
    )
    return 0
