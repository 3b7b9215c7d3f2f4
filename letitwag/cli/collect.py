"""``letitwag collect``: candidate images per concept from folders, URL lists and kNN backends."""

from __future__ import annotations

from letitwag import cli

EXAMPLES = """  letitwag collect --concepts concepts.json --source folder:my_photos/ --out candidates/
  letitwag collect --concepts concepts.json --source urls:urls.parquet --source folder:shards/ --out candidates/
  letitwag knn serve photos.index --port 1234 &
  letitwag collect --concepts concepts.json --source knn:http://127.0.0.1:1234 --knn-num-images 200 \\
      --knn-max-templates 3 --out candidates/"""


def register(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "collect",
        help="collect candidate images for each concept into a candidate manifest",
        description="Collect candidates for each concept of --concepts from one or more sources:\n"
        "  folder:PATH  a tree PATH/<concept id or name>/*.jpg, or webdataset .tar shards whose samples carry the\n"
        "               concept in KEY.json (concept_id/label/class), KEY.cls (index or name) or KEY.txt\n"
        "  urls:FILE    CSV/TSV/parquet/JSONL with url, concept_id [, caption, license], downloaded with img2dataset\n"
        "  knn:URL      a clip-retrieval backend (e.g. `letitwag knn serve`) queried with each concept's prompts\n"
        "Writes OUT/candidates.parquet (+ provenance) and OUT/rejections.parquet (status + error per file/URL).\n"
        "Interrupted runs resume: rerun the same command.",
        examples=EXAMPLES,
    )
    parser.add_argument("--concepts", required=True, help="concept list (JSON/CSV/TSV/text file or a bundled name)")
    parser.add_argument("--source", action="append", required=True, metavar="SPEC",
                        help="folder:PATH, urls:FILE or knn:URL (repeatable)")
    parser.add_argument("--out", required=True, help="candidate manifest directory")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per download / kNN request")
    parser.add_argument("--retries", type=int, default=2, help="retries per URL / kNN request")
    parser.add_argument("--download-threads", type=int, default=16, help="parallel downloads")
    parser.add_argument("--urls-per-unit", type=int, default=1000, help="URLs per resumable download block")
    parser.add_argument("--knn-num-images", type=int, default=100, help="num_images per kNN query")
    parser.add_argument("--knn-indice", default=None, help="indice_name on the backend (default: its first)")
    parser.add_argument("--knn-templates", default="simple", help="prompt set from letitwag/data/templates.json")
    parser.add_argument("--knn-max-templates", type=int, default=1, help="prompts per concept (first N templates)")
    parser.add_argument("--knn-modality", default="image", choices=["image", "text"], help="index to search")
    parser.add_argument("--no-knn-deduplicate", action="store_true", help="ask the backend not to deduplicate")
    parser.add_argument("--knn-safety", action="store_true", help="ask the backend to drop unsafe images")
    parser.add_argument("--knn-violence", action="store_true", help="ask the backend to drop violent images")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    from letitwag.builders.collect import CollectOptions, collect
    from letitwag.concepts import load_concepts

    options = CollectOptions(
        timeout=args.timeout, retries=args.retries, download_threads=args.download_threads,
        urls_per_unit=args.urls_per_unit, knn_num_images=args.knn_num_images, knn_templates=args.knn_templates,
        knn_max_templates=args.knn_max_templates, knn_indice=args.knn_indice, knn_modality=args.knn_modality,
        knn_deduplicate=not args.no_knn_deduplicate, knn_safety=args.knn_safety, knn_violence=args.knn_violence,
    )
    collect(load_concepts(args.concepts), args.source, args.out, options)
    return 0
