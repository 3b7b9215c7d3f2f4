"""``letitwag evaluate`` (also ``python -m letitwag.evaluate``): thin layer over ``letitwag.harness``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from letitwag import cli

logger = logging.getLogger(__name__)

EXAMPLES = """\
  python -m letitwag.evaluate --model open_clip:ViT-B-32/laion2b_s34b_b79k --out runs/vit-b-32
  letitwag evaluate --model transformers:openai/clip-vit-base-patch32 --prompts simple --out runs/hf-b32
  letitwag evaluate --model transformers:google/siglip-base-patch16-224 --precision bf16 --device cuda
  letitwag evaluate --model open_clip:ViT-B-32/laion2b_s34b_b79k --dataset ./my_dataset --split test --limit 500
  letitwag evaluate --model open_clip:ViT-B-32/laion2b_s34b_b79k --device cpu --cpu-streams 1 --workers 4
  letitwag evaluate --model open_clip:ViT-B-32/laion2b_s34b_b79k --device cuda --decode gpu --precision bf16 --batch-size 256
  letitwag evaluate --model open_clip:my-arch/ckpt/model.safetensors --dataset ./saved --classnames names.txt
  letitwag evaluate --model python:mypkg.models:build --prompts my_templates.txt --no-cache
  letitwag evaluate --model open_clip:ViT-B-32/laion2b_s34b_b79k --dataset clip-benchmark/wds_cars --out runs/b32-cars
  letitwag evaluate --model open_clip:ViT-B-32/laion2b_s34b_b79k --dataset ./wds_vtab-cifar10 --prompts ensemble
  letitwag evaluate --model open_clip:ViT-B-32/laion2b_s34b_b79k --dataset ./my_images --classnames names.txt
  letitwag evaluate --task retrieval --model open_clip:ViT-B-32/laion2b_s34b_b79k --dataset clip-benchmark/wds_mscoco_captions --out runs/b32-coco
  letitwag evaluate --task retrieval --model open_clip:ViT-B-32/laion2b_s34b_b79k --dataset nlphuji/flickr_1k_test_image_text_retrieval --captions-per-image 5
  letitwag evaluate --task retrieval --model open_clip:ViT-B-32/laion2b_s34b_b79k --dataset ./captions_ds --caption-column text --image-id-column image_id --concepts all
  letitwag evaluate --suite paper --model open_clip:ViT-B-32/laion400m_e32 --data-root /data/clip_benchmark --out runs/b32-laion400m
  letitwag evaluate --suite paper --model open_clip:ViT-B-32/laion400m_e32 --data-root /data --offline --out runs/b32
  letitwag evaluate --list-models
  letitwag evaluate --task t2i --model diffusers:stabilityai/stable-diffusion-2-1 --judge open_clip:ViT-L-14/openai --images-per-prompt 4 --generation-options '{"num_inference_steps": 25}' --out runs/sd21
  letitwag evaluate --task t2i --model python:mypkg.gen:build --prompt-file prompts.json --retrieval-judge open_clip:ViT-B-32/laion2b_s34b_b79k --out runs/mygen"""



def add_arguments(parser) -> None:
    from letitwag.harness.options import DEFAULT_DATASET

    parser.add_argument("--model", help="model spec: open_clip:ARCH/TAG | open_clip:ARCH/CHECKPOINT | open_clip:hf-hub:ORG/NAME"
                        " | open_clip:ARCH (random weights) | transformers:ID_OR_DIR | diffusers:ID_OR_DIR"
                        " | python:package.module:factory (see --list-models)")
    parser.add_argument("--task", default="classification", choices=["classification", "retrieval", "t2i"],
                        help="classification (zero-shot, --model is an encoder), retrieval (image-text, both "
                        "directions, --model is an encoder) or t2i (text-to-image, --model is a generator)")
    parser.add_argument("--dataset", default=DEFAULT_DATASET,
                        help="Hub dataset id, or a local folder: HF Hub layout (parquet under data/), saved with "
                        "save_to_disk, class-per-folder images (root/<class>/*.jpg), or CLIP_benchmark's webdataset "
                        "layout (<root>/<split>/nshards.txt + 0.tar ..., also as a Hub id clip-benchmark/wds_NAME, "
                        "downloaded one split at a time)")
    parser.add_argument("--split", default=None, help="split to evaluate; default: the only split, else test, validation, train")
    parser.add_argument("--dataset-revision", default=None, help="Hub revision (branch, tag or commit) of --dataset")
    parser.add_argument("--image-column", default=None, help="image column; default: the dataset's Image feature")
    parser.add_argument("--label-column", default=None, help="label column; default: the dataset's ClassLabel feature")
    parser.add_argument("--classnames", type=Path, default=None,
                        help="file of class names used in prompts (one per line or a JSON list, in label order); "
                        "default: ClassLabel names with underscores as spaces, or a webdataset's classnames.txt")
    parser.add_argument("--prompts", default=None,
                        help="ensemble (the paper's 80 templates) | simple | class | FILE (one template per line or "
                        "a JSON list, each with {c} for the class name); default for classification: the dataset's "
                        "own zeroshot_classification_templates.txt (CLIP_benchmark's webdataset layout, as "
                        "CLIP_benchmark does), else ensemble; for t2i: simple ('A photo of a {c}.')")
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory for results.json + predictions.parquet; default: results/<task>/<model>")
    parser.add_argument("--batch-size", type=int, default=64, help="images (and prompts) per forward pass; halved on out-of-memory")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader worker processes reading (and, on the CPU path, decoding) images; 0: in the "
                        "main process; default: 2 on a CPU device, on a GPU min(CPUs, 8) with --decode gpu and "
                        "min(CPUs, 32) with --decode cpu")
    parser.add_argument("--device", default=None, help="torch device (cpu, cuda, cuda:1); default: cuda if available, else cpu")
    parser.add_argument("--cpu-streams", type=int, default=None,
                        help="on a CPU device: image batches encoded at once, each on its share of the cores "
                        "(1: one batch on all cores, as CLIP_benchmark does); default: one per CPU, at most 8; "
                        "ignored on accelerators and with --compile")
    parser.add_argument("--compile", default="off", choices=["on", "off", "auto"],
                        help="classification and retrieval: compile the image tower with torch.compile (inductor, frozen weights): faster forwards "
                        "after a one-off compile that takes minutes on a small CPU; auto compiles only for runs of "
                        ">= 20,000 images")
    parser.add_argument("--decode", default="auto", choices=["auto", "cpu", "gpu"],
                        help="classification and retrieval: where images are decoded and preprocessed. cpu: PIL and "
                        "the model's own preprocessing in the workers; gpu: JPEGs decoded in batches on the device "
                        "(nvJPEG) and resized/cropped/normalised there as the model's preprocessing does, other "
                        "formats and failures on the CPU path (on a CPU device: the same tensor path with the CPU "
                        "decoder); auto: gpu on CUDA when torchvision decodes there and the model's preprocessing is "
                        "reproduced, else cpu. Recorded in results.json (decode) and part of the feature cache key")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "amp"],
                        help="weights/compute precision; amp = fp32 weights with autocast (bf16 on CPU, fp16 on CUDA)")
    parser.add_argument("--seed", type=int, default=0, help="seed for torch, the --limit subset and the bootstrap")
    parser.add_argument("--limit", type=int, default=None,
                        help="evaluate a seeded random subset of N samples (testing only; marked in results.json)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where classifiers and image-feature chunks are cached; default: ~/.cache/letitwag")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write any cache")
    parser.add_argument("--chunk-size", type=int, default=2048,
                        help="samples per cached feature chunk (the unit of resume after a crash)")
    parser.add_argument("--bootstrap-samples", type=int, default=1000, help="bootstrap resamples for the 95%% CIs (0: none)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow transformers/diffusers models to run code from their repository (off by default)")
    parser.add_argument("--list-models", action="store_true", help="list adapters and open_clip's pretrained tags, then exit")
    _add_retrieval_arguments(parser)
    _add_suite_arguments(parser)
    _add_t2i_arguments(parser)


def _add_suite_arguments(parser) -> None:
    group = parser.add_argument_group("suites (--suite)")
    group.add_argument("--suite", choices=["paper"], default=None,
                       help="paper: evaluate --model on Let it Wag! and every classification and retrieval dataset of "
                       "the paper (letitwag/data/downstream_datasets.json), one run folder per dataset under --out "
                       "plus --out/suite.json (status, results path, headline metrics per dataset; a missing dataset "
                       "with the command that gets it). A rerun reuses every dataset already evaluated with the same "
                       "model and settings. Retrieval keeps the paper's 5 captions per image unless "
                       "--captions-per-image says otherwise")
    group.add_argument("--data-root", type=Path, default=None,
                       help="with --suite: folder holding the datasets, each in a folder named as CLIP_benchmark's "
                       "export (wds_imagenet1k, wds_vtab-cifar10, wds_mscoco_captions, wds_flickr30k, ...), as the "
                       "paper's dataset (cub, ucf101, ...) or as its Hub repository (Let-It-Wag), in any layout "
                       "--dataset reads")
    group.add_argument("--offline", action="store_true",
                       help="with --suite: never download; a dataset not under --data-root is listed as missing "
                       "(default: loaded from the Hub unless HF_HUB_OFFLINE=1)")


def _add_retrieval_arguments(parser) -> None:
    from letitwag.harness.captions import CAPTION_COLUMNS, ID_COLUMNS
    from letitwag.harness.retrieval_metrics import PAPER_MIN_CONCEPT_IMAGES

    group = parser.add_argument_group("image-text retrieval (--task retrieval)")
    group.add_argument("--caption-column", default=None,
                       help="column holding the captions: a list of texts per image (one row per image) or a text "
                       "(one row per caption); default: the first list-of-text, then text, column named "
                       f"{', '.join(CAPTION_COLUMNS)}; webdatasets use KEY.txt")
    group.add_argument("--image-id-column", default=None,
                       help="with one row per caption: the column naming each row's image; default: the first of "
                       f"{', '.join(ID_COLUMNS)} present, else rows with identical image bytes are one image")
    group.add_argument("--captions-per-image", type=int, default=None,
                       help="keep the first N captions of each image (the paper used 5 for COCO and Flickr); "
                       "default: all, as CLIP_benchmark")
    group.add_argument("--concepts", default=None,
                       help="the paper's concept list of the dataset: retrieval tags each caption with it for "
                       "per-concept recall; classification maps each class name to one of its concepts for the "
                       "frequency join (unmapped classes are listed in results.json). A bundled name (coco, flickr, "
                       "cifar10, imagenet, let-it-wag, all, ...), a file (see docs/FORMATS.md), or none; default: "
                       "the dataset's bundled list when it is one of the paper's (wds_mscoco_captions -> coco, "
                       "wds_vtab-cifar10 -> cifar10, ...), else none")
    group.add_argument("--min-concept-images", type=int, default=PAPER_MIN_CONCEPT_IMAGES,
                       help="report per-concept recall for concepts carried by at least N images (the paper's 10); "
                       "the others are listed in results.json")


def json_object(text: str) -> dict:
    """argparse type: a JSON object (argparse reports the ValueError as an invalid value)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(text)
    return value


