"""``urls:FILE`` — a URL list downloaded through img2dataset, with a status for every URL.

FILE is CSV, TSV, parquet or JSON lines with columns ``url`` and ``concept_id`` (an id, display
name or alias) and optionally ``caption`` and ``license``. Rows are cut into blocks of
``urls_per_unit``; each block is one img2dataset run (``resize_mode=no``, JPEGs kept byte for
byte, other formats decoded and re-encoded as JPEG, undecodable bodies refused) into the
source's work folder. Every URL ends as a candidate row or a rejection row carrying
img2dataset's status (``failed_to_download`` / ``failed_to_resize``) and error message; its own
per-URL parquet stays beside the images. A finished block is never downloaded again, so a rerun
after adding URLs at the end of the file fetches only the new ones.

img2dataset's own ``Downloader`` (thread pool, retries, timeout, decode check, files writer,
per-URL status parquet) is called in-process on one shard per block: its ``download()`` entry
point spawns a process pool and a logger process per call (tens of seconds of interpreter
start-up here) and installs a SIGINT handler that exits 0. The installed img2dataset has no byte
limit: bodies are read whole, and files above ``max_bytes`` are refused (``too_large``) after
download.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from letitwag.builders.collect.records import file_candidate, rejection
from letitwag.builders.collect.runner import Source, UnitResult
from letitwag.concepts import ConceptList
from letitwag.errors import UserInputError
from letitwag.io import text_sha256

logger = logging.getLogger(__name__)

MAX_BYTES = 50 * 1024 * 1024


def read_url_table(path: Path) -> pa.Table:
    """The URL list as a table with at least ``url`` and ``concept_id`` (strings)."""
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson

    if not path.is_file():
        raise UserInputError(f"{path}: no such URL list; give a CSV/TSV/parquet/JSONL file with url,concept_id")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            table = pq.read_table(path)
        elif suffix in (".csv", ".tsv"):
            table = pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ","),
                                  convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
        elif suffix in (".jsonl", ".json", ".ndjson"):
            table = pjson.read_json(path)
        else:
            raise UserInputError(f"{path}: unknown URL list type {suffix!r}; use .csv, .tsv, .parquet or .jsonl")
    except (pa.ArrowInvalid, OSError) as error:
        raise UserInputError(f"{path}: cannot read the URL list ({str(error).splitlines()[0]})") from None
    missing = [name for name in ("url", "concept_id") if name not in table.column_names]
    if missing:
        raise UserInputError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(table.column_names)}")
    columns = {}
    for name in ("url", "concept_id", "caption", "license"):
        columns[name] = table[name].cast(pa.string()) if name in table.column_names else pa.nulls(table.num_rows, pa.string())
    return pa.table(columns)


def download_urls(rows: list[dict], folder: Path, manifest_dir: Path, source: str, timeout: float, retries: int,
                  threads: int, max_bytes: int = MAX_BYTES) -> tuple[list[dict], list[dict]]:
    """Download ``rows`` (candidate_id, concept_id, url, caption, license, ...) with img2dataset.

    Returns candidate rows for the images it got and rejection rows for every other URL.
    ``folder`` is rebuilt from scratch (a previous attempt may have been killed midway).
    """
    import pandas as pd

    try:
        from img2dataset.downloader import Downloader
        from img2dataset.resizer import Resizer
        from img2dataset.writer import FilesSampleWriter
    except ImportError:
        raise UserInputError("downloading URLs needs img2dataset: pip install img2dataset") from None

    if folder.exists():
        shutil.rmtree(folder)
    (folder / "output").mkdir(parents=True)
    # img2dataset only needs the key back; every other field stays in ``rows`` (it cannot store nulls).
    columns = ["candidate_id", "caption", "url"]
    frame = pd.DataFrame([{"candidate_id": r["candidate_id"], "caption": r.get("caption") or "", "url": r["url"]}
                          for r in rows])
    frame.to_feather(folder / "shard.feather")
    downloader = Downloader(
        sample_writer_class=FilesSampleWriter,
        resizer=Resizer(image_size=0, resize_mode="no", resize_only_if_bigger=False, skip_reencode=True),
        thread_count=max(1, min(threads, len(rows))), save_caption=True, extract_exif=False,
        output_folder=str(folder / "output"), column_list=columns, timeout=timeout,
        number_sample_per_shard=max(len(rows), 2), oom_shard_count=5, compute_md5=False, retries=retries,
    )
    failure = downloader((0, str(folder / "shard.feather")))  # None on success, a (False, ...) tuple otherwise
    status_path = folder / "output" / "00000.parquet"
    if failure is not None or not status_path.exists():
        raise UserInputError(f"img2dataset failed on a block of {len(rows)} URLs in {folder}; rerun to retry it")
    return _results(pq.read_table(status_path).to_pylist(), rows, folder, manifest_dir, source, max_bytes)


def _results(statuses: list[dict], rows: list[dict], folder: Path, manifest_dir: Path, source: str,
             max_bytes: int) -> tuple[list[dict], list[dict]]:
    by_id = {row["candidate_id"]: row for row in rows}
    candidates, rejected, seen = [], [], set()
    for status in statuses:
        row = by_id.get(status.get("candidate_id"))
        if row is None:
            continue
        seen.add(row["candidate_id"])
        if status["status"] != "success":
            rejected.append(rejection(source, row["concept_id"], row["url"], status["status"],
                                      status.get("error_message") or ""))
            continue
        path = folder / "output" / "00000" / f"{status['key']}.jpg"
        if not path.is_file():
            rejected.append(rejection(source, row["concept_id"], row["url"], "missing_file", f"{path} not written"))
        elif path.stat().st_size > max_bytes:
            rejected.append(rejection(source, row["concept_id"], row["url"], "too_large",
                                      f"{path.stat().st_size} bytes > {max_bytes}"))
            path.unlink()
        else:
            fields = {"source": source, **row, "caption": row.get("caption") or None}
            candidates.append(file_candidate(path, manifest_dir, **fields))
    for candidate_id in by_id.keys() - seen:
        row = by_id[candidate_id]
        rejected.append(rejection(source, row["concept_id"], row["url"], "not_attempted", "img2dataset skipped it"))
    return candidates, rejected


class UrlListSource(Source):
    kind = "urls"

    def __init__(self, argument, options) -> None:
        super().__init__(argument, options)
        self._table: pa.Table | None = None

    @property
    def table(self) -> pa.Table:
        if self._table is None:
            self._table = read_url_table(Path(self.argument).expanduser())
        return self._table

    def units(self, concepts: ConceptList) -> list[str]:
        size = self.options.urls_per_unit
        urls, ids = self.table["url"].to_pylist(), self.table["concept_id"].to_pylist()
        units = []
        for start in range(0, self.table.num_rows, size):
            end = min(start + size, self.table.num_rows)
            digest = text_sha256("\n".join(f"{u}\t{c}" for u, c in zip(urls[start:end], ids[start:end])))[:16]
            units.append(f"rows:{start}:{end}:{digest}")
        return units

    def run_unit(self, unit: str, concepts: ConceptList, workdir: Path, manifest_dir: Path) -> UnitResult:
        _, start, end, digest = unit.split(":")
        block = self.table.slice(int(start), int(end) - int(start)).to_pylist()
        rows, rejected = [], []
        for number, record in enumerate(block, start=int(start) + 2):
            url, concept = (record["url"] or "").strip(), concepts.find(record["concept_id"] or "")
            if not url.startswith(("http://", "https://")):
                rejected.append(rejection(self.kind, record["concept_id"], url or f"row {number}", "bad_url",
                                          "not an http(s) URL"))
            elif concept is None:
                rejected.append(rejection(self.kind, record["concept_id"], url, "unknown_concept",
                                          f"row {number}: {record['concept_id']!r} matches no concept"))
            else:
                rows.append({"candidate_id": f"urls/{concept.id}/{text_sha256(url)[:16]}", "concept_id": concept.id,
                             "url": url, "caption": record["caption"], "license": record["license"]})
        unique = list({row["candidate_id"]: row for row in rows}.values())
        if unique:
            got, failed = download_urls(unique, workdir / "downloads" / digest, manifest_dir, self.kind,
                                        self.options.timeout, self.options.retries, self.options.download_threads)
            return UnitResult(got, rejected + failed)
        return UnitResult([], rejected)
