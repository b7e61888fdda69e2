"""Export: TF Serving layout, increasing versions, nothing half-written."""

import json
import threading

import numpy as np
import pytest
import tensorflow as tf

from fmnist.core import export
from fmnist.training import model, savedmodel
from fmnist.training.variants import Variant


@pytest.fixture(scope="module")
def weights():
    return model.build(Variant("w", (16,))).get_weights()


def test_versions_increase_and_staging_is_cleaned(tmp_path, weights):
    v = Variant("w", (16,))
    a = savedmodel.export(v, weights, {"n": 1}, tmp_path)
    b = savedmodel.export(v, weights, {"n": 2}, tmp_path)
    assert (a.name, b.name) == ("1", "2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2"]
    assert json.loads((b / export.METADATA).read_text()) == {"n": 2}
    serve = tf.saved_model.load(str(b)).signatures[export.SIGNATURE]
    out = serve(images=tf.zeros([3, 28, 28], tf.uint8))[export.OUTPUT_KEY].numpy()
    assert out.shape == (3, 10) and np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_concurrent_exports_get_distinct_versions(tmp_path, weights):
    v = Variant("w", (16,))
    paths, errors = [], []

    def one():
        try:
            paths.append(savedmodel.export(v, weights, {}, tmp_path))
        except Exception as e:  # noqa: BLE001 - any error of a thread, reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(p.name for p in paths) == ["1", "2", "3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2", "3"]


def test_failed_export_leaves_no_version(tmp_path):
    bad = [np.zeros((3, 3))]  # wrong weights: set_weights raises mid-export
    with pytest.raises(ValueError):
        savedmodel.export(Variant("w", (16,)), bad, {}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_versions_ignores_non_integer_entries(tmp_path):
    for name in ("3", "10", ".staging-x", "latest"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version")
    assert export.versions(tmp_path) == [3, 10]


def test_packed_savedmodel_publishes_to_a_working_version(tmp_path, weights):
    # How a sweep exports: a Ray task builds the SavedModel and packs it, the driver
    # unpacks it into staging and renames it into place.
    built = tmp_path / "built"
    savedmodel.save_model(Variant("w", (16,)), weights, built)
    archive = export.pack(built)
    version = export.publish(
        lambda staging: export.unpack(archive, staging), {"n": 1}, tmp_path / "models"
    )
    assert version.name == "1" and sorted(p.name for p in version.parent.iterdir()) == ["1"]
    serve = tf.saved_model.load(str(version)).signatures[export.SIGNATURE]
    images = tf.constant(np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256, tf.uint8)
    original = tf.saved_model.load(str(built)).signatures[export.SIGNATURE]
    assert np.allclose(
        serve(images=images)[export.OUTPUT_KEY].numpy(),
        original(images=images)[export.OUTPUT_KEY].numpy(),
    )
    # Readable by a server running as another user (staging dirs start private).
    assert version.stat().st_mode & 0o755 == 0o755
    assert (version / export.METADATA).stat().st_mode & 0o644 == 0o644


def test_unpack_refuses_paths_outside_the_target(tmp_path):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(tarfile.TarError):
        export.unpack(buf.getvalue(), tmp_path / "target")
    assert not (tmp_path / "escaped.txt").exists()


def _archive(*members):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


@pytest.fixture
def python_3_11_2_tarfile(monkeypatch):
    """tarfile as Python 3.11.0-3.11.3 have it (Debian 12: 3.11.2): no extraction filters,
    and extractall() has no filter= argument (a TypeError there, which crashed exports)."""
    import tarfile

    original = tarfile.TarFile.extractall

    def extractall(self, path=".", members=None, *, numeric_owner=False, **kwargs):
        if kwargs:
            raise TypeError(
                f"TarFile.extractall() got an unexpected keyword argument {next(iter(kwargs))!r}"
            )
        return original(self, path, members, numeric_owner=numeric_owner, filter="fully_trusted")

    monkeypatch.delattr(tarfile, "data_filter")
    monkeypatch.setattr(tarfile.TarFile, "extractall", extractall)


@pytest.mark.usefixtures("python_3_11_2_tarfile")
def test_unpack_works_without_extraction_filters(tmp_path, weights):
    built = tmp_path / "built"
    savedmodel.save_model(Variant("w", (16,)), weights, built)
    version = export.publish(
        lambda staging: export.unpack(export.pack(built), staging), {"n": 1}, tmp_path / "models"
    )
    serve = tf.saved_model.load(str(version)).signatures[export.SIGNATURE]
    assert serve(images=tf.zeros([1, 28, 28], tf.uint8))[export.OUTPUT_KEY].shape == (1, 10)
    for p in version.rglob("*"):
        assert p.stat().st_mode & 0o644 == 0o644 and not p.stat().st_mode & 0o022, p


@pytest.mark.usefixtures("python_3_11_2_tarfile")
@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "hardlink", "fifo", "setuid"])
def test_unpack_without_filters_refuses_what_the_data_filter_refuses(tmp_path, kind):
    import tarfile

    info = tarfile.TarInfo(
        {"absolute": str(tmp_path / "abs.txt"), "dotdot": "a/../../dotdot.txt"}.get(kind, "x")
    )
    data = b"hi"
    if kind in ("symlink", "hardlink"):
        info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        info.linkname, data = str(tmp_path / "outside.txt"), None
    elif kind == "fifo":
        info.type, data = tarfile.FIFOTYPE, None
    target = tmp_path / "target"
    target.mkdir()
    archive = _archive((info, data))
    if kind == "setuid":  # allowed, but without the setuid and group/other write bits
        info.mode = 0o4777
        export.unpack(_archive((info, data)), target)
        assert (target / "x").stat().st_mode & 0o7777 == 0o755
        return
    with pytest.raises(tarfile.TarError):
        export.unpack(archive, target)
    assert (
        list(target.iterdir()) == []
        and not (tmp_path / "abs.txt").exists()
        and not (tmp_path / "dotdot.txt").exists()
    )


