"""The zero-shot tagger end to end with a tiny RANDOM-WEIGHT open_clip model (plumbing only).

A random model's tags mean nothing: these tests check shapes, the calibration formula, the
threshold path, outputs, caching and resume, never which concepts get tagged. The RAM++
adapter is checked for its clear error when the ``ram`` package is absent.
"""

import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from letitwag.cli import main
from letitwag.concepts import Concept, ConceptList
from letitwag.errors import UserInputError
from letitwag.frequency.images import build_tagger
from letitwag.frequency.images.prompts import load_prompts
from letitwag.postings import read_postings
from letitwag.tables import FrequencyTable

CONCEPTS = ConceptList([Concept("dog"), Concept("hot_dog"), Concept("Harriss_Hawk", name="Harris's Hawk")], "toy")


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory):
    from letitwag.models.tiny import build_tiny_open_clip

    return build_tiny_open_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        Image.fromarray(rng.integers(0, 255, (20 + index, 24, 3), dtype=np.uint8)).save(folder / f"img{index}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def test_probabilities_follow_the_documented_calibration(tiny_spec, images):
    import torch

    tagger = build_tagger("zero-shot", tiny_spec, prompts="simple", background="object")
    tagger.prepare(CONCEPTS)
    assert tagger.decode_size == 32  # the tiny model's input side, read from its preprocessing
    pictures = [Image.open(path).convert("RGB") for path in sorted(images.glob("*.png"))]
    batch = [tagger.preprocess(picture) for picture in pictures]
    probabilities = tagger.probabilities(batch)
    assert probabilities.shape == (6, 3)
    assert ((probabilities > 0) & (probabilities < 1)).all()

    encoder = tagger.encoder
    def embed(texts):
        return torch.nn.functional.normalize(encoder.encode_texts(texts).mean(dim=0), dim=0)
    concepts = torch.stack([embed([f"A photo of a {c.name}."]) for c in CONCEPTS])
    background = embed(["A photo of a object."])
    pixels = encoder.encode_images(torch.stack(batch))
    expected = torch.sigmoid(encoder.logit_scale * (pixels @ concepts.T - (pixels @ background)[:, None]))
    np.testing.assert_allclose(probabilities, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_cli_tags_a_folder_with_the_tiny_model(tiny_spec, images, tmp_path, capsys):
    concepts = tmp_path / "concepts.txt"
    concepts.write_text("dog\nhot_dog\ncat\n")
    out = tmp_path / "everything"
    args = ["frequency", "tag-images", "--images", str(images), "--concepts", str(concepts), "--model", tiny_spec,
            "--prompts", "simple", "--device", "cpu", "--batch-size", "4", "--shard-size", "4"]
    # threshold 0: every probability is > 0, so every concept is present in every decodable image
    assert main([*args, "--threshold", "0", "--out", str(out)]) == 0
    table = FrequencyTable.read(out / "image.parquet")
    assert table.counts() == {"dog": 6, "hot_dog": 6, "cat": 6}
    assert table.provenance["skipped"] == {"not_an_image": 1}
    assert table.provenance["tagger"]["model"]["random_weights"] is True
    assert read_postings(out / "image_postings.parquet").num_rows == 18

    default = tmp_path / "default"
    assert main([*args, "--out", str(default)]) == 0
    table = FrequencyTable.read(default / "image.parquet")
    postings = read_postings(default / "image_postings.parquet")
    per_concept = {c: postings["concept_id"].to_pylist().count(c) for c in ("dog", "hot_dog", "cat")}
    assert table.counts() == per_concept
    assert set(postings["sample_id"].to_pylist()) <= {f"img{i}" for i in range(6)}
    assert list((default / "shards-image" / "concept-vectors").glob("*.npy"))

    before = (default / "image_postings.parquet").read_bytes()
    assert main([*args, "--out", str(default)]) == 0
    again = FrequencyTable.read(default / "image.parquet")
    assert again.provenance["run"]["reused"] == 2 and again.provenance["run"]["computed"] == 0
    assert (default / "image_postings.parquet").read_bytes() == before
    assert "images tagged" in capsys.readouterr().out


def test_description_files_and_template_files(tmp_path, tiny_spec):
    descriptions = tmp_path / "descriptions.json"
    descriptions.write_text(json.dumps([{"dog": ["a four-legged pet that barks"]}, {"hot_dog": ["a sausage in a bun"]}]))
    tagger = build_tagger("zero-shot", tiny_spec, prompts=str(descriptions))
    tagger.prepare(CONCEPTS)
    assert tagger.metadata()["prompts"]["concepts_without_descriptions"] == ["Harriss_Hawk"]
    assert tagger.prompts.texts_for(CONCEPTS[2]) == ["A photo of a Harris's Hawk."]

    templates = tmp_path / "templates.txt"
    templates.write_text("a photo of a {c}.\nitap of a {c}.\n")
    assert load_prompts(str(templates)).texts_for(CONCEPTS[0]) == ["a photo of a dog.", "itap of a dog."]
    (tmp_path / "bad.txt").write_text("no placeholder here\n")
    with pytest.raises(UserInputError, match="placeholder"):
        load_prompts(str(tmp_path / "bad.txt"))
    with pytest.raises(UserInputError, match="unknown prompt set"):
        load_prompts("fancy")


def test_ram_plus_without_the_ram_package_is_a_clear_error(monkeypatch, tmp_path, capsys, images):
    monkeypatch.setitem(sys.modules, "ram", None)  # makes `import ram` fail even if it were installed
    with pytest.raises(UserInputError, match="needs the `ram` package"):
        build_tagger("ram-plus", str(tmp_path / "ram_plus_swin_large_14m.pth"))
    code = main(["frequency", "tag-images", "--images", str(images), "--concepts", "cifar10", "--tagger", "ram-plus",
                 "--model", "x.pth", "--out", str(tmp_path / "o")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "recognize-anything" in error and "\n" not in error


SLOW_RUN = """
import sys, time
import numpy as np
from letitwag.frequency.images import tag_images
from letitwag.concepts import Concept, ConceptList

class SlowMeanTagger:
    def prepare(self, concepts):
        pass
    def preprocess(self, image):
        return np.asarray(image, dtype=np.float64).mean(axis=(0, 1)) / 255.0
    def probabilities(self, batch):
        time.sleep(0.05)
        return np.stack(batch)
    def metadata(self):
        return {"tagger": "slow-mean"}

concepts = ConceptList([Concept("r"), Concept("g"), Concept("b")])
tag_images([sys.argv[1]], concepts, SlowMeanTagger(), sys.argv[2], threshold=0.5, shard_size=1)
"""


def test_kill_minus_nine_then_rerun_gives_the_uninterrupted_result(tmp_path):
    folder = tmp_path / "colours"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for index in range(40):
        Image.new("RGB", (4, 4), tuple(int(v) for v in rng.integers(0, 255, 3))).save(folder / f"{index:03d}.png")
    script = tmp_path / "slow_run.py"
    script.write_text(textwrap.dedent(SLOW_RUN))
    interrupted, clean = tmp_path / "interrupted", tmp_path / "clean"

    process = subprocess.Popen([sys.executable, str(script), str(folder), str(interrupted)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    markers = interrupted / "shards-image"
    while time.monotonic() < deadline and len(list(markers.glob("*.done"))) < 5:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before_kill = len(list(markers.glob("*.done")))
    assert 5 <= finished_before_kill < 40 and not (interrupted / "image.parquet").exists()

    subprocess.run([sys.executable, str(script), str(folder), str(interrupted)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([sys.executable, str(script), str(folder), str(clean)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resumed = FrequencyTable.read(interrupted / "image.parquet")
    assert resumed.provenance["run"]["reused"] >= finished_before_kill
    assert resumed.provenance["run"]["computed"] == 40 - resumed.provenance["run"]["reused"]
    assert pq.read_table(interrupted / "image.parquet").equals(pq.read_table(clean / "image.parquet"))
    assert (interrupted / "image_postings.parquet").read_bytes() == (clean / "image_postings.parquet").read_bytes()