def _add_t2i_arguments(parser) -> None:
    from letitwag.harness.t2i.settings import DEFAULT_GENERATION_BATCH_SIZE, DEFAULT_IMAGES_PER_PROMPT, DEFAULT_JUDGE

    group = parser.add_argument_group("text-to-image (--task t2i)")
    group.add_argument("--judge", default=DEFAULT_JUDGE,
                       help="image-text encoder spec that classifies each generated image among all concepts and "
                       "computes CLIPScore (the default is HEIM's CLIPScore model, OpenAI CLIP ViT-L/14)")
    group.add_argument("--judge-prompts", default="ensemble",
                       help="prompt templates of the judge's zero-shot classifier (as --prompts)")
    group.add_argument("--retrieval-judge", default=None,
                       help="encoder spec whose image features rank the dataset's real images for each generated "
                       "image (CMC@1/2/5); none: no retrieval")
    group.add_argument("--images-per-prompt", type=int, default=DEFAULT_IMAGES_PER_PROMPT,
                       help="images generated per prompt, each with its own seed")
    group.add_argument("--prompt-file", type=Path, default=None,
                       help='JSON {"concept_id": ["prompt", ...]}: these prompts replace the templates for those concepts')
    group.add_argument("--generation-options", type=json_object, default=None,
                       help='JSON object passed to the generator, e.g. \'{"num_inference_steps": 25, "guidance_scale": 7.5}\'')
    group.add_argument("--generation-batch-size", type=int, default=DEFAULT_GENERATION_BATCH_SIZE,
                       help="images per generate() call; halved on out-of-memory")


