"""Image tagging with ``--decode gpu``: baseline JPEGs decoded in batches on the device.

On this CPU machine the device path is its CPU twin (torchvision's CPU decoder, exact PIL
resampling); images are smaller than twice the model's input side, so the CPU path's reduced
(draft) JPEG decoding does not apply either, and both paths must tag identically. The model is
the tiny RANDOM-WEIGHT open_clip (plumbing only); a threshold of 0.5 splits its probabilities.
"""

import io

import numpy as np
import pytest
from PIL import Image

from letitwag.concepts import Concept, ConceptList
from letitwag.frequency.images import build_tagger, tag_images
from letitwag.postings import read_postings

CONCEPTS = ConceptList([Concept("dog"), Concept("hot_dog"), Concept("fire_truck")], "toy")


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory):
    from letitwag.models.tiny import build_tiny_open_clip

    return build_tiny_open_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(4)
    for index in range(9):
        picture = Image.fromarray(rng.integers(0, 255, (20 + 4 * index, 50 - 3 * index, 3), dtype=np.uint8))
        picture.save(folder / f"photo{index}.jpg", quality=90)
    picture.save(folder / "progressive.jpg", progressive=True)
    picture.save(folder / "drawing.png")
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[:200])
    return folder


def _tag(spec, folder, out, decode, threshold=0.5):
    tagger = build_tagger("zero-shot", spec, prompts="simple", device="cpu", decode=decode)
    table = tag_images([str(folder)], CONCEPTS, tagger, out, threshold=threshold, batch_size=4, shard_size=6)
    postings = read_postings(out / "image_postings.parquet").to_pydict()
    return table, sorted(zip(postings["sample_id"], postings["concept_id"]))


def test_device_twin_tags_as_the_cpu_path(tiny_spec, mixed_folder, tmp_path):
    cpu_table, cpu_postings = _tag(tiny_spec, mixed_folder, tmp_path / "cpu", "cpu")
    twin_table, twin_postings = _tag(tiny_spec, mixed_folder, tmp_path / "gpu", "gpu")
    assert twin_postings == cpu_postings and len(cpu_postings) > 0
    assert twin_table.counts() == cpu_table.counts()
    assert twin_table.provenance["images_tagged"] == cpu_table.provenance["images_tagged"] == 11
    assert twin_table.provenance["skipped"] == cpu_table.provenance["skipped"] == {"corrupt_image": 1}
    assert twin_table.provenance["tagger"]["decode"] == {"mode": "gpu"}
    assert cpu_table.provenance["tagger"]["decode"] == {"mode": "cpu"}


def test_decode_mode_is_part_of_the_shards_identity(tiny_spec, mixed_folder, tmp_path):
    out = tmp_path / "tags"
    first, _ = _tag(tiny_spec, mixed_folder, out, "cpu")
    switched, _ = _tag(tiny_spec, mixed_folder, out, "gpu")
    again, _ = _tag(tiny_spec, mixed_folder, out, "gpu")
    assert first.provenance["run"]["computed"] == switched.provenance["run"]["computed"] == 2
    assert again.provenance["run"]["reused"] == 2 and again.provenance["run"]["computed"] == 0


def test_decode_batch_returns_device_inputs_and_a_mask(tiny_spec, mixed_folder):
    import torch

    tagger = build_tagger("zero-shot", tiny_spec, prompts="simple", device="cpu", decode="gpu")
    tagger.prepare(CONCEPTS)
    assert tagger.decodes_on_device
    datas = [(mixed_folder / name).read_bytes() for name in ("photo0.jpg", "truncated.jpg", "photo1.jpg")]
    pixels, ok = tagger.decode_batch(datas)
    assert ok.tolist() == [True, False, True] and pixels.shape == (2, 3, 32, 32)
    expected = torch.stack([tagger.preprocess(Image.open(io.BytesIO(datas[i])).convert("RGB")) for i in (0, 2)])
    assert (pixels - expected).abs().max() < 1e-6
    assert not build_tagger("zero-shot", tiny_spec, prompts="simple", device="cpu").decodes_on_device  # before prepare


@pytest.mark.gpu
def test_cuda_device_tagging_agrees_with_the_cpu_path(tiny_spec, mixed_folder, tmp_path):
    cpu_table, _ = _tag(tiny_spec, mixed_folder, tmp_path / "cpu", "cpu", threshold=0.0)
    tagger = build_tagger("zero-shot", tiny_spec, prompts="simple", device="cuda")  # auto
    table = tag_images([str(mixed_folder)], CONCEPTS, tagger, tmp_path / "cuda", threshold=0.0, batch_size=4)
    assert table.provenance["tagger"]["decode"]["mode"] == "gpu"
    assert table.counts() == cpu_table.counts()  # threshold 0: every decodable image carries every concept
    assert table.provenance["skipped"] == cpu_table.provenance["skipped"]
