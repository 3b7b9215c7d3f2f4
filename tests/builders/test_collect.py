"""`letitwag collect`: folder trees, webdataset tars, URL lists (img2dataset) and kNN backends.

Faults are real: a loopback HTTP server started here serves images, 404/500s, a slow
response past the timeout and non-image bodies; a dead port stands for a dead host; kNN
backends that are down or answer garbage are real sockets too.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from letitwag.builders.collect import CollectOptions, collect
from letitwag.builders.collect.knn import KnnBackendError
from letitwag.builders.collect.runner import make_source
from letitwag.builders.knn.background import free_loopback_port
from letitwag.builders.manifest import read_candidates
from letitwag.concepts import Concept, ConceptList
from letitwag.errors import UserInputError

pytestmark = pytest.mark.timeout(300)

CONCEPTS = ConceptList([Concept("Harriss_Hawk"), Concept("A300B4"), Concept("eastern_hog-nosed_snake")], "test")


def jpeg_bytes(seed: int, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray((rng.random((24, 32, 3)) * 255).astype("uint8")).save(buffer, format=fmt)
    return buffer.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    """/img/N.jpg, /png/N.png, /slow.jpg (sleeps), /error500.jpg, /notimage.jpg; counts requests."""

    hits: Counter = Counter()
    slow_seconds = 3.0

    def do_GET(self):  # noqa: N802 - http.server's name
        self.hits[self.path] += 1
        path = self.path.split("?")[0]
        if path.startswith("/img/"):
            self._send(200, jpeg_bytes(int(path[5:-4])), "image/jpeg")
        elif path.startswith("/png/"):
            self._send(200, jpeg_bytes(int(path[5:-4]), "PNG"), "image/png")
        elif path == "/slow.jpg":
            time.sleep(self.slow_seconds)
            self._send(200, jpeg_bytes(99), "image/jpeg")
        elif path == "/error500.jpg":
            self._send(500, b"boom", "text/plain")
        elif path == "/notimage.jpg":
            self._send(200, b"<html>not an image</html>", "text/html")
        else:
            self._send(404, b"missing", "text/plain")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def web():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Handler.hits
    server.shutdown()


def manifest_rows(out: Path) -> list[dict]:
    return read_candidates(out).table.to_pylist()


def rejections(out: Path) -> list[dict]:
    return pq.read_table(out / "rejections.parquet").to_pylist()


# --- folder --------------------------------------------------------------------------------

def test_two_folder_sources_with_the_same_layout_keep_both_images(tmp_path):
    for name, seed in (("one", 1), ("two", 2)):
        (tmp_path / name / "A300B4").mkdir(parents=True)
        (tmp_path / name / "A300B4" / "x.jpg").write_bytes(jpeg_bytes(seed))
    out = collect(CONCEPTS, [f"folder:{tmp_path / 'one'}", f"folder:{tmp_path / 'two'}"], tmp_path / "out")
    assert sorted(r["sha256"] for r in manifest_rows(out)) == sorted(
        hashlib.sha256(jpeg_bytes(seed)).hexdigest() for seed in (1, 2))


def test_folder_tree_matches_names_records_unknown_folders_and_reruns_identically(tmp_path):
    root = tmp_path / "photos"
    for folder, seeds in {"Harriss Hawk": [1, 2], "A300B4": [3], "unknown_thing": [4]}.items():
        (root / folder / "deep").mkdir(parents=True)
        for seed in seeds:
            (root / folder / "deep" / f"{seed}.jpg").write_bytes(jpeg_bytes(seed))
    (root / "A300B4" / "deep" / "3.txt").write_text("an airliner")
    (root / "A300B4" / "notes.md").write_text("not an image, ignored")
    out = tmp_path / "candidates"
    collect(CONCEPTS, [f"folder:{root}"], out)
    rows = manifest_rows(out)
    key = make_source(f"folder:{root}", CollectOptions()).key
    assert [(r["concept_id"], r["candidate_id"]) for r in rows] == [
        ("Harriss_Hawk", f"{key}/Harriss Hawk/deep/1.jpg"), ("Harriss_Hawk", f"{key}/Harriss Hawk/deep/2.jpg"),
        ("A300B4", f"{key}/A300B4/deep/3.jpg")]
    first = rows[0]
    data = jpeg_bytes(1)
    assert first["sha256"] == hashlib.sha256(data).hexdigest() and first["size_bytes"] == len(data)
    assert (first["width"], first["height"], first["source"]) == (32, 24, "folder")
    assert Path(first["image"]["path"]).read_bytes() == data
    assert rows[2]["caption"] == "an airliner"
    assert [(r["status"], Path(r["item"]).name) for r in rejections(out)] == [("unknown_concept", "unknown_thing")]
    provenance = json.loads((out / "candidates.provenance.json").read_text())
    assert provenance["counts"]["per_concept"] == {"Harriss_Hawk": 2, "A300B4": 1, "eastern_hog-nosed_snake": 0}
    before = (out / "candidates.parquet").read_bytes()
    collect(CONCEPTS, [f"folder:{root}"], out)
    assert (out / "candidates.parquet").read_bytes() == before
    assert json.loads((out / "candidates.provenance.json").read_text())["sources"][0]["resumed_units"] == 3


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def test_webdataset_tars_take_the_concept_from_json_cls_or_txt_and_record_the_rest(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    with tarfile.open(shards / "000.tar", "w") as archive:
        _add(archive, "s1.jpg", jpeg_bytes(1))
        _add(archive, "s1.json", json.dumps({"concept_id": "A300B4", "caption": "plane", "url": "http://x.invalid/1",
                                              "license": "CC0"}).encode())
        _add(archive, "s2.jpg", jpeg_bytes(2))
        _add(archive, "s2.cls", b"0")
        _add(archive, "dir/s3.jpg", jpeg_bytes(3))
        _add(archive, "dir/s3.txt", b"Eastern hog-nosed snake")
        _add(archive, "s4.jpg", jpeg_bytes(4))
        _add(archive, "s4.txt", b"a caption naming no concept")
        _add(archive, "s5.json", b'{"concept_id": "A300B4"}')
        _add(archive, "../escape.jpg", jpeg_bytes(6))
        _add(archive, "../escape.cls", b"1")
        link = tarfile.TarInfo("s7.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    good = (shards / "000.tar").read_bytes()
    (shards / "001.tar").write_bytes(good[: 512 + 100])  # truncated inside the first member's data
    out = tmp_path / "candidates"
    collect(CONCEPTS, [f"folder:{shards}"], out)
    rows = {r["candidate_id"].split("/", 1)[1]: r for r in manifest_rows(out)}
    assert {cid: r["concept_id"] for cid, r in rows.items()} == {
        "000.tar/s1": "A300B4", "000.tar/s2": "Harriss_Hawk",
        "000.tar/dir/s3": "eastern_hog-nosed_snake", "000.tar/../escape": "A300B4"}
    s1 = rows["000.tar/s1"]
    assert (s1["caption"], s1["url"], s1["license"]) == ("plane", "http://x.invalid/1", "CC0")
    stored = (out / s1["image"]["path"]).resolve()
    assert stored.is_relative_to(out.resolve()) and stored.read_bytes() == jpeg_bytes(1)
    assert not (tmp_path / "escape.jpg").exists() and not (shards.parent / "escape.jpg").exists()
    statuses = {(r["status"], r["item"].split(":")[-1] if r["status"] != "unreadable_tar" else "001.tar")
                for r in rejections(out)}
    assert {("unknown_concept", "s4"), ("no_image", "s5"), ("unreadable_tar", "001.tar")} <= statuses


# --- URL lists -------------------------------------------------------------------------------

def test_url_list_records_every_failure_and_skips_done_urls_on_rerun(tmp_path, web):
    base, hits = web
    dead = f"http://127.0.0.1:{free_loopback_port()}/dead.jpg"
    lines = ["url,concept_id,caption,license",
             f"{base}/img/1.jpg,A300B4,a plane,CC-BY",
             f"{base}/png/2.png,Harriss Hawk,,",
             f"{base}/missing.jpg,A300B4,,",
             f"{base}/error500.jpg,A300B4,,",
             f"{base}/slow.jpg,A300B4,,",
             f"{dead},A300B4,,",
             f"{base}/notimage.jpg,A300B4,,",
             f"{base}/img/3.jpg,no such concept,,",
             "ftp://example.invalid/x.jpg,A300B4,,"]
    url_file = tmp_path / "urls.csv"
    url_file.write_text("\n".join(lines) + "\n")
    out = tmp_path / "candidates"
    options = CollectOptions(timeout=1.0, retries=0, urls_per_unit=9)
    collect(CONCEPTS, [f"urls:{url_file}"], out, options)
    rows = manifest_rows(out)
    assert [(r["concept_id"], r["url"]) for r in rows] == [("Harriss_Hawk", f"{base}/png/2.png"),
                                                            ("A300B4", f"{base}/img/1.jpg")]
    plane = rows[1]
    assert plane["sha256"] == hashlib.sha256(jpeg_bytes(1)).hexdigest()  # JPEG kept byte for byte
    assert (plane["caption"], plane["license"], plane["source"]) == ("a plane", "CC-BY", "urls")
    assert Image.open(out / rows[0]["image"]["path"]).format == "JPEG"  # the PNG was decoded and re-encoded
    status = {r["item"].rsplit("/", 1)[-1]: r["status"] for r in rejections(out)}
    assert status == {"missing.jpg": "failed_to_download", "error500.jpg": "failed_to_download",
                      "slow.jpg": "failed_to_download", "dead.jpg": "failed_to_download",
                      "notimage.jpg": "failed_to_resize", "3.jpg": "unknown_concept", "x.jpg": "bad_url"}
    errors = {r["item"].rsplit("/", 1)[-1]: r["error"] for r in rejections(out)}
    assert "404" in errors["missing.jpg"] and "500" in errors["error500.jpg"] and "timed out" in errors["slow.jpg"]

    before, requests = (out / "candidates.parquet").read_bytes(), sum(hits.values())
    collect(CONCEPTS, [f"urls:{url_file}"], out, options)
    assert sum(hits.values()) == requests and (out / "candidates.parquet").read_bytes() == before
    with open(url_file, "a") as handle:  # a new URL appended: only it is fetched
        handle.write(f"{base}/img/4.jpg,eastern hog-nosed snake,,\n")
    collect(CONCEPTS, [f"urls:{url_file}"], out, options)
    assert sum(hits.values()) == requests + 1 and hits["/img/4.jpg"] == 1
    assert [r["concept_id"] for r in manifest_rows(out)] == ["Harriss_Hawk", "A300B4", "eastern_hog-nosed_snake"]


def test_url_list_errors_are_one_line(tmp_path):
    bad = tmp_path / "urls.csv"
    bad.write_text("link,concept\nhttp://x/1.jpg,A300B4\n")
    with pytest.raises(UserInputError, match="missing column"):
        collect(CONCEPTS, [f"urls:{bad}"], tmp_path / "out")
    with pytest.raises(UserInputError, match="no such URL list"):
        collect(CONCEPTS, [f"urls:{tmp_path / 'nope.csv'}"], tmp_path / "out")
    with pytest.raises(UserInputError, match="use folder:PATH"):
        collect(CONCEPTS, ["ftp:somewhere"], tmp_path / "out")


def test_collect_resumes_after_kill_9_without_refetching_finished_blocks(tmp_path, web):
    base, hits = web
    url_file = tmp_path / "urls.jsonl"
    records = [{"url": f"{base}/img/{10 + i}.jpg", "concept_id": "A300B4"} for i in range(2)]
    records += [{"url": f"{base}/slow.jpg?kill", "concept_id": "A300B4"}]
    url_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    concepts_file = tmp_path / "concepts.json"
    CONCEPTS.write(concepts_file)
    out = tmp_path / "candidates"
    command = [sys.executable, "-m", "letitwag", "collect", "--concepts", str(concepts_file), "--source",
               f"urls:{url_file}", "--out", str(out), "--urls-per-unit", "2", "--timeout", "20", "--retries", "0"]
    _Handler.slow_seconds = 30.0
    try:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 200
        while hits["/slow.jpg?kill"] == 0:  # the first block is finished once the second one is being fetched
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        _Handler.slow_seconds = 3.0
    assert not (out / "candidates.parquet").exists()
    fetched = hits["/img/10.jpg"]
    result = subprocess.run(command[:-4] + ["--timeout", "1", "--retries", "0"], capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr
    assert "1 of 2 units already done" in result.stderr and hits["/img/10.jpg"] == fetched
    assert sorted(r["url"] for r in manifest_rows(out)) == [f"{base}/img/10.jpg", f"{base}/img/11.jpg"]
    assert [r["status"] for r in rejections(out)] == ["failed_to_download"]


# --- kNN backends ----------------------------------------------------------------------------

class _StubEncoder:
    """Maps every text to the same unit vector: the client, not the model, is under test here."""

    def __init__(self, vector: np.ndarray) -> None:
        self.vector = vector

    def encode_texts(self, texts):
        import torch

        return torch.tensor(np.tile(self.vector, (len(texts), 1)))


@contextlib.contextmanager
def knn_backend(index_dir: Path, vector: np.ndarray):
    """Our real ASGI backend (uvicorn in a thread) over ``index_dir`` with a stub text encoder."""
    import uvicorn

    from letitwag.builders.knn.server import create_app
    from letitwag.builders.knn.service import KnnService
    from letitwag.builders.knn.store import open_index

    index = open_index(index_dir, "local")
    service = KnnService({"local": index}, {index.config["model"]: _StubEncoder(vector)})
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=free_loopback_port(), log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextlib.contextmanager
def garbage_backend(answer: bytes):
    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self._reply(b'["local"]')

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._reply(answer)

        def _reply(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_knn_source_takes_local_paths_downloads_urls_and_records_the_rest(tmp_path, web):
    from letitwag.builders.knn.store import write_index

    base, _ = web
    local = tmp_path / "local.jpg"
    local.write_bytes(jpeg_bytes(21))
    vectors = np.eye(4, 8, dtype=np.float32)
    vectors[1] = 0.97 * vectors[0] - 0.243 * np.eye(8, dtype=np.float32)[4]  # near-twin of row 0, ranked after it
    vectors[1] /= np.linalg.norm(vectors[1])
    metadata = pa.table({"image_path": [str(local), str(local), None, None],
                         "url": [None, None, f"{base}/img/22.jpg", None],
                         "caption": ["local", "twin", "remote", "nothing"]})
    write_index(tmp_path / "index", vectors, metadata, {"model": "stub", "synthetic": True})
    query = np.ones(8, dtype=np.float32) / np.sqrt(8)
    with knn_backend(tmp_path / "index", query) as url:
        options = CollectOptions(knn_num_images=10, knn_safety=True, timeout=5)
        out = collect(ConceptList([CONCEPTS[0]], "one"), [f"knn:{url}/knn-service"], tmp_path / "candidates", options)
    rows = manifest_rows(out)
    key = make_source(f"knn:{url}/knn-service", CollectOptions()).key
    assert {r["caption"]: r["candidate_id"] for r in rows} == {"local": f"{key}/Harriss_Hawk/0",
                                                                "remote": f"{key}/Harriss_Hawk/2"}
    by_caption = {r["caption"]: r for r in rows}
    assert by_caption["local"]["image"]["path"] == str(local)
    assert by_caption["remote"]["sha256"] == hashlib.sha256(jpeg_bytes(22)).hexdigest()
    assert by_caption["local"]["similarity"] == pytest.approx(float(query @ vectors[0]), abs=1e-5)
    assert [(r["status"], r["item"]) for r in rejections(out)] == [("no_image", f"{key}/Harriss_Hawk/3")]
    source = json.loads((out / "candidates.provenance.json").read_text())["sources"][0]
    assert source["indices"] == ["local"] and source["backend_did_not_apply"] == ["use_safety_model"]


@pytest.mark.parametrize(
    "answer, fragment",
    [(b"<html>oops</html>", "non-JSON"), (b'{"results": []}', "instead of a result list"),
     (b'[{"similarity": 0.5}]', "lacks an integer id")],
)
def test_knn_backend_garbage_is_a_one_line_error(tmp_path, answer, fragment):
    with garbage_backend(answer) as url:
        with pytest.raises(KnnBackendError, match=fragment) as caught:
            collect(CONCEPTS, [f"knn:{url}"], tmp_path / "out", CollectOptions(retries=0))
    assert "\n" not in str(caught.value)


def test_knn_backend_down_keeps_finished_work_of_other_sources(tmp_path):
    root = tmp_path / "photos" / "A300B4"
    root.mkdir(parents=True)
    (root / "1.jpg").write_bytes(jpeg_bytes(1))
    dead = f"http://127.0.0.1:{free_loopback_port()}"
    out = tmp_path / "out"
    with pytest.raises(KnnBackendError, match="not reachable .* finished concepts are kept"):
        collect(CONCEPTS, [f"folder:{tmp_path / 'photos'}", f"knn:{dead}"], out, CollectOptions(retries=1))
    finished = [p for p in (out / "sources").glob("folder-*/units/*.parquet") if ".rejections" not in p.name]
    assert len(finished) == 1
    collect(CONCEPTS, [f"folder:{tmp_path / 'photos'}"], out)
    assert [r["concept_id"] for r in manifest_rows(out)] == ["A300B4"]


def test_knn_results_with_inline_image_bytes_are_stored(tmp_path):
    import base64

    data = jpeg_bytes(31)
    answer = json.dumps([{"id": 7, "similarity": 0.5, "image": base64.b64encode(data).decode()},
                         {"id": 8, "similarity": 0.4, "image": "%%%"}]).encode()
    with garbage_backend(answer) as url:
        out = collect(ConceptList([CONCEPTS[1]], "one"), [f"knn:{url}"], tmp_path / "out")
    [row] = manifest_rows(out)
    key = make_source(f"knn:{url}", CollectOptions()).key
    assert row["candidate_id"] == f"{key}/A300B4/7" and (out / row["image"]["path"]).read_bytes() == data
    assert [(r["status"], r["item"]) for r in rejections(out)] == [("bad_inline_image", f"{key}/A300B4/8")]
