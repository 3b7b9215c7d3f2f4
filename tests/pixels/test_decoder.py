"""Routing by JPEG header, ``--decode`` resolution, and the device decoder's per-image fallback."""

import io

import numpy as np
import pytest
from PIL import Image

from letitwag.errors import UserInputError
from letitwag.pixels import jpeg
from letitwag.pixels.decoder import DeviceDecoder, device_decoder_problem, place_rows, resolve_decode
from letitwag.pixels.recipe import recipe_from_preprocess


def _encode(picture: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def picture(photo_maker):
    return Image.fromarray(photo_maker.pixels(np.random.default_rng(0), 4, (120, 90)))


def test_device_route_reads_the_frame_header(picture):
    assert jpeg.device_route(_encode(picture, quality=90)) is None
    assert jpeg.device_route(_encode(picture.convert("L"))) is None
    with_exif = picture.copy()
    exif = Image.Exif()
    exif[0x0112] = 3  # an APP1 segment before the frame header is skipped by its length
    assert jpeg.device_route(_encode(with_exif, exif=exif.tobytes())) is None
    assert jpeg.device_route(_encode(picture, progressive=True)) == "non_baseline_jpeg"
    assert jpeg.device_route(_encode(picture.convert("CMYK"))) == "cmyk_or_rgb_jpeg"
    assert jpeg.device_route(_encode(picture, "PNG")) == "not_jpeg"
    assert jpeg.device_route(b"\xff\xd8\xff\xe0\x00") == "bad_header"
    assert jpeg.device_route(b"") == "not_jpeg"


def test_huge_images_stay_on_the_cpu(picture, monkeypatch):
    monkeypatch.setattr(jpeg, "MAX_DEVICE_PIXELS", 100 * 80)
    assert jpeg.device_route(_encode(picture)) == "large_image"


def test_resolve_decode(open_clip_transform):
    assert resolve_decode("cpu", "cuda", open_clip_transform).mode == "cpu"
    assert resolve_decode("auto", "cpu", open_clip_transform).mode == "cpu"  # auto uses the device path on CUDA only
    on_cpu = resolve_decode("gpu", "cpu", open_clip_transform)  # the CPU twin of the device path
    assert on_cpu.mode == "gpu" and on_cpu.recipe.output_size == (224, 224)
    refused = resolve_decode("gpu", "cpu", lambda image: image)
    assert refused.mode == "cpu" and "not reproduced" in refused.reason
    assert refused.describe() == {"mode": "cpu", "cpu_reason": refused.reason}
    with pytest.raises(UserInputError, match="--decode"):
        resolve_decode("nvjpeg", "cpu", open_clip_transform)
    assert device_decoder_problem("cpu") is None
    assert "CUDA devices and the CPU only" in device_decoder_problem("mps")


def _decoder(transform, device="cpu"):
    from letitwag.harness.images import decode_with_preprocess

    return DeviceDecoder(recipe_from_preprocess(transform), device,
                         lambda data: decode_with_preprocess(data, transform))


def test_a_bad_jpeg_in_a_batch_falls_back_alone(picture, open_clip_transform):
    import torch

    good = [_encode(picture, quality=q) for q in (80, 90)]
    truncated = good[0][: len(good[0]) // 3]  # libjpeg-turbo rejects it, and so does PIL: corrupt
    garbage = b"\xff\xd8\xff" + b"\x00" * 64
    blobs = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in (good[0], truncated, good[1], garbage)]
    decoder = _decoder(open_clip_transform)
    pixels, ok = decoder(blobs)
    assert ok.tolist() == [True, False, True, False]
    assert pixels.shape == (2, 3, 224, 224)
    reference = torch.stack([open_clip_transform(Image.open(io.BytesIO(b)).convert("RGB")) for b in good])
    assert (pixels - reference).abs().max() < 1e-6  # the CPU twin reproduces PIL exactly
    assert decoder.counts == {"device": 2, "device_failed": 2, "corrupt": 2}


def test_an_image_only_the_cpu_decodes_is_placed_in_order(picture, open_clip_transform, monkeypatch):
    import torch

    blobs = [torch.frombuffer(bytearray(_encode(picture, quality=q)), dtype=torch.uint8) for q in (70, 80, 90)]
    decoder = _decoder(open_clip_transform)
    real_decode = decoder.decode
    monkeypatch.setattr(decoder, "decode", lambda items: [None if i == 1 else image
                                                          for i, image in enumerate(real_decode(items))])
    pixels, ok = decoder(blobs)
    assert ok.all() and decoder.counts == {"device": 2, "device_failed": 1}
    direct, _ = _decoder(open_clip_transform)(blobs)
    assert torch.equal(pixels, direct)  # the fallback row is PIL's preprocessing, in its place


def test_place_rows_merges_parts_by_row():
    import torch

    merged = place_rows([(np.array([0, 3]), torch.tensor([[0.0], [3.0]])), (np.array([2]), torch.tensor([[2.0]]))],
                        np.array([0, 2, 3]), "cpu")
    assert merged.flatten().tolist() == [0.0, 2.0, 3.0]


@pytest.mark.gpu
def test_cuda_decoder_matches_its_cpu_twin(photo_maker, open_clip_transform):
    import torch

    rng = np.random.default_rng(5)
    blobs = [torch.frombuffer(bytearray(photo_maker.encoded(rng, i, size)), dtype=torch.uint8)
             for i, size in enumerate([(500, 375), (375, 500), (640, 480), (333, 500)])]
    blobs.append(torch.frombuffer(bytearray(b"\xff\xd8\xff" + b"\x00" * 64), dtype=torch.uint8))
    on_cuda, ok_cuda = _decoder(open_clip_transform, "cuda")(blobs)
    on_cpu, ok_cpu = _decoder(open_clip_transform)(blobs)
    assert ok_cuda.tolist() == ok_cpu.tolist() == [True] * 4 + [False]
    assert on_cuda.is_cuda
    levels = ((on_cuda.cpu() - on_cpu).abs() * torch.tensor(recipe_from_preprocess(open_clip_transform).std)[
        :, None, None] * 255).round()
    # nvJPEG's IDCT and chroma upsampling are not libjpeg's: small differences, never large ones
    assert levels.mean() < 1.0 and levels.max() <= 16
    assert resolve_decode("auto", "cuda", open_clip_transform).mode == "gpu"
