"""Ensemble selection on hand-made validation predictions (NumPy only)."""

import numpy as np
import pytest

from fmnist.training import ensemble


def _probs(y, correct: np.ndarray, rng, sharp=0.9):
    """Probabilities that put `sharp` on the true class where `correct`, else on the next."""
    p = np.full((len(y), 10), (1 - sharp) / 9)
    pred = np.where(correct, y, (y + 1) % 10)
    p[np.arange(len(y)), pred] = sharp
    return p


def test_a_member_with_nothing_to_add_is_left_out():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 2000)
    right = rng.random(2000) < 0.9
    good = _probs(y, right, rng)
    # Worse, and never right where the good one is wrong: it has nothing to add.
    bad = _probs(y, right & (rng.random(2000) < 0.6), rng, sharp=0.5)
    out = ensemble.select({"good": good, "bad": bad}, y, size=5)
    assert out["weights"] == {"good": 1.0}
    assert out["val_accuracy"] == pytest.approx((good.argmax(1) == y).mean())
    assert out["steps"][0]["added"] == "good" and len(out["steps"]) == 5


def test_members_that_err_differently_are_combined_and_beat_each_alone():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 3000)
    # Three members, each wrong on a different third of the errors: any two agree on
    # every item the third gets wrong.
    wrong = rng.integers(0, 3, 3000)
    wrong[rng.random(3000) < 0.7] = -1  # 70% right for all
    members = {f"m{i}": _probs(y, wrong != i, rng, sharp=0.6) for i in range(3)}
    out = ensemble.select(members, y, size=6)
    alone = max((p.argmax(1) == y).mean() for p in members.values())
    assert set(out["weights"]) == {"m0", "m1", "m2"}
    assert sum(out["weights"].values()) == pytest.approx(1.0)
    assert out["val_accuracy"] > alone + 0.05
    mixed = ensemble.combine(members, out["weights"])
    assert (mixed.argmax(1) == y).mean() == pytest.approx(out["val_accuracy"])


def test_the_best_prefix_is_kept_not_the_last_step():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 10, 1000)
    only = _probs(y, rng.random(1000) < 0.8, rng)
    out = ensemble.select({"only": only}, y, size=4)
    # Adding the same member again changes nothing: the first step is kept.
    assert out["kept_steps"] == 1 and out["weights"] == {"only": 1.0}


def test_bad_arguments():
    with pytest.raises(ValueError):
        ensemble.select({}, np.zeros(3, int), 3)
    with pytest.raises(ValueError):
        ensemble.select({"a": np.eye(10)[:3]}, np.zeros(3, int), 0)


def test_an_ensemble_asked_for_but_not_built_says_why(tmp_path):
    from fmnist.ops.results import VariantResult
    from fmnist.training.exporter import choose_members
    from fmnist.training.rundir import RunDir

    def ok(name, acc):
        return VariantResult(name=name, config={}, status="ok", val_accuracy=acc)

    run_dir = RunDir(tmp_path)
    y = np.array([0, 1, 2, 3])
    a = ok("a", 0.9)
    members, selection, note = choose_members([a], a, run_dir, y, 5)
    assert members == [("a", 1.0)] and selection is None
    assert note == "5 steps asked, but only one variant finished: exporting a alone"
    # Two finished, no saved predictions (an older run resumed).
    members, _, note = choose_members([a, ok("b", 0.8)], a, run_dir, y, 5)
    assert members == [("a", 1.0)] and "fewer than two variants have validation" in note
    # Predictions where b adds nothing: selection keeps a alone.
    (tmp_path / "weights").mkdir()
    run_dir.save_val_probs("a", np.eye(4, 10)[y])
    run_dir.save_val_probs("b", np.full((4, 10), 0.1))
    members, selection, note = choose_members([a, ok("b", 0.1)], a, run_dir, y, 3)
    assert [m for m, _ in members] == ["a"] and "kept one member" in note
    assert choose_members([a, ok("b", 0.1)], a, run_dir, y, 1)[2] is None
