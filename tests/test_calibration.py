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
    confidence, score = rng.random(n), rng.exponential(5, n)
    limits = calibration.thresholds(confidence, score)
    assert set(limits) == {"min_confidence", "max_outlier_score"}
    low = confidence < limits["min_confidence"]
    high = score > limits["max_outlier_score"]
    assert low.mean() == pytest.approx(calibration.CONFIDENCE_SHARE, abs=0.002)
    assert high.mean() == pytest.approx(calibration.OUTLIER_SHARE, abs=0.002)
    signals = {"outlier_score": score, "contrast": np.zeros(n)}  # no threshold: ignored
    assert (calibration.flags(confidence, signals, limits) == (low | high)).all()


def test_tail_p_values_and_fishers_combination():
    table = np.arange(1.0, 100.0, dtype=np.float32)  # 1 .. 99, sorted
    # As far out as the furthest validation value or beyond: (1 + 1) / 100 or 1 / 100.
    assert calibration.tail_p(np.array([99.0, 1000.0]), table, "max").tolist() == [0.02, 0.01]
    assert calibration.tail_p(np.array([1.0, -5.0]), table, "min").tolist() == [0.02, 0.01]
    # The median is at p one half on either side.
    assert calibration.tail_p(np.array([50.0]), table, "max")[0] == pytest.approx(0.51)
    tables = {k: table for k in calibration.COMPONENTS}
    middle = {k: np.array([50.0]) for k in calibration.COMPONENTS}
    one_far = {**middle, "fill": np.array([1000.0])}
    all_far = {
        k: np.array([1000.0 if side == "max" else -5.0])
        for k, side in calibration.COMPONENTS.items()
    }
    s_mid, s_one, s_all = (
        calibration.outlier_score(v, tables)[0] for v in (middle, one_far, all_far)
    )
    n = len(calibration.COMPONENTS)
    assert s_mid == pytest.approx(-n * np.log(0.51), rel=1e-3)
    assert s_one == pytest.approx(-(n - 1) * np.log(0.51) - np.log(0.01), rel=1e-3)
    assert s_all == pytest.approx(-n * np.log(0.01), rel=1e-6)


def test_extent_and_fill_of_an_item_a_strip_and_a_blank():
    item = np.zeros((28, 28), np.uint8)
    item[:, 6:22] = 200  # a trouser-like block: the full height, 16 columns
    item[14:, 13:15] = 0  # the gap between the legs
    strip = np.zeros((28, 28), np.uint8)
    strip[12:16] = 180  # a landscape's band: 4 rows
    x = np.stack([item, strip, np.zeros((28, 28), np.uint8)])
    assert calibration.extent(x).tolist() == [16, 4, 0]
    assert calibration.fill(x).tolist() == pytest.approx([1 - 28 / (28 * 16), 1.0, 0.0])


def test_the_knn_signal_finds_the_nearest_bank_item_by_angle():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(50, 8)).astype(np.float32)
    bank = calibration.feature_bank(feats, size=20, seed=3)
    assert bank.shape == (20, 8) and bank.dtype == np.float16
    assert np.allclose(np.linalg.norm(bank.astype(np.float32), axis=1), 1, atol=1e-3)
    assert calibration.feature_bank(feats, size=80).shape == (50, 8)  # all of them
    # A bank item, scaled, is its own neighbour (similarity 1); its opposite is far.
    member = bank[:1].astype(np.float32) * 7.5
    sim = calibration.knn_similarity(np.concatenate([member, -member]), bank)
    assert sim[0] == pytest.approx(1.0, abs=1e-3) and sim[1] < 0.9
    # By hand: the cosine to the closest of two axes.
    axes = np.eye(2, dtype=np.float16)
    got = calibration.knn_similarity(np.array([[3.0, 4.0], [-1.0, 0.0]]), axes)
    assert got.tolist() == pytest.approx([0.8, 0.0])


def test_scrambled_items_are_training_items_with_their_tiles_reordered():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    out = calibration.scrambled_items(x, n=40, seed=2)
    assert out.shape == (40, 28, 28) and out.dtype == np.uint8
    assert len(calibration.scrambled_items(x[:5], n=40, seed=2)) == 5  # at most N
    assert (out == calibration.scrambled_items(x, n=40, seed=2)).all()  # a seed's own
    t, g = calibration.SCRAMBLE_TILE, 28 // calibration.SCRAMBLE_TILE

    def tiles(a):
        return sorted(a.reshape(g, t, g, t).transpose(0, 2, 1, 3).reshape(g * g, -1).tolist())

    sources = [tiles(a) for a in x]
    for a in out:  # the same tiles as one training item, not in its order
        assert tiles(a) in sources
    assert not any((a == b).all() for a in out for b in x)


def test_the_scramble_direction_separates_intact_from_scrambled_features():
    rng = np.random.default_rng(0)
    d, shift = 6, np.array([0.0, 0.0, 3.0, 0.0, 0.0, 0.0])
    intact = rng.normal(size=(4000, d))
    scrambled = rng.normal(size=(4000, d)) + shift
    w = calibration.scramble_direction(intact, scrambled)
    assert w.shape == (d,) and w.dtype == np.float32
    # Unit covariance: Sigma^-1 times the mean difference is about the shift itself.
    np.testing.assert_allclose(w, shift, atol=0.15)
    middle = float(w @ shift) / 2  # halfway between the two means' scores
    assert (calibration.scrambled_score(scrambled, w) > middle).mean() > 0.9
    assert (calibration.scrambled_score(intact, w) < middle).mean() > 0.9