def test_an_ensemble_is_one_savedmodel_with_the_weighted_mean_of_its_members(tmp_path):
    """Members of different shapes and weights: the exported signature (the one score and
    TF Serving call) returns the weighted mean of the members' own probabilities."""
    rng = np.random.default_rng(0)
    members = []
    for i, (hidden, share) in enumerate((((32,), 0.5), ((16, 8), 0.3), ((8,), 0.2))):
        v = Variant(f"m{i}", hidden, normalization="batch" if i == 1 else "none", seed=i)
        net = model.build(v, jit=False)
        # Random weights of the right shapes: members that disagree.
        arrays = [rng.normal(0, 0.5, w.shape).astype(w.dtype) for w in net.get_weights()]
        arrays = [
            np.abs(a) + 0.5 if "variance" in w.path else a for a, w in zip(arrays, net.weights)
        ]
        net.set_weights(arrays)
        members.append((v, arrays, share, net))
    x = rng.integers(0, 256, (64, 28, 28)).astype(np.uint8)
    expected = sum(
        share * tf.nn.softmax(net(x, training=False)).numpy() for _, _, share, net in members
    )
    savedmodel.save_ensemble([(v, a, s) for v, a, s, _ in members], tmp_path / "e")
    serve = tf.saved_model.load(str(tmp_path / "e")).signatures[export.SIGNATURE]
    got = serve(images=tf.constant(x))[export.OUTPUT_KEY].numpy()
    assert np.allclose(got, expected, atol=1e-6)
    assert np.allclose(got.sum(axis=1), 1, atol=1e-5)
    # The members disagree, so the mean is not any one of them.
    singles = [tf.nn.softmax(net(x, training=False)).numpy() for *_, net in members]
    assert all(not np.allclose(got, p, atol=1e-3) for p in singles)