def register(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "evaluate",
        help="zero-shot classification, image-text retrieval or text-to-image evaluation on Let it Wag! "
        "(or any dataset in a supported layout)",
        description="Build a zero-shot classifier from prompt templates, encode every image (cached, resumable), "
        "and write results.json (metrics with bootstrap CIs, accuracy by pretraining-frequency bin, provenance) "
        "and predictions.parquet (top-5 per sample) to --out. With --task retrieval: encode images and captions "
        "(cached, resumable), rank both directions and write recall@1/5/10 with bootstrap CIs, per-concept recall "
        "(captions tagged by the frequency engine's matcher) by pretraining-frequency bin, and per-caption ranks of "
        "the positives. With --task t2i: generate images for every concept "
        "(seeded, resumable per concept, PNGs under --out/images), judge them (zero-shot top-1/top-5, HEIM's "
        "expected/max CLIPScore, optional retrieval CMC@k) and write the same two files. "
        "Also available as `python -m letitwag.evaluate`.",
        examples=EXAMPLES,
    )
    add_arguments(parser)
    parser.set_defaults(handler=_run)


def _t2i_extra(args) -> dict:
    return {"judge": args.judge, "judge_prompts": args.judge_prompts, "retrieval_judge": args.retrieval_judge,
            "images_per_prompt": args.images_per_prompt, "prompt_file": args.prompt_file,
            "generation_options": args.generation_options or {}, "generation_batch_size": args.generation_batch_size}