def test_grain_is_the_share_of_the_inside_that_stands_out_from_its_neighbours():
    flat = np.zeros((28, 28), np.uint8)
    flat[4:24, 6:22] = 150  # a smoothly shaded solid shape: its inside is 18 x 14 pixels
    woven = flat.copy()
    woven[5:23:2, 7:21] = 200  # every other row of the inside a lighter thread
    shaded = flat.copy()
    shaded[4:24, 6:22] += np.arange(20, dtype=np.uint8)[:, None]  # a gradient: not grain
    mark = flat.copy()
    mark[10, 10] = 153  # 3 levels above its neighbours: 9 * 153 - (8 * 150 + 153) = 24 > 22.95
    faint = flat.copy()
    faint[10, 10] = 152  # 2 levels: 16, not more than 9 * GRAIN
    x = np.stack([flat, woven, shaded, mark, faint, np.zeros((28, 28), np.uint8)])
    got = calibration.grain(x)
    assert got[0] == 0.0 and got[2] == 0.0 and got[4] == 0.0 and got[5] == 0.0
    assert got[3] == pytest.approx(1 / (18 * 14))  # its neighbours: 9 * 150 - 1353 = -3
    assert got[1] > 0.9
    # Ink reaching the frame has its rim there too: a 4 x 4 block in the corner has 2 x 2
    # inside, the one next to the lighter corner pixel stands out, the corner (rim) not.
    edge = np.zeros((2, 28, 28), np.uint8)
    edge[:, :4, :4] = 100
    edge[1, 0, 0] = 200
    assert calibration.grain(edge).tolist() == [0.0, 0.25]


def test_the_grain_threshold_is_apart_from_the_outlier_score_and_old_exports_lack_it():
    rng = np.random.default_rng(4)
    n = 20000
    confidence, score, grain = rng.random(n), rng.exponential(5, n), rng.random(n)
    limits = calibration.thresholds(confidence, score, grain)
    assert set(limits) == {"min_confidence", "max_outlier_score", "min_grain"}
    smooth = grain < limits["min_grain"]
    assert smooth.mean() == pytest.approx(calibration.GRAIN_SHARE, abs=0.002)
    others = (confidence < limits["min_confidence"]) | (score > limits["max_outlier_score"])
    signals = {"outlier_score": score, "grain": grain}
    assert (calibration.flags(confidence, signals, limits) == (others | smooth)).all()
    assert "grain" not in calibration.COMPONENTS  # not a term of the sum
    # score reads min_grain only from an export whose SavedModel returns the signal.
    meta = ExportMetadata(uncertain=limits)
    assert "min_grain" in uncertain.rule(meta, ("outlier_score", "grain")).limits
    assert "min_grain" not in uncertain.rule(meta, ("outlier_score",)).limits


def test_gaps_counts_the_empty_rows_and_columns_between_the_inks_pieces():
    x = np.zeros((6, 28, 28), np.uint8)
    x[0, 4:24, 6:22] = 150  # one solid piece
    x[1, 4:24, 6:22] = 150
    x[1, 12:16, 6:22] = 0  # a band cut out across it: four empty rows
    x[2, 2:8, 10:16] = 90  # thumbnails stacked, two and three empty rows between
    x[2, 10:16, 10:16] = 90
    x[2, 19:25, 10:16] = 90
    x[3, 4:24, 3:9] = 200  # side by side, one empty column between
    x[3, 4:24, 10:20] = 200
    x[4, 4:24, 6:22] = 150
    x[4, 8:20, 10:18] = 0  # a hole: every row and column still holds ink
    x[5, 10, 10] = calibration.INK  # not above INK: no ink at all
    assert calibration.gaps(x).tolist() == [0.0, 4.0, 5.0, 1.0, 0.0, 0.0]


def test_the_gaps_threshold_flags_at_most_its_share_and_old_exports_lack_it():
    rng = np.random.default_rng(5)
    n = 20000
    confidence, score, grain = rng.random(n), rng.exponential(5, n), rng.random(n)
    gaps = (rng.random(n) < 0.003) * 3.0 + (rng.random(n) < 0.02)  # whole numbers, mostly 0
    limits = calibration.thresholds(confidence, score, grain, gaps)
    assert limits["max_gaps"] == 1.0  # the 99.5% quantile: ties at 1 are not flagged
    apart = gaps > limits["max_gaps"]
    assert 0 < apart.mean() <= calibration.GAPS_SHARE
    others = (confidence < limits["min_confidence"]) | (score > limits["max_outlier_score"])
    others |= grain < limits["min_grain"]
    signals = {"outlier_score": score, "grain": grain, "gaps": gaps}
    assert (calibration.flags(confidence, signals, limits) == (others | apart)).all()
    assert "gaps" not in calibration.COMPONENTS  # not a term of the sum
    meta = ExportMetadata(uncertain=limits)
    assert "max_gaps" in uncertain.rule(meta, ("outlier_score", "grain", "gaps")).limits
    assert "max_gaps" not in uncertain.rule(meta, ("outlier_score", "grain")).limits


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
    # An export with only the outlier score's threshold flags on it.
    r = uncertain.rule(
        ExportMetadata(uncertain={"min_confidence": 0.6, "max_outlier_score": 20.0}),
        tuple(calibration.SIGNALS),
    )
    probs = np.array([[0.9] + [0.1 / 9] * 9] * 2)
    assert r.flags(probs, {"outlier_score": np.array([5.0, 25.0])}).tolist() == [False, True]
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
