"""T2I metric definitions on hand-made predictions (no models)."""

import math

import numpy as np
import pytest

from letitwag.errors import UserInputError
from letitwag.harness.t2i import t2i_metrics
from letitwag.harness.t2i.generation import image_seed
from letitwag.harness.t2i.scoring import clip_scores, retrieval_ranks

NAMES = ["a", "b", "c"]
NO_BINS = {}


def test_clip_score_is_heim_definition():
    images = np.array([[1.0, 0.0], [0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    prompts = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    assert clip_scores(images, prompts) == pytest.approx([100.0, 60.0, 0.0])  # negative cosine clamps to 0


def test_expected_and_max_per_prompt_then_mean_over_prompts():
    # concept 0: prompt 0 -> [80, 40], prompt 1 -> [10, blacked out]; concept 1: prompt 0 -> [blacked out, blacked out]
    concept = np.array([0, 0, 0, 0, 1, 1])
    prompt = np.array([[0, 0], [0, 0], [0, 1], [0, 1], [1, 0], [1, 0]])
    clip = np.array([80.0, 40.0, 10.0, 99.0, 50.0, 50.0])
    black = np.array([False, False, False, True, True, True])
    topk = np.array([[0, 1, 2], [1, 0, 2], [0, 2, 1], [2, 0, 1], [1, 0, 2], [0, 1, 2]])
    m = t2i_metrics(concept, topk, clip, prompt, NAMES, blacked_out=black, bootstrap_samples=0, frequency_counts=NO_BINS)
    # per prompt (expected, max): (60, 80), (10, 10), (0, 0) -- HEIM scores 0 when every image is blacked out
    assert m["expected_clip_score"] == pytest.approx((60 + 10 + 0) / 3)
    assert m["max_clip_score"] == pytest.approx((80 + 10 + 0) / 3)
    assert m["per_class_clip_score"] == pytest.approx({"a": 35.0, "b": 0.0})
    assert m["per_class_max_clip_score"] == pytest.approx({"a": 45.0, "b": 0.0})
    assert (m["num_images"], m["num_prompts"], m["blacked_out_images"]) == (6, 3, 3)
    # judge accuracy counts every image, blacked out or not
    assert m["judge_top1"] == pytest.approx(3 / 6)
    assert m["per_class_accuracy"] == pytest.approx({"a": 2 / 4, "b": 1 / 2})
    assert m["judge_mean_per_class_recall"] == pytest.approx(0.5)
    assert m["judge_top5"] is None and "ci95" not in m and "retrieval_cmc@1" not in m


def test_prompt_ids_may_be_strings_and_top5_with_five_concepts():
    names = list("abcde")
    concept = np.array([0, 1, 4])
    topk = np.array([[1, 2, 3, 4, 0], [1, 0, 2, 3, 4], [0, 1, 2, 3, 4]])
    m = t2i_metrics(concept, topk, np.array([5.0, 7.0, 9.0]), np.array(["p", "q", "r"]), names,
                    bootstrap_samples=10, frequency_counts=NO_BINS)
    assert (m["judge_top1"], m["judge_top5"]) == (pytest.approx(1 / 3), pytest.approx(1.0))
    assert m["expected_clip_score"] == pytest.approx(7.0) and set(m["ci95"]) == {"judge_top1", "judge_top5", "judge_mean_per_class_recall"}


def test_retrieval_ranks_and_cmc():
    gallery = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    labels = np.array([0, 1, 1])
    generated = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    concept = np.array([1, 0, 1, 2])  # concept 2 has no real image
    ranks = retrieval_ranks(generated, concept, gallery, labels)
    assert ranks.tolist() == [2, 1, 1, 0]
    topk = np.zeros((4, 3), dtype=np.int64)
    m = t2i_metrics(concept, topk, np.zeros(4), concept, NAMES, retrieval_rank=ranks, bootstrap_samples=0,
                    frequency_counts=NO_BINS)
    assert m["retrieval_cmc@1"] == pytest.approx(2 / 3) and m["retrieval_cmc@2"] == m["retrieval_cmc@5"] == 1.0
    assert m["retrieval_excluded"] == 1 and m["per_class_retrieval_cmc@1"] == pytest.approx({"a": 1.0, "b": 0.5})


def test_bad_predictions_are_one_line_errors():
    topk = np.zeros((2, 3), dtype=np.int64)
    with pytest.raises(UserInputError, match="clip_score must be finite"):
        t2i_metrics([0, 1], topk, [math.nan, 1.0], [0, 1], NAMES, bootstrap_samples=0, frequency_counts=NO_BINS)
    with pytest.raises(UserInputError, match="different concepts"):
        t2i_metrics([0, 1], topk, [1.0, 1.0], [7, 7], NAMES, bootstrap_samples=0, frequency_counts=NO_BINS)
    with pytest.raises(UserInputError, match="differ in length"):
        t2i_metrics([0, 1], topk, [1.0], [0, 1], NAMES, bootstrap_samples=0, frequency_counts=NO_BINS)


def test_image_seed_depends_on_each_part_and_is_stable():
    base = image_seed(0, "red_panda", "A photo of a red panda.", 0)
    assert base == image_seed(0, "red_panda", "A photo of a red panda.", 0) and 0 <= base < 2**31
    others = {image_seed(1, "red_panda", "A photo of a red panda.", 0), image_seed(0, "blue_jay", "A photo of a red panda.", 0),
              image_seed(0, "red_panda", "red panda", 0), image_seed(0, "red_panda", "A photo of a red panda.", 1)}
    assert base not in others and len(others) == 4
