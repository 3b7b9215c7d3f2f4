"""pHash bit-compatibility with imagededup and the vectorised Hamming search."""

import os

import matplotlib
import numpy as np
import pytest
from PIL import Image

from letitwag.builders.curate.phash import from_hex, pairs_within, phash_image, to_hex

# Reference values computed with imagededup 0.3.3.post2: PHash().encode_image(image_file=...)
# on the same files (the benchmark re-checks agreement on 20,000 images).
IMAGEDEDUP_HASHES = {
    ("smooth", 0, "PNG"): "ac4002e72e76ff99",
    ("smooth", 1, "PNG"): "fe6eb943d4a0045f",
    ("smooth", 2, "PNG"): "84fa9a386021ffde",
    ("smooth", 3, "PNG"): "ba1d700bd642adbd",
    ("jpeg640", 5, "JPEG"): "e9de3a8d8f4f40b0",
    ("palette", 6, "PNG"): "b95571cd9170ce8d",
    ("gray", 7, "PNG"): "f477b6d3be0f00a0",
}


def _image(kind, seed, fmt, tmp_path, tools):
    image = tools.smooth_image(seed, (640, 480)) if kind == "jpeg640" else tools.smooth_image(seed)
    image = image.convert("P") if kind == "palette" else image.convert("L") if kind == "gray" else image
    path = tmp_path / f"{kind}{seed}.{fmt.lower()}"
    path.write_bytes(tools.encode(image, fmt, **({"quality": 85} if fmt == "JPEG" else {})))
    return path


@pytest.mark.parametrize("key", sorted(IMAGEDEDUP_HASHES))
def test_phash_matches_imagededup_bit_for_bit(key, tmp_path, image_tools):
    with Image.open(_image(*key, tmp_path, image_tools)) as image:
        assert to_hex(phash_image(image)) == IMAGEDEDUP_HASHES[key]


def test_phash_of_a_real_photo_matches_imagededup():
    photo = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")
    with Image.open(photo) as image:
        assert to_hex(phash_image(image)) == "9d8e745883d71ea5"


def test_pairs_within_equals_brute_force():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**12, 300, dtype=np.uint64)  # few bits set: many close pairs
    first, second, distance = pairs_within(hashes, 3, block=64)
    brute = {(a, b): bin(int(hashes[a]) ^ int(hashes[b])).count("1")
             for a in range(300) for b in range(a + 1, 300)}
    expected = {pair for pair, d in brute.items() if d <= 3}
    assert set(zip(first.tolist(), second.tolist())) == expected
    assert all(brute[(a, b)] == d for a, b, d in zip(first.tolist(), second.tolist(), distance.tolist()))
    queries, references = hashes[:40], hashes[40:]
    first, second, _ = pairs_within(queries, 2, other=references, block=16)
    expected = {(a, b) for a in range(40) for b in range(260)
                if bin(int(queries[a]) ^ int(references[b])).count("1") <= 2}
    assert set(zip(first.tolist(), second.tolist())) == expected
    assert from_hex(["ffffffffffffffff"])[0] == np.uint64(2**64 - 1)


def _variant_files(tmp_path, image_tools):
    """12 images, each as a JPEG and a smaller, harder-compressed copy; and a broken file."""
    paths = []
    for seed in range(12):
        image = image_tools.smooth_image(seed, (320, 240))
        for variant, data in enumerate([image_tools.encode(image, quality=90),
                                        image_tools.encode(image.resize((250, 188)), quality=50)]):
            paths.append(tmp_path / f"{seed:02d}-{variant}.jpg")
            paths[-1].write_bytes(data)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    paths.append(tmp_path / "broken.jpg")
    return paths


def test_near_duplicate_files_fast_mode_rechecks_to_the_exact_pairs(tmp_path, image_tools):
    from letitwag.builders.curate.phash import near_duplicate_files

    paths = _variant_files(tmp_path, image_tools)
    exact = near_duplicate_files(paths, 10, workers=1)
    fast = near_duplicate_files(paths, 10, workers=1, draft_size=32)
    pairs = set(zip(exact[0].tolist(), exact[1].tolist()))
    assert {(2 * s, 2 * s + 1) for s in range(12)} <= pairs
    assert pairs == set(zip(fast[0].tolist(), fast[1].tolist()))


@pytest.mark.parametrize("margin", [0, 64])
def test_fast_mode_rehashes_only_the_pairs_near_the_threshold(tmp_path, image_tools, monkeypatch, margin):
    from letitwag.builders.curate import phash

    paths = _variant_files(tmp_path, image_tools)
    exact = phash.near_duplicate_files(paths, 10, workers=1)
    calls = []
    real_hash_files = phash.hash_files
    monkeypatch.setattr(phash, "hash_files", lambda names, **kw: calls.append((len(names), kw)) or real_hash_files(names, **kw))
    fast = phash.near_duplicate_files(paths, 10, workers=1, draft_size=32, margin=margin)
    first_pass, *rechecks = calls
    assert first_pass == (len(paths), {"workers": 1, "draft_size": 32})
    if margin == 0:  # nothing is near enough to the threshold to re-check: decided on fast hashes alone
        assert rechecks == [(0, {"workers": 1})]
    else:  # every pair of readable images is in the band: decided on exact hashes, as the exact search
        assert rechecks == [(len(paths) - 1, {"workers": 1})]
        assert [a.tolist() for a in fast] == [a.tolist() for a in exact]
