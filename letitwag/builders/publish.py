"""Publish a curated manifest in the Hugging Face Hub dataset layout, and optionally push it.

Layout (what ``datasets.load_dataset`` reads identically from a local folder and the Hub)::

    hub/
      README.md                                   data card: YAML (configs, dataset_info, license,
                                                  task/size categories) + prose
      data/test-00000-of-00003.parquet ...        Image + ClassLabel + metadata columns, images embedded

Why embed the bytes: a Hub dataset must be self-contained, and parquet shards with an ``Image``
feature are what the dataset viewer reads. Shards are cut by encoded image size (like
``push_to_hub``'s ``max_shard_size``), rows keep the curated order (label, candidate id), and
parquet row groups hold 100 rows so the viewer can page through images.

Pushing uses ``huggingface_hub.HfApi.create_commit`` (optionally as a pull request); without
network or token the push fails with a one-line error and nothing is reported as pushed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from letitwag.builders.manifest import read_curated
from letitwag.concepts import ConceptList, Concept, display_name
from letitwag.errors import UserInputError
from letitwag.io import atomic_write_text, atomic_write_with

LOGGER = logging.getLogger(__name__)
ROWS_PER_GROUP = 100
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "data_cards" / "let-it-wag.md.j2"
METADATA_COLUMNS = ("concept", "concept_id", "group", "source", "url", "license", "sha256", "phash", "candidate_id")


@dataclass(frozen=True)
class PublishOptions:
    """What the data card and the shards need beyond the curated manifest."""

    split: str = "test"
    max_shard_bytes: int = 500_000_000
    license: str = "other"
    pretty_name: str = "Let It Wag!"
    frequency_table: str | None = "paper:laion400m"
    template: Path = DEFAULT_TEMPLATE


def _features(names: list[str]):
    from datasets import ClassLabel, Features, Image, Value

    columns = {"image": Image(), "label": ClassLabel(names=names)}
    columns.update({name: Value("string") for name in METADATA_COLUMNS})
    return Features(columns)


def _shards(sizes: list[int], max_bytes: int) -> list[tuple[int, int]]:
    """Contiguous (start, end) row ranges whose image bytes stay under ``max_bytes`` where possible."""
    ranges, start, total = [], 0, 0
    for index, size in enumerate(sizes):
        if index > start and total + size > max_bytes:
            ranges.append((start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges


def _frequencies(concepts: list[Concept], table_spec: str | None) -> dict[str, int | None]:
    """Each concept's count: from the concept list's mining metadata, else from ``table_spec``."""
    counts = {c.id: c.metadata.get("count") for c in concepts if isinstance(c.metadata.get("count"), int)}
    if len(counts) == len(concepts) or not table_spec:
        return {c.id: counts.get(c.id) for c in concepts}
    from letitwag.tables import FrequencyTable

    table = FrequencyTable.read(table_spec)
    known = table.counts() if len(table.pairs()) == 1 else {}
    return {c.id: counts.get(c.id, known.get(c.id)) for c in concepts}


def publish(curated_dir: str | Path, out_dir: str | Path, options: PublishOptions | None = None) -> dict:
    """Write the Hub layout of a curated manifest into ``out_dir``; returns the summary of the split."""
    options = options or PublishOptions()
    curated = read_curated(curated_dir)
    out_dir = Path(out_dir)
    table = curated.table.filter(pa.compute.equal(curated.table["kept"], True))
    if table.num_rows == 0:
        raise UserInputError(f"{curated_dir}: no kept images to publish; check the curation report")
    listed = ConceptList(
        Concept(c["id"], name=c.get("name", ""), source=c.get("source", ""), metadata=c.get("metadata", {}))
        for c in curated.provenance.get("concepts", {}).get("concepts", [])
    )
    present = set(table["concept_id"].to_pylist())
    concepts = [c for c in listed if c.id in present] or [Concept(i) for i in sorted(present)]
    names = [c.id for c in concepts]
    label_of = {c: i for i, c in enumerate(names)}
    features = _features(names)
    schema = features.arrow_schema
    rows = table.to_pylist()
    sizes = [curated.resolve_path(r["image"]["path"]).stat().st_size for r in rows]
    ranges = _shards(sizes, options.max_shard_bytes)
    data_dir = out_dir / "data"
    for stale in data_dir.glob(f"{options.split}-*.parquet") if data_dir.exists() else []:
        stale.unlink()
    num_bytes, download = 0, 0
    display = {c.id: c.name or display_name(c.id) for c in concepts}
    for shard, (start, end) in enumerate(tqdm(ranges, desc="publish", unit="shard")):
        part = rows[start:end]
        encoded = [curated.resolve_path(r["image"]["path"]).read_bytes() for r in part]
        for row, data in zip(part, encoded):  # the hash of the published bytes (converted images differ)
            row["sha256"] = hashlib.sha256(data).hexdigest()
        columns = {
            "image": [{"bytes": data, "path": Path(r["image"]["path"]).name} for r, data in zip(part, encoded)],
            "label": [label_of[r["concept_id"]] for r in part],
            "concept": [display[r["concept_id"]] for r in part],
        }
        for name in METADATA_COLUMNS[1:]:
            columns[name] = [None if r.get(name) is None else str(r.get(name)) for r in part]
        shard_table = pa.Table.from_pydict(columns, schema=schema)
        num_bytes += shard_table.nbytes
        path = data_dir / f"{options.split}-{shard:05d}-of-{len(ranges):05d}.parquet"
        atomic_write_with(path, lambda tmp: pq.write_table(shard_table, tmp, row_group_size=ROWS_PER_GROUP))
        download += path.stat().st_size
    summary = {"split": options.split, "num_examples": len(rows), "num_bytes": num_bytes,
               "download_size": download, "shards": len(ranges), "num_classes": len(names)}
    card = render_card(curated, concepts, features, summary, options)
    atomic_write_text(out_dir / "README.md", card)
    LOGGER.info("published %d images of %d concepts in %d shard(s) to %s", len(rows), len(names), len(ranges), out_dir)
    return summary


def _size_category(count: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M")]
    return next((label for bound, label in bounds if count < bound), "10M<n<100M")


def card_metadata(features, summary: dict, options: PublishOptions) -> dict:
    """The YAML header of the card: what the Hub needs to show the viewer and load the split."""
    return {
        "license": options.license,
        "pretty_name": options.pretty_name,
        "task_categories": ["zero-shot-image-classification", "image-classification"],
        "size_categories": [_size_category(summary["num_examples"])],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": options.split, "path": f"data/{options.split}-*"}]}],
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": [{"name": options.split, "num_bytes": summary["num_bytes"],
                        "num_examples": summary["num_examples"]}],
            "download_size": summary["download_size"],
            "dataset_size": summary["num_bytes"],
        },
    }


def render_card(curated, concepts: list[Concept], features, summary: dict, options: PublishOptions) -> str:
    import jinja2
    import yaml

    if not options.template.exists():
        raise UserInputError(f"data card template {options.template} not found; pass --card-template FILE")
    report_path = curated.directory / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else {"steps": []}
    frequencies = _frequencies(concepts, options.frequency_table)
    kept = {}
    for concept_id in curated.table.filter(pa.compute.equal(curated.table["kept"], True))["concept_id"].to_pylist():
        kept[concept_id] = kept.get(concept_id, 0) + 1
    groups = dict(zip(curated.table["concept_id"].to_pylist(), curated.table["group"].to_pylist()))
    environment = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["reject_enabled"] = lambda settings: {k: v for k, v in settings.items() if k != "enabled"}
    environment.filters["md"] = lambda text: str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    template = environment.from_string(options.template.read_text(encoding="utf-8"))
    header = yaml.safe_dump(card_metadata(features, summary, options), sort_keys=False, allow_unicode=True)
    return template.render(
        yaml_header=header.rstrip("\n"),
        pretty_name=options.pretty_name,
        summary=summary,
        steps=report.get("steps", []),
        totals=report.get("totals", {}),
        concepts=[{"id": c.id, "name": c.name or display_name(c.id), "frequency": frequencies.get(c.id),
                   "images": kept.get(c.id, 0), "group": groups.get(c.id)} for c in concepts],
        frequency_source=options.frequency_table,
        license=options.license,
        json=json,
        log10=lambda n: math.log10(max(int(n), 1)),
    )


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the Hub could not be reached or refused the upload.

    huggingface_hub's HTTP client has changed between ``requests``, ``httpx`` and ``httpx2``
    across versions; catch the base error of whichever of them is installed.
    """
    import importlib

    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[BaseException]] = [OSError, ValueError, HfHubHTTPError]
    for module_name, attribute in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            errors.append(getattr(importlib.import_module(module_name), attribute))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def push(hub_dir: str | Path, repo_id: str, create_pr: bool = False, token: str | None = None,
         endpoint: str | None = None, message: str = "Upload dataset with letitwag publish") -> str:
    """Upload ``hub_dir`` to the dataset repo ``repo_id`` in one commit; returns the commit/PR URL."""
    from huggingface_hub import CommitOperationAdd, HfApi

    hub_dir = Path(hub_dir)
    files = sorted(p for p in hub_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not (hub_dir / "README.md").exists():
        raise UserInputError(f"{hub_dir}: no README.md; run letitwag publish first")
    api = HfApi(endpoint=endpoint, token=token)
    operations = [CommitOperationAdd(path_in_repo=p.relative_to(hub_dir).as_posix(), path_or_fileobj=str(p)) for p in files]
    try:
        if not create_pr:
            api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
        info = api.create_commit(repo_id, operations, commit_message=message, repo_type="dataset", create_pr=create_pr)
    except _network_errors() as error:  # nothing was pushed
        raise UserInputError(
            f"push to {repo_id} failed, nothing was uploaded: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
            " (check the network, HF_TOKEN / `huggingface-cli login`, and the repo name)"
        ) from None
    return str(getattr(info, "pr_url", None) or getattr(info, "commit_url", info))
