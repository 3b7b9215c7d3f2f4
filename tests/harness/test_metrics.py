"""Metrics against values computed by hand."""

import numpy as np
import pytest

from letitwag.errors import UserInputError
from letitwag.harness.metrics import classification_metrics

NAMES = ["A_a", "B", "C", "D", "E", "F"]
LABELS = np.array([0, 0, 1, 2, 2, 2])
TOPK = np.array(
    [
        [0, 1, 2, 3, 4],  # top1 right
        [1, 2, 3, 4, 5],  # wrong, not in top5
        [1, 0, 2, 3, 4],  # right
        [2, 0, 1, 3, 4],  # right
        [0, 2, 1, 3, 4],  # wrong, in top5
        [0, 1, 3, 4, 5],  # wrong, not in top5
    ]
)
COUNTS = {"corpus_x": {"A a": 5, "B": 50, "C": 0}, "corpus_y": {"A_a": 2000, "C": 10}}


def test_hand_computed_values():
    metrics = classification_metrics(LABELS, TOPK, NAMES, bootstrap_samples=200, frequency_counts=COUNTS)
    assert metrics["top1"] == pytest.approx(3 / 6)
    assert metrics["top5"] == pytest.approx(4 / 6)
    # per class: A 1/2, B 1/1, C 1/3; classes without samples do not count (balanced accuracy)
    assert metrics["mean_per_class_recall"] == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    assert metrics["per_class_accuracy"] == pytest.approx({"A_a": 0.5, "B": 1.0, "C": 1 / 3})
    assert metrics["per_class_support"] == {"A_a": 2, "B": 1, "C": 3}
    x_bins = metrics["by_frequency_bin"]["corpus_x"]
    assert [(b["bin"], b["num_concepts"], b["num_samples"]) for b in x_bins] == [(0, 2, 5), (1, 1, 1)]
    assert x_bins[0]["accuracy"] == pytest.approx((0.5 + 1 / 3) / 2)  # "A a" joins "A_a"; count 0 -> bin 0
    assert x_bins[1]["accuracy"] == pytest.approx(1.0)
    y_bins = metrics["by_frequency_bin"]["corpus_y"]
    assert [(b["bin"], b["accuracy"]) for b in y_bins] == [(1, pytest.approx(1 / 3)), (3, 0.5)]
    assert metrics["frequency_unmatched"] == {"corpus_x": [], "corpus_y": ["B"]}
    for name in ("top1", "top5", "mean_per_class_recall"):
        low, high = metrics["ci95"][name]
        assert 0 <= low <= metrics[name] <= high <= 1


def test_matches_sklearn_balanced_accuracy_on_random_predictions():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 30, 500)
    scores = rng.random((500, 30)) + 0.3 * np.eye(30)[labels]
    topk = np.argsort(-scores, axis=1)[:, :5]
    metrics = classification_metrics(labels, topk, [f"c{i}" for i in range(30)], bootstrap_samples=0, frequency_counts={})
    per_class = [np.mean(topk[labels == c, 0] == c) for c in np.unique(labels)]
    assert metrics["mean_per_class_recall"] == pytest.approx(np.mean(per_class))
    assert metrics["top5"] == pytest.approx(np.mean([labels[i] in topk[i] for i in range(500)]))
    assert "ci95" not in metrics


def test_bootstrap_is_deterministic_per_seed():
    first = classification_metrics(LABELS, TOPK, NAMES, bootstrap_samples=100, seed=7, frequency_counts={})
    again = classification_metrics(LABELS, TOPK, NAMES, bootstrap_samples=100, seed=7, frequency_counts={})
    other = classification_metrics(LABELS, TOPK, NAMES, bootstrap_samples=100, seed=8, frequency_counts={})
    assert first == again
    assert first["ci95"] != other["ci95"]


def test_top5_is_null_with_fewer_than_five_classes_like_clip_benchmark():
    metrics = classification_metrics(
        np.array([0, 1, 2]), np.array([[1, 2, 0], [1, 0, 2], [0, 1, 2]]), ["a", "b", "c"],
        bootstrap_samples=20, frequency_counts={},
    )
    assert metrics["top5"] is None and metrics["ci95"]["top5"] is None
    assert metrics["top1"] == pytest.approx(1 / 3) and metrics["ci95"]["top1"] is not None


def test_bundled_paper_counts_are_the_default():
    metrics = classification_metrics(np.array([0]), np.array([[0, 1]]), ["Harriss_Hawk", "A300B4"], bootstrap_samples=0)
    assert "laion400m" in metrics["by_frequency_bin"]
    assert metrics["frequency_unmatched"]["laion400m"] == []


@pytest.mark.parametrize(
    "labels, topk, message",
    [
        (np.array([0, 1]), np.array([[0, 1]]), "shape"),
        (np.array([0, 9]), np.array([[0, 1], [1, 0]]), "label values"),
        (np.array([], dtype=int), np.zeros((0, 2), dtype=int), "no samples"),
    ],
)
def test_bad_predictions_are_user_errors(labels, topk, message):
    with pytest.raises(UserInputError, match=message):
        classification_metrics(labels, topk, ["a", "b"], bootstrap_samples=0, frequency_counts={})
