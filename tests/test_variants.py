"""Sweep files: what is accepted, and that every bad one is refused with a message
naming the file, the variant and the key."""

import pytest

from fmnist import variants
from fmnist.variants import SweepError, Variant

from conftest import ROOT


def test_default_sweep_has_the_tutorial_model_exactly():
    vs = variants.load(ROOT / "jobs" / "default.toml")
    assert len(vs) >= 4
    tut = next(v for v in vs if v.name == "tutorial")
    assert (tut.hidden, tut.activation, tut.optimizer, tut.learning_rate,
            tut.epochs, tut.batch_size, tut.dropout, tut.normalization) == \
        ((128,), "relu", "adam", 0.001, 5, 32, 0.0, "none")


@pytest.mark.parametrize("name", ["default.toml", "best.toml"])
def test_shipped_sweeps_parse(name):
    path = ROOT / "jobs" / name
    if not path.exists():
        pytest.skip(f"{name} not shipped yet")
    assert len({v.name for v in variants.load(path)}) == len(variants.load(path))


def test_defaults_apply_and_variant_overrides():
    vs = variants.parse("""
        [defaults]
        epochs = 3
        dropout = 0.1
        [[variant]]
        name = "a"
        hidden = [64]
        [[variant]]
        name = "b"
        hidden = [32, 16]
        epochs = 7
    """)
    assert [(v.name, v.epochs, v.dropout, v.hidden) for v in vs] == \
        [("a", 3, 0.1, (64,)), ("b", 7, 0.1, (32, 16))]


def test_epochs_override():
    vs = variants.with_epochs([Variant("a", (8,), epochs=30, warmup_epochs=2)], 1)
    assert (vs[0].epochs, vs[0].warmup_epochs) == (1, 0)


@pytest.mark.parametrize("body, expected", [
    ('name = "a"\nhidden = [64]\nlearnin_rate = 0.1', "variant 'a': unknown key 'learnin_rate'"),
    ('name = "a"\nhidden = [64]\ndropout = "high"', "variant 'a': key 'dropout'"),
    ('name = "a"\nhidden = [64]\ndropout = 1.0', "variant 'a': key 'dropout'"),
    ('name = "a"\nhidden = [0]', "variant 'a': key 'hidden'"),
    ('name = "a"\nhidden = []', "variant 'a': key 'hidden'"),
    ('name = "a"\nhidden = [64]\nepochs = 2.5', "variant 'a': key 'epochs'"),
    ('name = "a"\nhidden = [64]\nbatch_size = 0', "variant 'a': key 'batch_size'"),
    ('name = "a"\nhidden = [64]\naugment_flip = 1', "variant 'a': key 'augment_flip'"),
    ('name = "a"\nhidden = [64]\nlearning_rate = 10', "variant 'a': key 'learning_rate'"),
    ('name = "a"\nhidden = [64]\nactivation = "relux"', "variant 'a': key 'activation'"),
    ('hidden = [64]', "variant #1: missing key 'name'"),
    ('name = "a"\nhidden = [64]\nwarmup_epochs = 1',
     "variant 'a': key 'warmup_epochs' has no effect without schedule = \"cosine\""),
    ('name = "a"\nhidden = [64]\nweight_decay = 0.01',
     "variant 'a': key 'weight_decay' has no effect with optimizer \"adam\""),
    ('name = "a"\nhidden = [64]\nschedule = "cosine"\nwarmup_epochs = 5',
     "variant 'a': key 'warmup_epochs' (5) must be fewer than epochs (5)"),
    ('name = "a"\nhidden = [64, true]', "variant 'a': key 'hidden'"),
    ('name = "a b/c"\nhidden = [64]', "key 'name'"),
])
def test_bad_variant_names_file_variant_and_key(sweep_file, body, expected):
    path = sweep_file(f"[[variant]]\n{body}\n")
    with pytest.raises(SweepError) as e:
        variants.load(path)
    assert str(e.value).startswith(str(path))
    assert expected in str(e.value)


@pytest.mark.parametrize("text, expected", [
    ("[[variant]\nname = 'a'", "not valid TOML"),
    ("", "no variants"),
    ("[defaults]\nepochs = 2\n", "no variants"),
    ("[defaults]\nname = 'x'\n[[variant]]\nname='a'\nhidden=[1]", "[defaults]: unknown key 'name'"),
    ("[default]\n[[variant]]\nname='a'\nhidden=[1]", "unknown top-level key 'default'"),
    ("[[variant]]\nname='a'\nhidden=[1]\n[[variant]]\nname='a'\nhidden=[2]", "duplicate name"),
    ("[defaults]\ndropout = 2.0\n[[variant]]\nname='a'\nhidden=[1]", "[defaults]: key 'dropout'"),
    ("[defaults]\nwarmup_epochs = 2\n[[variant]]\nname='a'\nhidden=[1]\nschedule='cosine'", None),
])
def test_bad_sweep_files(sweep_file, text, expected):
    if expected is None:  # a default that takes effect in the variant: accepted
        assert variants.load(sweep_file(text))[0].warmup_epochs == 2
        return
    with pytest.raises(SweepError, match=".*") as e:
        variants.load(sweep_file(text))
    assert expected in str(e.value)


def test_variants_are_checked_however_they_are_made():
    """One definition: code that makes a Variant gets the same checks as a sweep file."""
    import dataclasses

    import pydantic
    with pytest.raises(pydantic.ValidationError):
        Variant("a", (64,), dropout=1.5)
    with pytest.raises(pydantic.ValidationError):
        dataclasses.replace(Variant("a", (64,)), epochs=0)
    assert variants.from_dict(Variant("a", (64,)).to_dict(), "x") == Variant("a", (64,))


def test_missing_sweep_file(tmp_path):
    with pytest.raises(SweepError, match="sweep file not found"):
        variants.load(tmp_path / "nope.toml")