def _retrieval_extra(args) -> dict:
    return {"caption_column": args.caption_column, "image_id_column": args.image_id_column,
            "captions_per_image": args.captions_per_image, "concepts": args.concepts,
            "min_concept_images": args.min_concept_images, "compile": args.compile}


def _task_extra(args) -> dict:
    if args.task == "t2i":
        return _t2i_extra(args)
    if args.task == "retrieval":
        return _retrieval_extra(args)
    return {"compile": args.compile, "concepts": args.concepts}


def _options(args):
    from letitwag.harness import EvaluationOptions

    t2i = args.task == "t2i"
    prompts = args.prompts or ("simple" if t2i else None)
    return EvaluationOptions(
        model=args.model, task=args.task, dataset=args.dataset, split=args.split, dataset_revision=args.dataset_revision,
        out=args.out, image_column=args.image_column, label_column=args.label_column, classnames=args.classnames,
        prompts=prompts, batch_size=args.batch_size, workers=args.workers, device=args.device, decode=args.decode,
        cpu_streams=args.cpu_streams,
        precision=args.precision, seed=args.seed, limit=args.limit, cache_dir=args.cache_dir, no_cache=args.no_cache,
        chunk_size=args.chunk_size, bootstrap_samples=args.bootstrap_samples, trust_remote_code=args.trust_remote_code,
        extra=_task_extra(args),
    )


def _run(args) -> int:
    from letitwag.errors import UserInputError

    if args.list_models:
        from letitwag.models import list_models

        listing = list_models()
        for adapter, forms in listing["adapters"].items():
            print(f"{adapter}: {forms}")
        print("\nopen_clip pretrained:")
        print("\n".join(f"  {spec}" for spec in listing["open_clip_pretrained"]))
        return 0
    if not args.model:
        raise UserInputError("give --model SPEC (e.g. open_clip:ViT-B-32/laion2b_s34b_b79k) or --list-models")
    if args.suite:
        return _run_suite(args)
    from letitwag.harness import evaluate

    results = evaluate(_options(args))
    metrics = results["metrics"]
    keys = ("top1", "top5", "mean_per_class_recall")
    if results["task"] == "t2i":
        keys = ("judge_top1", "judge_top5", "expected_clip_score", "max_clip_score", "retrieval_cmc@1")
    if results["task"] == "retrieval":
        from letitwag.harness.retrieval_metrics import metric_names

        keys = tuple(metric_names())
    summary = {key: metrics.get(key) for key in keys}
    summary.update(out=results["out_dir"], skipped=results.get("skipped_samples"))
    print(json.dumps(summary))
    return 0


def _run_suite(args) -> int:
    import dataclasses

    from letitwag.errors import UserInputError
    from letitwag.harness.options import DEFAULT_DATASET
    from letitwag.harness.suite import run_suite

    if args.task != "classification" or args.dataset != DEFAULT_DATASET:
        raise UserInputError("--suite chooses the datasets and tasks itself: drop --task/--dataset and point "
                             "--data-root at the folder holding the datasets")
    options = dataclasses.replace(_options(args), extra={"compile": args.compile,
                                                         "captions_per_image": args.captions_per_image,
                                                         "min_concept_images": args.min_concept_images})
    summary = run_suite(options, args.data_root, suite=args.suite, hub=False if args.offline else None)
    for entry in summary["datasets"]:
        detail = entry["metrics"] if entry["metrics"] is not None else (entry["error"] or entry["how_to_get"])
        print(f"{entry['status']:9} {entry['name']:16} {json.dumps(detail) if isinstance(detail, dict) else detail}")
    print(json.dumps({"suite": str(Path(args.out) / "suite.json"), **summary["summary"]}))
    return 1 if summary["summary"]["failed"] else 0
