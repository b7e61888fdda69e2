"""Sweep files: what is accepted, and that every bad one is refused with a message
naming the file, the variant and the key."""

import pytest

from fmnist.training import variants
from fmnist.training.variants import SweepError, Variant

from conftest import ROOT


def test_default_sweep_has_the_tutorial_model_exactly():
    vs = variants.load(ROOT / "jobs" / "default.toml")
    assert len(vs) >= 4
    tut = next(v for v in vs if v.name == "tutorial")
    assert (
        tut.hidden,
        tut.activation,
        tut.optimizer,
        tut.learning_rate,
        tut.epochs,
        tut.batch_size,
        tut.dropout,
        tut.normalization,
    ) == ((128,), "relu", "adam", 0.001, 5, 32, 0.0, "none")


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
    assert [(v.name, v.epochs, v.dropout, v.hidden) for v in vs] == [
        ("a", 3, 0.1, (64,)),
        ("b", 7, 0.1, (32, 16)),
    ]


def test_epochs_override():
    vs = variants.with_epochs([Variant("a", (8,), epochs=30, warmup_epochs=2)], 1)
    assert (vs[0].epochs, vs[0].warmup_epochs) == (1, 0)


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            'name = "a"\nhidden = [64]\nlearnin_rate = 0.1',
            "variant 'a': unknown key 'learnin_rate'",
        ),
        ('name = "a"\nhidden = [64]\ndropout = "high"', "variant 'a': key 'dropout'"),
        ('name = "a"\nhidden = [64]\ndropout = 1.0', "variant 'a': key 'dropout'"),
        ('name = "a"\nhidden = [0]', "variant 'a': key 'hidden'"),
        ('name = "a"\nhidden = []', "variant 'a': key 'hidden'"),
        ('name = "a"\nhidden = [64]\nepochs = 2.5', "variant 'a': key 'epochs'"),
        ('name = "a"\nhidden = [64]\nbatch_size = 0', "variant 'a': key 'batch_size'"),
        ('name = "a"\nhidden = [64]\naugment_flip = 1', "variant 'a': key 'augment_flip'"),
        ('name = "a"\nhidden = [64]\naugment_rotate = 45', "variant 'a': key 'augment_rotate'"),
        ('name = "a"\nhidden = [64]\naugment_rotate = 7.5', "variant 'a': key 'augment_rotate'"),
        ('name = "a"\nhidden = [64]\nlearning_rate = 10', "variant 'a': key 'learning_rate'"),
        ('name = "a"\nhidden = [64]\nactivation = "relux"', "variant 'a': key 'activation'"),
        ("hidden = [64]", "variant #1: missing key 'name'"),
        (
            'name = "a"\nhidden = [64]\nwarmup_epochs = 1',
            "variant 'a': key 'warmup_epochs' has no effect without schedule = \"cosine\"",
        ),
        (
            'name = "a"\nhidden = [64]\nweight_decay = 0.01',
            "variant 'a': key 'weight_decay' has no effect with optimizer \"adam\"",
        ),
        (
            'name = "a"\nhidden = [64]\nschedule = "cosine"\nwarmup_epochs = 5',
            "variant 'a': key 'warmup_epochs' (5) must be fewer than epochs (5)",
        ),
        ('name = "a"\nhidden = [64, true]', "variant 'a': key 'hidden'"),
        ('name = "a b/c"\nhidden = [64]', "key 'name'"),
    ],
)
def test_bad_variant_names_file_variant_and_key(sweep_file, body, expected):
    path = sweep_file(f"[[variant]]\n{body}\n")
    with pytest.raises(SweepError) as e:
        variants.load(path)
    assert str(e.value).startswith(str(path))
    assert expected in str(e.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[[variant]\nname = 'a'", "not valid TOML"),
        ("[[variant]]\nname = 'a'\nhidden = [32", "(at line 3, column 13: the end of the file)"),
        ("[[variant]]\nname = 'a'\nepochs = ", "Invalid value (at line 3, column 10"),
        ("", "no variants"),
        ("[defaults]\nepochs = 2\n", "no variants"),
        (
            "[defaults]\nname = 'x'\n[[variant]]\nname='a'\nhidden=[1]",
            "[defaults]: unknown key 'name'",
        ),
        ("[default]\n[[variant]]\nname='a'\nhidden=[1]", "unknown top-level key 'default'"),
        ("[[variant]]\nname='a'\nhidden=[1]\n[[variant]]\nname='a'\nhidden=[2]", "duplicate name"),
        (
            "[defaults]\ndropout = 2.0\n[[variant]]\nname='a'\nhidden=[1]",
            "[defaults]: key 'dropout'",
        ),
        (
            "[defaults]\nwarmup_epochs = 2\n[[variant]]\nname='a'\nhidden=[1]\nschedule='cosine'",
            None,
        ),
    ],
)
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


