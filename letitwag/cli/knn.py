"""``letitwag knn build|serve``: a clip-retrieval-compatible kNN backend over local images."""

from __future__ import annotations

from pathlib import Path

from letitwag import cli
from letitwag.builders.knn.index_choice import INDEX_TYPES
from letitwag.errors import UserInputError

BUILD_EXAMPLES = """  letitwag knn build --images photos/ --model open_clip:ViT-B-32/laion2b_s34b_b79k --out photos.index
  letitwag knn build --images img2dataset_out/ --model open_clip:local-dir:tiny_model/ --out tiny.index --chunk-size 256
  letitwag knn build --embeddings laion_emb/ --out laion.index --max-index-memory 4G
  letitwag knn build --embeddings inference_out/embeddings --metadata inference_out/embeddings/metadata \\
      --out mine.index --index-type ivfpq --model open_clip:ViT-B-32/laion2b_s34b_b79k --recall-queries text=q.npy"""

SERVE_EXAMPLES = """  letitwag knn serve photos.index --port 1234
  letitwag knn serve laion=photos.index other=more.index --port 1234 --workers 2
  curl -s localhost:1234/indices-list
  curl -s -X POST localhost:1234/knn-service -d '{"text": "a photo of a dog", "num_images": 5}'"""


def register(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "knn",
        help="build and serve a clip-retrieval-compatible kNN index over local images",
        description="A kNN backend speaking clip-retrieval's REST protocol (POST /knn-service, GET /indices-list), "
        "so `letitwag collect --source knn:URL` runs end to end offline.",
        examples=BUILD_EXAMPLES + "\n" + SERVE_EXAMPLES,
    )
    commands = parser.add_subparsers(dest="knn_command", metavar="SUBCOMMAND", required=True)

    build = cli.add_command(
        commands, "build", help="index an image folder or precomputed embeddings with faiss (resumable)",
        description="Either embed every image under --images with --model into an exact inner-product faiss index "
        "plus metadata (image_path, and caption/url/license from NAME.txt / NAME.json sidecars), or index "
        "precomputed embeddings (--embeddings: LAION's img_emb/img_emb_N.npy + metadata/metadata_N.parquet, as "
        "clip-retrieval inference writes them) streaming, shard by shard, with an index chosen by size and "
        "--max-index-memory and its recall against exact search measured and recorded in index.json. Work is "
        "saved in chunks/shards: after a kill, rerun the same command to resume.",
        examples=BUILD_EXAMPLES,
    )
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder of images (searched recursively); needs --model")
    source.add_argument("--embeddings",
                        help="folder holding img_emb/ (or text_emb/) of N.npy shards, float16 or float32, or that "
                        "folder itself, e.g. laion_emb/ or laion_emb/img_emb")
    build.add_argument("--metadata", default=None,
                       help="folder of metadata_N.parquet; None means metadata/ beside img_emb/ (both layouts)")
    build.add_argument("--model", default=None,
                       help="encoder spec, e.g. open_clip:ViT-B-32/laion2b_s34b_b79k; with --embeddings optional: "
                       "the model that made them, so the server can embed text/image queries")
    build.add_argument("--out", required=True, help="index directory to write")
    build.add_argument("--batch-size", type=int, default=64, help="--images: images per model forward")
    build.add_argument("--chunk-size", type=int, default=1024, help="--images: images per saved chunk (the unit of resume)")
    build.add_argument("--device", default="cpu", help="--images: torch device, e.g. cpu or cuda")
    build.add_argument("--precision", default="fp32", help="--images: fp32, bf16, fp16 or amp")
    build.add_argument("--threads", type=int, default=2, help="threads decoding images / running faiss")
    build.add_argument("--modality", choices=("image", "text"), default="image",
                       help="--embeddings: index img_emb (image) or text_emb (text) shards, e.g. --modality text")
    build.add_argument("--index-type", choices=INDEX_TYPES, default="auto",
                       help="--embeddings: flat (exact), ivfpq (compressed, lists on disk), hnsw (graph, in memory) "
                       "or auto: flat up to 200,000 vectors when it fits --max-index-memory, else ivfpq")
    build.add_argument("--max-index-memory", default="8G",
                       help="--embeddings: budget for the index, e.g. 4G or 512M; sets the ivfpq code size")
    build.add_argument("--recall-k", type=int, default=40,
                       help="--embeddings: k of the recall@k measured against exact search, e.g. 40")
    build.add_argument("--target-recall", type=float, default=0.9,
                       help="--embeddings: smallest search depth (nprobe/efSearch) reaching this recall is "
                       "recorded for serving, e.g. 0.95")
    build.add_argument("--recall-queries", action="append", default=[], metavar="NAME=FILE.npy",
                       help="--embeddings: held-out query vectors to measure recall on (repeatable), e.g. "
                       "text=text_queries.npy; default: 1,000 indexed vectors, leave-one-out")
    build.set_defaults(handler=_build)

    serve = cli.add_command(
        commands, "serve", help="serve indices over HTTP (clip-retrieval protocol)",
        description="Serve one or more indices built by `letitwag knn build`, memory-mapped. Text and image queries "
        "are embedded with each index's model; embedding_input queries need none. The flags use_safety_model, "
        "use_violence_detector, use_mclip and aesthetic_score are accepted but not applied; responses name them "
        "in the X-Letitwag-Unsupported header. GET /indices-list names each index's recall against exact search in "
        "the X-Letitwag-Recall header (GET /indices-list?details=true: as JSON); GET /health lists indices and sizes.",
        examples=SERVE_EXAMPLES,
    )
    serve.add_argument("index", nargs="+", help="index directory, or NAME=DIR to choose its indice_name")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=1234, help="TCP port")
    serve.add_argument("--workers", type=int, default=1, help="server processes (they share the mmapped index)")
    serve.add_argument("--model", default=None, help="override the model spec recorded in the index")
    serve.add_argument("--no-model", action="store_true", help="load no model: only embedding_input queries")
    serve.add_argument("--device", default="cpu", help="torch device for query embedding")
    serve.add_argument("--search-threads", type=int, default=1, help="faiss threads per batched search")
    serve.add_argument("--torch-threads", type=int, default=1, help="torch threads per worker")
    serve.add_argument("--max-body-bytes", type=int, default=32 * 1024 * 1024, help="largest accepted request body")
    serve.add_argument("--max-results", type=int, default=10_000, help="largest num_images / num_result_ids")
    serve.add_argument("--inline-images", action="store_true",
                       help="add each result's file bytes as base64 'image' (for clients on another machine)")
    serve.set_defaults(handler=_serve)


