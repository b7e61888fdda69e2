"""Calibrated confidence and the `uncertain` flag: the temperature fit and the ECE on
synthetic logits, the flag's thresholds and rule (NumPy only), and an export made
before calibration still scoring (slow: it trains the small scoring model)."""

import json

import numpy as np
import pytest
from PIL import Image

from fmnist.core import calibration
from fmnist.core.errors import ScoreError
from fmnist.core.export import ExportMetadata
from fmnist.scoring import uncertain

from conftest import cli, read_rows


def sampled(n: int, temperature: float, seed: int = 0):
    """Logits and labels drawn from softmax(logits / temperature): a model whose
    probabilities are calibrated after dividing by `temperature`."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 10))
    p = np.exp(calibration.log_softmax(logits / temperature))
    y = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits, y


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_the_fit_recovers_the_temperature_the_labels_were_drawn_with(true_t):
    logits, y = sampled(20000, true_t)
    fitted = calibration.fit_temperature(np.exp(calibration.log_softmax(logits)), y)
    assert fitted == pytest.approx(true_t, rel=0.05)


def test_the_fit_minimises_the_nll():
    logits, y = sampled(5000, 1.7, seed=1)
    logp = calibration.log_softmax(logits)
    t = calibration.fit_temperature(np.exp(logp), y)
    best = calibration.nll(logp, y, t)
    for other in (t * 0.9, t * 1.1, 1.0):
        assert calibration.nll(logp, y, other) > best


def test_scaling_changes_no_prediction_and_lowers_the_ece_of_an_overconfident_model():
    logits, y = sampled(20000, 2.0, seed=2)  # the raw softmax is overconfident
    probs = np.exp(calibration.log_softmax(logits))
    t = calibration.fit_temperature(probs, y)
    after = calibration.scaled(probs, t)
    assert (after.argmax(axis=1) == probs.argmax(axis=1)).all()
    assert calibration.ece(probs, y) > 0.1
    assert calibration.ece(after, y) < 0.02


def test_ece_by_hand():
    # Two bins used: 0.95 (both right: gap 0.05) and 0.55 (one of two right: gap 0.05)
    # -> 0.05. Then an item at exactly 1/15 joins bin 1, not bin 2.
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    assert calibration.ece(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.05)
    assert calibration.ece(probs, np.array([1, 1, 1, 0])) == pytest.approx(0.5 * 0.95 + 0.5 * 0.05)
    edge = np.array([[1 / 15] + [(1 - 1 / 15) / 14] * 14])
    assert calibration.ece(edge, np.array([0])) == pytest.approx(1 - 1 / 15)


def test_thresholds_flag_their_share_of_validation():
    rng = np.random.default_rng(3)
    n = 20000
    confidence = rng.random(n)
    signals = {name: rng.random(n) for name in calibration.SIGNALS}
    limits = calibration.thresholds(confidence, signals)
    assert set(limits) == {
        "min_confidence",
        "max_reconstruction_error",
        "max_feature_distance",
        "min_contrast",
    }
    assert (confidence < limits["min_confidence"]).mean() == pytest.approx(
        calibration.CONFIDENCE_SHARE, abs=0.002
    )
    for name, side in calibration.SIGNALS.items():
        past = (
            signals[name] > limits[f"max_{name}"]
            if side == "max"
            else signals[name] < limits[f"min_{name}"]
        )
        assert past.mean() == pytest.approx(calibration.SIGNAL_SHARES[name], abs=0.002)
    flagged = calibration.flags(confidence, signals, limits)
    assert (
        flagged.mean()
        <= calibration.CONFIDENCE_SHARE + sum(calibration.SIGNAL_SHARES.values()) + 0.002
    )


def test_the_numpy_signals_see_a_blank_and_noise():
    rng = np.random.default_rng(4)
    items = rng.integers(0, 256, (500, 28, 28)).astype(np.uint8)
    items[:, :, :6] = 0  # some structure to find
    mean, axes = calibration.pca(items, components=20)
    assert np.allclose(axes @ axes.T, np.eye(20), atol=1e-4)
    err = calibration.reconstruction_error(items[:3], mean, axes)
    assert (err > 0).all()
    blank = np.zeros((1, 28, 28), np.uint8)
    assert calibration.contrast(blank)[0] == 0 < calibration.contrast(items[:1])[0]
    means, precision = calibration.class_gaussian(rng.normal(0, 1, (1000, 4)), np.arange(1000) % 10)
    near, far = calibration.feature_distance(np.stack([means[3], means[3] + 50]), means, precision)
    assert near == pytest.approx(0, abs=1e-6) and far > 100


def test_the_rule_reads_the_export_thresholds_and_min_confidence_replaces_one():
    meta = ExportMetadata(
        uncertain={
            "min_confidence": 0.6,
            "max_reconstruction_error": 10.0,
            "max_feature_distance": 500.0,
            "min_contrast": 0.1,
            "validation_flagged": 0.09,
        }
    )
    signals = ("reconstruction_error", "feature_distance", "contrast")
    r = uncertain.rule(meta, signals)
    assert r.note is None and r.min_confidence == 0.6
    probs = np.array([[0.9] + [0.1 / 9] * 9, [0.5] + [0.5 / 9] * 9] * 2)
    out = {
        "reconstruction_error": np.array([1.0, 1.0, 11.0, 1.0]),
        "feature_distance": np.array([1.0, 1.0, 1.0, 1.0]),
        "contrast": np.array([0.3, 0.3, 0.3, 0.3]),
    }
    assert r.flags(probs, out).tolist() == [False, True, True, True]
    lenient = uncertain.rule(meta, signals, min_confidence=0.4)
    assert lenient.flags(probs, out).tolist() == [False, False, True, False]
    with pytest.raises(ScoreError, match="--min-confidence must be between 0 and 1"):
        uncertain.rule(meta, signals, min_confidence=1.5)


def test_an_export_without_thresholds_falls_back_to_the_default_and_says_so():
    r = uncertain.rule(ExportMetadata(class_names=[f"c{i}" for i in range(10)]), ())
    assert r.limits == {"min_confidence": uncertain.DEFAULT_MIN_CONFIDENCE}
    assert "no calibration" in r.note and "0.50" in r.note
    # Thresholds for signals the SavedModel does not return are not applied.
    r = uncertain.rule(
        ExportMetadata(uncertain={"min_confidence": 0.7, "max_feature_distance": 1.0}), ()
    )
    assert r.limits == {"min_confidence": 0.7} and r.note is None


@pytest.mark.slow
def test_an_export_made_before_calibration_still_scores(
    scoring_model, test_set, tmp_path, monkeypatch, capsys
):
    meta = json.loads((scoring_model / "1" / "fmnist.json").read_text())
    assert "uncertain" not in meta and "calibration" not in meta  # the old form
    x, _ = test_set
    d = tmp_path / "in"
    d.mkdir()
    for i in range(200):
        Image.fromarray(x[i]).save(d / f"{i:03d}.png")
    Image.new("L", (64, 64), 255).save(d / "white.png")
    out_file = tmp_path / "p.csv"
    code, out, err = cli(
        ["score", d, "--model", scoring_model, "--out", out_file], monkeypatch, capsys
    )
    assert code == 0, err
    assert err.count("no calibration") == 1
    rows = read_rows(out_file)
    assert len(rows) == 201 and all(r["uncertain"] in ("true", "false") for r in rows)
    flagged = [r["uncertain"] == "true" for r in rows]
    low = [float(r["confidence"]) < uncertain.DEFAULT_MIN_CONFIDENCE for r in rows]
    assert flagged == low
    assert f"; {sum(flagged):,} uncertain" in out
    # --min-confidence 1 flags every row.
    code, out, err = cli(
        ["score", d, "--model", scoring_model, "--out", out_file, "--min-confidence", "1"],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert all(r["uncertain"] == "true" for r in read_rows(out_file))
    assert "; 201 uncertain" in out
