import numpy as np
import pytest

from vision.metrics import classification_report, expected_calibration_error, fit_temperature, softmax


def test_report_on_a_hand_computed_example() -> None:
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[pred] * 0.7 + 0.1  # argmax = pred, confidence 0.8
    r = classification_report(y, probs, ("a", "b", "c"))
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # class a: P = 2/2, R = 2/3; b: P = 1/2, R = 1/2; c: P = 1/2, R = 1
    assert r["per_class"]["a"]["precision"] == pytest.approx(1.0)
    assert r["per_class"]["a"]["recall"] == pytest.approx(2 / 3)
    assert r["per_class"]["a"]["f1"] == pytest.approx(0.8)
    assert r["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # one bin at confidence 0.8 with accuracy 4/6
    assert r["ece"] == pytest.approx(abs(0.8 - 4 / 6))


def test_ece_two_bins_by_hand() -> None:
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.45, 0.55]])
    y = np.array([0, 1, 0, 0])
    # bin of 0.95: 2 items, acc 0.5 -> |0.5-0.95| ; bin of 0.55: 2 items, acc 0.5 -> |0.5-0.55|
    assert expected_calibration_error(probs, y, n_bins=10) == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)


def test_temperature_scaling_recovers_the_true_temperature() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (20000, 5))
    y = np.array([rng.choice(5, p=p) for p in softmax(true_logits)])
    t = fit_temperature(true_logits * 3.0, y)  # an over-confident model: logits x3
    assert t == pytest.approx(3.0, rel=0.05)