def _build(args) -> int:
    if args.embeddings:
        from letitwag.builders.knn.from_embeddings import EmbeddingBuildOptions, build_from_embeddings
        from letitwag.builders.knn.index_choice import parse_memory

        options = EmbeddingBuildOptions(
            index_type=args.index_type, max_index_memory=parse_memory(args.max_index_memory), model=args.model,
            modality=args.modality, recall_k=args.recall_k, target_recall=args.target_recall,
            recall_queries=_named_files(args.recall_queries), threads=args.threads)
        build_from_embeddings(args.embeddings, args.out, args.metadata, options)
        return 0
    if not args.model:
        raise UserInputError("--images needs --model (the encoder that embeds them)")
    from letitwag.builders.knn.build import build_index

    build_index(args.images, args.model, args.out, batch_size=args.batch_size, chunk_size=args.chunk_size,
                device=args.device, precision=args.precision, threads=args.threads)
    return 0


def _named_files(values: list[str]) -> dict[str, str]:
    """``NAME=FILE`` (or ``FILE``, named after its stem) -> ``{name: file}``."""
    named: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = Path(value).stem, value
        if name in named:
            raise UserInputError(f"--recall-queries: two sets are named {name!r}; name them NAME=FILE.npy")
        named[name] = path
    return named


def _serve(args) -> int:
    from letitwag.builders.knn.server import ServeSettings, index_names, serve

    settings = ServeSettings(
        indices=index_names(args.index),
        model_override=args.model,
        load_model=not args.no_model,
        device=args.device,
        torch_threads=args.torch_threads,
        search_threads=args.search_threads,
        max_body_bytes=args.max_body_bytes,
        inline_images=args.inline_images,
        limits={"max_results": args.max_results},
    )
    serve(settings, host=args.host, port=args.port, workers=args.workers,
          log_level="info" if args.log_level == "DEBUG" else "warning")
    return 0