def test_a_grid_is_the_product_of_its_lists_with_names_that_say_what_varies():
    vs = variants.parse("""
        [defaults]
        epochs = 3
        [[grid]]
        name = "mlp"
        hidden = [[256], [512, 256]]
        dropout = [0.2, 0.3]
        activation = ["gelu"]
        schedule = "cosine"
    """)
    assert [v.name for v in vs] == [
        "mlp-h256-do0.2",
        "mlp-h256-do0.3",
        "mlp-h512x256-do0.2",
        "mlp-h512x256-do0.3",
    ]
    assert {(v.hidden, v.dropout) for v in vs} == {
        ((256,), 0.2),
        ((256,), 0.3),
        ((512, 256), 0.2),
        ((512, 256), 0.3),
    }
    assert {(v.activation, v.schedule, v.epochs) for v in vs} == {("gelu", "cosine", 3)}


def test_a_single_hidden_list_in_a_grid_is_one_value():
    vs = variants.parse('[[grid]]\nname = "g"\nhidden = [512, 256]\nseed = [0, 1, 2]\n')
    assert [(v.name, v.hidden) for v in vs] == [(f"g-s{i}", (512, 256)) for i in range(3)]


def test_random_samples_are_reproducible_in_range_and_named_by_their_values():
    text = """
        [[random]]
        name = "rnd"
        samples = 5
        sample_seed = 7
        hidden = {choice = [[128], [256, 128]]}
        learning_rate = {loguniform = [1e-4, 1e-2]}
        dropout = {uniform = [0.1, 0.4]}
        epochs = {uniform = [3, 6]}
    """
    vs = variants.parse(text)
    assert vs == variants.parse(text)  # the same seed, the same variants
    assert len(vs) == 5 and len({v.name for v in vs}) == 5
    for i, v in enumerate(vs, 1):
        assert 1e-4 <= v.learning_rate <= 1e-2 and 0.1 <= v.dropout <= 0.4
        assert v.hidden in ((128,), (256, 128)) and 3 <= v.epochs <= 6
        assert v.name == (
            f"rnd{i:02d}-h{'x'.join(map(str, v.hidden))}-lr{v.learning_rate:g}"
            f"-do{v.dropout:g}-e{v.epochs}"
        )
        assert len(f"{v.learning_rate:.3g}") == len(f"{v.learning_rate:g}")  # 3 digits kept
    other = variants.parse(text.replace("sample_seed = 7", "sample_seed = 8"))
    assert [v.name for v in other] != [v.name for v in vs]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[[grid]]\nhidden = [[1]]", "grid #1: key 'name'"),
        (
            '[[grid]]\nname = "g"\nhidden = [[1]]\ndropout = []',
            "grid 'g': key 'dropout': an empty list",
        ),
        (
            '[[grid]]\nname = "g"\nhidden = [[1]]\ndropout = [0.1, 1.5]',
            "grid 'g': variant 'g-do1.5': key 'dropout'",
        ),
        ('[[grid]]\nname = "g"\nhidden = [[1]]\ndropuot = [0.1, 0.2]', "unknown key 'dropuot'"),
        (
            '[[grid]]\nname = "g"\nhidden = [[1]]\nseed = [0, 1]\n[[variant]]\nname = "g-s1"\n'
            "hidden = [1]",
            "duplicate name",
        ),
        (
            '[[grid]]\nname = "g"\nhidden = [[1]]\nseed = '
            + str(list(range(40)))
            + "\nepochs = "
            + str(list(range(1, 30))),
            "1160 combinations; at most 1000",
        ),
        (
            '[[random]]\nname = "r"\nhidden = [8]\ndropout = {uniform = [0.1, 0.2]}',
            "random 'r': key 'samples'",
        ),
        ('[[random]]\nname = "r"\nsamples = 2\nhidden = [8]', "no key to sample"),
        (
            '[[random]]\nname = "r"\nsamples = 2\nhidden = [8]\ndropout = {normal = [0, 1]}',
            "key 'dropout': one of",
        ),
        (
            '[[random]]\nname = "r"\nsamples = 2\nhidden = [8]\nlearning_rate = {loguniform = [0, 1]}',
            "loguniform needs low > 0",
        ),
        (
            '[[random]]\nname = "r"\nsamples = 2\nhidden = [8]\ndropout = {uniform = [0.4, 0.1]}',
            "uniform needs [low, high] with low < high",
        ),
    ],
)
def test_bad_search_spaces(sweep_file, text, expected):
    with pytest.raises(SweepError) as e:
        variants.load(sweep_file(text))
    assert expected in str(e.value), str(e.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", 1),
        ("[ensemble]\nsize = 8\n", 8),
        ("[ensemble]\nsize = 0\n", "key 'size': an integer from 1 (off) to 50, got 0"),
        ("[ensemble]\nsize = 2.5\n", "key 'size'"),
        ("[ensemble]\nsise = 4\n", "[ensemble]: unknown key 'sise'"),
    ],
)
def test_ensemble_size(text, expected):
    if isinstance(expected, int):
        assert variants.ensemble_size(text) == expected
        assert variants.parse(text + '[[variant]]\nname = "a"\nhidden = [8]\n')
    else:
        with pytest.raises(SweepError, match=".*") as e:
            variants.ensemble_size(text)
        assert expected in str(e.value)