def test_a_one_member_ensemble_is_that_model(tmp_path, weights):
    v = Variant("w", (16,))
    net = model.build(v)
    net.set_weights(weights)
    x = np.arange(5 * 784).reshape(5, 28, 28) % 256
    savedmodel.save_ensemble([(v, weights, 1.0)], tmp_path / "one")
    got = (
        tf.saved_model.load(str(tmp_path / "one"))
        .signatures[export.SIGNATURE](images=tf.constant(x, tf.uint8))[export.OUTPUT_KEY]
        .numpy()
    )
    assert np.allclose(got, tf.nn.softmax(net(x.astype(np.uint8))).numpy(), atol=1e-6)


# What `fmnist-job train` writes today, key for key (training/exporter.py's record).
WRITTEN = {
    "class_names": ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"],
    "run_id": "20261127-020000",
    "variant": {"name": "w", "hidden": [16]},
    "val_accuracy": 0.875,
    "test_accuracy": 0.8625,
    "dataset_sha256": {"train-images-idx3-ubyte.gz": "ab"},
    "input": {
        "signature": "serving_default",
        "key": "images",
        "dtype": "uint8",
        "shape": [None, 28, 28],
        "background": 0,
    },
    "output": {"key": "probabilities", "shape": [None, 10]},
    "libraries": {"python": "3.11.2", "tensorflow": "2.20.0"},
    "exported_at": "2026-11-27T02:14:00+00:00",
}


def test_metadata_is_written_and_read_through_one_schema(tmp_path):
    meta = export.ExportMetadata(
        class_names=WRITTEN["class_names"],
        run_id=WRITTEN["run_id"],
        variant=WRITTEN["variant"],
        val_accuracy=0.875,
        test_accuracy=0.8625,
        dataset_sha256=WRITTEN["dataset_sha256"],
        input=export.ExportInput(),
        output=export.ExportOutput(),
        libraries=WRITTEN["libraries"],
        exported_at=WRITTEN["exported_at"],
    )
    version = export.publish(lambda staging: None, meta, tmp_path)
    text = (version / export.METADATA).read_text()
    assert list(json.loads(text)) == list(WRITTEN) and json.loads(text) == WRITTEN
    assert export.read_metadata(version) == meta and meta.variant_name == "w"


def test_metadata_of_an_older_export_is_read_with_what_it_has(tmp_path):
    """Before fmnist.json had exported_at, libraries, input/output (or a hand-made one
    with only class names): the fields it lacks are None."""
    old = {
        k: WRITTEN[k] for k in ("class_names", "run_id", "variant", "val_accuracy", "test_accuracy")
    }
    (tmp_path / export.METADATA).write_text(json.dumps({**old, "retired_key": 1}))
    meta = export.read_metadata(tmp_path)
    assert (meta.exported_at, meta.libraries, meta.input) == (None, None, None)
    assert meta.dump() == old  # the key it no longer knows is dropped
    (tmp_path / export.METADATA).write_text("{}")
    assert export.read_metadata(tmp_path).class_names is None


@pytest.mark.parametrize(
    "document, field",
    [
        ({"class_names": ["a"] * 9}, "class_names"),
        ({"class_names": [1] * 10}, "class_names"),
        ({"val_accuracy": "high"}, "val_accuracy"),
        ([1, 2], ""),
    ],
)
def test_metadata_that_is_not_an_exports_names_the_field(tmp_path, document, field):
    (tmp_path / export.METADATA).write_text(json.dumps(document))
    with pytest.raises(export.MetadataError, match="not an export's metadata") as caught:
        export.read_metadata(tmp_path)
    assert caught.value.field == field and "\n" not in str(caught.value)
    (tmp_path / export.METADATA).write_text("{not json")
    with pytest.raises(ValueError, match="Expecting property name"):
        export.read_metadata(tmp_path)
