"""``--decode gpu``: JPEG bytes to the device, everything else (and failures) on the CPU path.

On this CPU machine the device path runs with torchvision's CPU decoder and exact resampling
(its CPU twin), which reproduces PIL pixel for pixel: both paths must then give the same
predictions. The dataset mixes what real web data holds: baseline JPEGs of many sizes, a PNG,
a progressive and a CMYK JPEG, a truncated JPEG and bytes that are no image. The model is the
tiny RANDOM-WEIGHT open_clip (plumbing only). The ``gpu`` twins run the same on CUDA.
"""

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from peer_clip_benchmark import coco_like_captions, write_webdataset
from letitwag.cli import main
from letitwag.harness.options import EvaluationOptions
from letitwag.harness.runner import evaluate

CLASSNAMES = ["red fox", "tabby cat", "fire truck"]


def _jpeg(rng, size, **options) -> bytes:
    picture = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buffer = io.BytesIO()
    picture.convert(options.pop("mode", "RGB")).save(buffer, options.pop("fmt", "JPEG"), **options)
    return buffer.getvalue()


def mixed_images(count: int = 14, seed: int = 0) -> list[bytes]:
    """Baseline JPEGs of varied sizes, then one of each image the device does not decode."""
    rng = np.random.default_rng(seed)
    images = [_jpeg(rng, (int(rng.integers(20, 70)), int(rng.integers(20, 70))), quality=90) for _ in range(count)]
    truncated = _jpeg(rng, (64, 48), quality=95)
    return images + [_jpeg(rng, (40, 30), fmt="PNG"), _jpeg(rng, (50, 41), progressive=True),
                     _jpeg(rng, (33, 45), mode="CMYK"), truncated[: len(truncated) // 3], b"\xff\xd8 not an image"]


@pytest.fixture(scope="module")
def mixed_wds(tmp_path_factory):
    images = mixed_images()
    samples = [{("png" if data.startswith(b"\x89PNG") else "jpg"): data, "cls": str(i % 3).encode()}
               for i, data in enumerate(images)]
    return write_webdataset(tmp_path_factory.mktemp("mixed") / "wds_mixed", samples, shards=2,
                            classnames=CLASSNAMES, templates=["a photo of a {c}."])


def _evaluate(model, dataset, out, **options):
    settings = dict(model=model, dataset=str(dataset), out=out, workers=0, batch_size=4, bootstrap_samples=0,
                    device="cpu")
    settings.update(options)
    return evaluate(EvaluationOptions(**settings))


def _predictions(results) -> dict:
    return pq.read_table(f"{results['out_dir']}/predictions.parquet").to_pydict()


EXPECTED_COUNTS = {"device": 14, "device_failed": 1, "corrupt": 2, "cpu_not_jpeg": 1, "cpu_non_baseline_jpeg": 1,
                   "cpu_cmyk_or_rgb_jpeg": 1}


@pytest.mark.parametrize("workers", [0, 2])
def test_device_path_twin_gives_the_cpu_paths_predictions(tiny_open_clip, mixed_wds, tmp_path, workers):
    cpu = _evaluate(tiny_open_clip, mixed_wds, tmp_path / "cpu", decode="cpu", no_cache=True, workers=workers)
    twin = _evaluate(tiny_open_clip, mixed_wds, tmp_path / "gpu", decode="gpu", no_cache=True, workers=workers)
    assert _predictions(twin) == _predictions(cpu)
    assert twin["metrics"] == cpu["metrics"]
    assert twin["skipped_samples"] == cpu["skipped_samples"] == {"corrupt_image": 2, "missing_label": 0}
    assert cpu["decode"] == {"mode": "cpu", "workers": workers, "images": {}}
    assert twin["decode"] == {"mode": "gpu", "workers": workers, "images": EXPECTED_COUNTS}
    assert twin["config"]["decode"] == "gpu"
    assert twin["profile"]["seconds"]["device_decode"] > 0


def test_decode_path_is_part_of_the_feature_cache_key(tiny_open_clip, mixed_wds, tmp_path):
    cache = tmp_path / "cache"
    first = _evaluate(tiny_open_clip, mixed_wds, tmp_path / "a", decode="cpu", cache_dir=cache)
    device = _evaluate(tiny_open_clip, mixed_wds, tmp_path / "b", decode="gpu", cache_dir=cache)
    again = _evaluate(tiny_open_clip, mixed_wds, tmp_path / "c", decode="gpu", cache_dir=cache)
    assert first["cache"]["image_features"]["chunks_computed"] == 1
    assert device["cache"]["image_features"]["chunks_computed"] == 1  # not the CPU path's chunks
    assert again["cache"]["image_features"] == {**device["cache"]["image_features"], "chunks_reused": 1,
                                                "chunks_computed": 0}
    assert _predictions(again) == _predictions(device)


def test_unreproducible_preprocessing_falls_back_to_the_cpu_path(tiny_open_clip, mixed_wds, tmp_path, monkeypatch):
    from letitwag.models.open_clip_adapter import OpenClipEncoder

    original = OpenClipEncoder.__init__

    def with_custom_preprocess(self, *args, **kwargs):
        original(self, *args, **kwargs)
        transform = self.preprocess
        self.preprocess = lambda image: transform(image)  # a function: nothing to read a recipe from

    monkeypatch.setattr(OpenClipEncoder, "__init__", with_custom_preprocess)
    results = _evaluate(tiny_open_clip, mixed_wds, tmp_path / "run", decode="gpu", no_cache=True)
    assert results["decode"]["mode"] == "cpu"
    assert "not reproduced" in results["decode"]["cpu_reason"]
    assert results["dataset"]["num_evaluated"] == 17


def test_retrieval_on_the_device_path_twin(tiny_open_clip, tmp_path):
    import random

    images = mixed_images(count=8, seed=3)
    rng = random.Random(0)
    samples = [{("png" if data.startswith(b"\x89PNG") else "jpg"): data,
                "txt": "\n".join(coco_like_captions(rng, 2)).encode()} for data in images]
    root = write_webdataset(tmp_path / "wds_captions", samples, dataset_type="retrieval")
    runs = {mode: _evaluate(tiny_open_clip, root, tmp_path / mode, task="retrieval", decode=mode, no_cache=True)
            for mode in ("cpu", "gpu")}
    assert runs["gpu"]["metrics"] == runs["cpu"]["metrics"]
    assert _predictions(runs["gpu"]) == _predictions(runs["cpu"])
    assert runs["gpu"]["decode"]["images"]["device"] == 8


def test_cli_decode_option(tiny_open_clip, mixed_wds, tmp_path, capsys):
    import json

    code = main(["evaluate", "--model", tiny_open_clip, "--dataset", str(mixed_wds), "--out", str(tmp_path / "cli"),
                 "--decode", "gpu", "--device", "cpu", "--no-cache", "--workers", "0", "--bootstrap-samples", "0"])
    assert code == 0
    written = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert written["decode"]["mode"] == "gpu" and written["config"]["decode"] == "gpu"
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", tiny_open_clip, "--decode", "nvjpeg"])
    assert "invalid choice: 'nvjpeg'" in capsys.readouterr().err


@pytest.mark.gpu
def test_cuda_device_path_agrees_with_the_cpu_path(tiny_open_clip, mixed_wds, tmp_path):
    cpu = _evaluate(tiny_open_clip, mixed_wds, tmp_path / "cpu", decode="cpu", device="cuda", no_cache=True)
    auto = _evaluate(tiny_open_clip, mixed_wds, tmp_path / "auto", device="cuda", no_cache=True, workers=2)
    assert auto["decode"]["mode"] == "gpu" and auto["decode"]["images"]["device"] == 14
    assert auto["skipped_samples"] == cpu["skipped_samples"]
    ours, theirs = _predictions(auto), _predictions(cpu)
    assert ours["sample_index"] == theirs["sample_index"]
    agree = np.mean([a[0] == b[0] for a, b in zip(ours["topk_ids"], theirs["topk_ids"])])
    assert agree >= 0.8  # nvJPEG's pixels differ slightly; a random tiny model's top-1 is fragile
