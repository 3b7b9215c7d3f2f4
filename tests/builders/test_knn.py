"""`letitwag knn build/serve`: the clip-retrieval protocol over a tiny RANDOM-WEIGHT model.

The model is a plumbing model (random weights): similarities mean nothing, but identical
images must still find each other, and every protocol rule and refusal is checked for real
over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from letitwag.builders.knn.background import free_loopback_port, served_index
from letitwag.builders.knn.protocol import UNSUPPORTED_HEADER, KnnRequest, parse_request
from letitwag.builders.knn.service import near_duplicate_positions
from letitwag.builders.knn.store import open_index

pytestmark = pytest.mark.timeout(300)


def write_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Distinct small JPEGs (random noise) in two sub-folders."""
    rng = np.random.default_rng(seed)
    paths = []
    for number in range(count):
        path = folder / ("a" if number % 2 else "b") / f"img{number:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype("uint8")).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from letitwag.models.tiny import build_tiny_open_clip

    return build_tiny_open_clip(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def built_index(tmp_path_factory, tiny_model):
    """An index over 12 images, one twin (byte copy), one broken file, sidecar metadata."""
    from letitwag.builders.knn.build import build_index

    root = tmp_path_factory.mktemp("knn")
    images = root / "images"
    paths = write_images(images, 12)
    shutil.copy(paths[0], images / "b" / "twin.jpg")
    (images / "b" / "broken.jpg").write_bytes(b"this is not a jpeg")
    paths[1].with_suffix(".txt").write_text("a caption from a txt sidecar\n")
    paths[2].with_suffix(".json").write_text(json.dumps({"url": "http://example.invalid/2.jpg", "caption": "json caption",
                                                         "license": "CC-BY"}))
    out = build_index(images, tiny_model, root / "index", chunk_size=5, batch_size=4)
    return {"root": root, "images": images, "paths": paths, "index": out, "model": tiny_model}


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "letitwag", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def server(built_index):
    args = [f"local={built_index['index']}", "--max-body-bytes", "200000", "--max-results", "50"]
    with served_index(args, built_index["root"] / "serve.log") as url:
        yield url


# --- protocol ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "body, fragment",
    [
        (b'{"text": "a dog",', "malformed JSON"),
        (b'{"text": "a dog", "colour": "red"}', "unknown field 'colour'"),
        (b"{}", "exactly one of"),
        (b'{"text": "a", "embedding_input": [1.0]}', "found: text, embedding_input"),
        (b'{"text": "a", "num_images": "5"}', "num_images"),
        (b'{"text": "a", "num_images": 0}', "num_images"),
        (b'{"text": "a", "deduplicate": "yes"}', "deduplicate"),
        (b"[1, 2]", "body"),
    ],
)
def test_parse_request_refuses_bad_bodies_with_a_reason(body, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_request(body)


def test_clip_retrieval_client_body_is_accepted_and_unsupported_flags_named():
    # The exact body clip-retrieval's ClipClient sends by default for a text query.
    request = parse_request(json.dumps({
        "text": "a dog", "image": None, "image_url": None, "embedding_input": None, "deduplicate": True,
        "use_safety_model": True, "use_violence_detector": True, "indice_name": "laion5B-L-14",
        "use_mclip": False, "aesthetic_score": 9, "aesthetic_weight": 0.5, "modality": "image",
        "num_images": 40, "num_result_ids": 40,
    }).encode())
    assert request.query_kind() == "text"
    assert request.candidates() == 40
    assert request.unsupported_flags() == ["use_safety_model", "use_violence_detector", "aesthetic_score"]
    assert KnnRequest(text="x", num_images=10, num_result_ids=3).candidates() == 10


def test_near_duplicates_follow_connected_components_keeping_the_first():
    base = np.eye(4, dtype=np.float32)
    # 0 ~ 1 and 1 ~ 2 (cos >= 0.94) but 0 !~ 2 directly: one component {0, 1, 2}; 3 alone.
    angle = np.deg2rad(19)
    vectors = np.stack([base[0], np.cos(angle) * base[0] + np.sin(angle) * base[1],
                        np.cos(2 * angle) * base[0] + np.sin(2 * angle) * base[1], base[3]])
    assert float(vectors[0] @ vectors[2]) < 0.94 <= float(vectors[0] @ vectors[1])
    assert near_duplicate_positions(vectors).tolist() == [1, 2]
    assert near_duplicate_positions(vectors[[3, 2, 1, 0]]).tolist() == [2, 3]
    assert near_duplicate_positions(vectors[:1]).tolist() == []


# --- build ---------------------------------------------------------------------------------

def test_build_writes_vectors_metadata_and_records_skips(built_index):
    index = open_index(built_index["index"])
    config = index.config
    assert config["count"] == len(index) == 13  # 12 images + the twin; the broken file skipped
    assert config["skipped"] == 1 and config["model"] == built_index["model"]
    assert config["model_metadata"]["random_weights"] is True
    skipped = json.loads((built_index["index"] / "skipped.json").read_text())
    assert [Path(s["image_path"]).name for s in skipped] == ["broken.jpg"]
    rows = {Path(r["image_path"]).name: r for r in index.metadata.to_pylist()}
    assert rows["img001.jpg"]["caption"] == "a caption from a txt sidecar"
    assert rows["img002.jpg"] | {"image_path": None} == {
        "image_path": None, "url": "http://example.invalid/2.jpg", "caption": "json caption", "license": "CC-BY"}
    vectors = index.reconstruct(np.arange(len(index)))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert not (built_index["index"] / ".build").exists()


def test_build_resumes_after_kill_9_and_matches_a_clean_build(tmp_path, built_index):
    images = built_index["images"]
    out = tmp_path / "resumed"
    command = [sys.executable, "-m", "letitwag", "knn", "build", "--images", str(images),
               "--model", built_index["model"], "--out", str(out), "--chunk-size", "1", "--batch-size", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not list((out / ".build").glob("chunk-*.npz")):
        assert process.poll() is None and time.monotonic() < deadline, "build ended before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(list((out / ".build").glob("chunk-*.npz")))
    assert not (out / "index.json").exists() and 1 <= done_before < 14
    result = run_cli("knn", "build", "--images", str(images), "--model", built_index["model"], "--out", str(out),
                     "--chunk-size", "1", "--batch-size", "1")
    assert result.returncode == 0, result.stderr
    assert f"resuming: {done_before} of 14 chunks already embedded" in result.stderr
    resumed, clean = open_index(out), open_index(built_index["index"])
    assert resumed.metadata.to_pylist() == clean.metadata.to_pylist()
    assert np.allclose(resumed.reconstruct(np.arange(13)), clean.reconstruct(np.arange(13)), atol=1e-5)
    # A rerun of a finished build does nothing; another model into the same --out is refused.
    from letitwag.builders.knn.build import build_index
    from letitwag.errors import UserInputError

    before = (out / "index.json").read_bytes()
    assert build_index(images, built_index["model"], out) == out and (out / "index.json").read_bytes() == before
    with pytest.raises(UserInputError, match="another folder/model"):
        build_index(images, "open_clip:RN50", out)


def test_build_and_serve_refuse_bad_paths_with_one_line(tmp_path):
    result = run_cli("knn", "build", "--images", str(tmp_path / "nope"), "--model", "open_clip:RN50",
                     "--out", str(tmp_path / "i"))
    assert result.returncode == 2 and "no such image folder" in result.stderr
    result = run_cli("knn", "serve", str(tmp_path / "missing-index"), "--port", str(free_loopback_port()))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("letitwag knn: error:")
    assert "no such index directory" in result.stderr


# --- serve ---------------------------------------------------------------------------------

def post(url: str, body, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/knn-service", content=content, timeout=60, **kwargs)


def test_indices_list_health_and_metadata(server):
    assert httpx.get(f"{server}/indices-list").json() == ["local"]
    health = httpx.get(f"{server}/health").json()
    assert health["indices"]["local"]["count"] == 13 and health["indices"]["local"]["text_queries"] is True
    assert "use_safety_model" in health["unsupported_flags"]
    rows = httpx.post(f"{server}/metadata", json={"ids": [0, 2], "indice_name": "local"}).json()
    assert [row["id"] for row in rows] == [0, 2] and "image_path" in rows[0]["metadata"]
    assert httpx.post(f"{server}/metadata", json={"ids": [99]}).status_code == 400
    assert httpx.post(f"{server}/metadata", content=b"{nope").status_code == 400


def test_image_query_finds_itself_and_its_twin_and_dedup_drops_the_twin(server, built_index):
    image = base64.b64encode(built_index["paths"][0].read_bytes()).decode()
    results = post(server, {"image": image, "num_images": 13}).json()
    names = [Path(r["image_path"]).name for r in results]
    assert len(results) == 13 and set(names[:2]) == {"img000.jpg", "twin.jpg"}
    assert results[0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert all(a["similarity"] >= b["similarity"] for a, b in zip(results, results[1:]))
    deduplicated = post(server, {"image": image, "num_images": 13, "deduplicate": True}).json()
    dedup_names = [Path(r["image_path"]).name for r in deduplicated]
    assert dedup_names[0] == names[0] and not {"img000.jpg", "twin.jpg"} <= set(dedup_names)
    assert len(deduplicated) < 13


def test_embedding_text_and_image_url_queries(server, built_index, tmp_path):
    index = open_index(built_index["index"])
    vector = index.reconstruct(np.array([5]))[0] * 3.0  # not normalised: the server normalises
    results = post(server, {"embedding_input": vector.tolist(), "num_images": 3}).json()
    assert results[0]["id"] == 5 and results[0]["similarity"] == pytest.approx(1.0, abs=1e-4) and len(results) == 3
    texts = post(server, {"text": "a photo of a dog", "num_images": 4, "num_result_ids": 8}).json()
    assert len(texts) == 4 and {"id", "similarity", "image_path", "caption", "url"} <= set(texts[0])
    assert post(server, {"text": "a photo of a dog", "num_images": 4}).json() == texts  # cached, same answer

    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(built_index["images"]), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        found = post(server, {"image_url": f"{base}/b/img000.jpg", "num_images": 2}).json()
        assert {Path(r["image_path"]).name for r in found} == {"img000.jpg", "twin.jpg"}
        missing = post(server, {"image_url": f"{base}/b/nothing.jpg"})
        assert missing.status_code == 400 and "HTTP 404" in missing.json()["error"]
        not_image = post(server, {"image_url": f"{base}/a/img001.txt"})
        assert not_image.status_code == 400 and "could not be decoded" in not_image.json()["error"]
    finally:
        httpd.shutdown()


def test_unsupported_flags_are_reported_in_a_header(server):
    response = post(server, {"text": "a dog", "use_safety_model": True, "use_violence_detector": True,
                             "aesthetic_score": 9, "aesthetic_weight": 0.5, "num_images": 2})
    assert response.status_code == 200
    assert response.headers[UNSUPPORTED_HEADER] == "use_safety_model,use_violence_detector,aesthetic_score"
    assert UNSUPPORTED_HEADER not in post(server, {"text": "a dog", "num_images": 2}).headers


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (b'{"text": "a dog"', 400, "malformed JSON"),
        ({"text": "a dog", "extra": 1}, 400, "unknown field 'extra'"),
        ({"num_images": 3}, 400, "exactly one of"),
        ({"text": "a", "indice_name": "laion5B"}, 404, "no index named 'laion5B'"),
        ({"text": "a", "modality": "text"}, 400, "image embeddings only"),
        ({"embedding_input": [0.1, 0.2]}, 400, "needs 32"),
        ({"embedding_input": [0.0] * 32}, 400, "non-zero"),
        ({"image": "%%% not base64"}, 400, "not valid base64"),
        ({"image": base64.b64encode(b"GIF89a garbage").decode()}, 400, "could not be decoded"),
        ({"image_url": "file:///etc/passwd"}, 400, "http(s)"),
        ({"text": "a", "num_images": 51}, 400, "limit of 50"),
        (b"x" * 300_000, 413, "above the limit"),
    ],
)
def test_bad_requests_get_4xx_with_a_message_and_the_server_lives_on(server, body, status, fragment):
    response = post(server, body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
    assert post(server, {"text": "still alive", "num_images": 1}).status_code == 200


def test_concurrent_requests_are_all_answered_like_sequential_ones(server, built_index):
    index = open_index(built_index["index"])
    vectors = index.reconstruct(np.arange(len(index)))
    bodies = [{"embedding_input": vectors[i % len(index)].tolist(), "num_images": 5, "deduplicate": bool(i % 2)}
              for i in range(32)]
    expected = [post(server, body).json() for body in bodies[:13]]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda body: post(server, body), bodies))
    assert all(answer.status_code == 200 for answer in answers)
    for number, answer in enumerate(answers):
        reference = expected[number % 13] if number < 13 else post(server, bodies[number]).json()
        assert [r["id"] for r in answer.json()] == [r["id"] for r in reference]


def test_serve_embedding_only_without_a_model_two_workers_inline_images(built_index, tmp_path):
    args = [str(built_index["index"]), "--no-model", "--workers", "2", "--inline-images"]
    with served_index(args, tmp_path / "serve.log") as url:
        index = open_index(built_index["index"])
        vector = index.reconstruct(np.array([3]))[0].tolist()
        found = post(url, {"embedding_input": vector, "num_images": 1}).json()[0]
        assert found["id"] == 3 and base64.b64decode(found["image"]) == Path(found["image_path"]).read_bytes()
        refused = post(url, {"text": "a dog"})
        assert refused.status_code == 400 and "without its model" in refused.json()["error"]
        assert os.path.basename(str(built_index["index"])) in httpx.get(f"{url}/indices-list").json()


def test_collect_runs_end_to_end_against_the_served_index(server, built_index, tmp_path):
    from letitwag.builders.collect import CollectOptions, collect
    from letitwag.builders.manifest import read_candidates
    from letitwag.concepts import Concept, ConceptList
    from letitwag.io import file_sha256

    concepts = ConceptList([Concept("A300B4"), Concept("Harriss_Hawk")], "e2e")
    options = CollectOptions(knn_num_images=5, knn_deduplicate=False, knn_templates="ensemble", knn_max_templates=2)
    out = collect(concepts, [f"knn:{server}"], tmp_path / "candidates", options)
    rows = read_candidates(out).table.to_pylist()
    per_concept = {c: [r for r in rows if r["concept_id"] == c] for c in concepts.ids}
    assert all(5 <= len(found) <= 10 for found in per_concept.values())  # union of two prompts' top 5
    images = built_index["images"].resolve()
    for row in rows:
        path = Path(row["image"]["path"])
        assert path.is_relative_to(images) and row["sha256"] == file_sha256(path)
        assert row["source"] == "knn" and row["similarity"] is not None
    provenance = json.loads((out / "candidates.provenance.json").read_text())
    assert provenance["sources"][0]["indices"] == ["local"]


def test_a_serving_process_exempts_its_start_up_objects_from_collection(built_index):
    """A full collection over torch's and faiss's objects stalled every request for ~140 ms."""
    import gc

    from letitwag.builders.knn.server import ServeSettings, serving_app

    assert gc.get_freeze_count() == 0
    try:
        serving_app(ServeSettings(indices={"t": str(built_index["index"])}, load_model=False))
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
