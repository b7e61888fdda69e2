"""Object storage (s3://) against a real S3 server (moto's, tests/s3server.py): the
conditional writes everything relies on, locations and their one-line errors, publishing
versions and the models commands in a bucket, and the races between two processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fmnist.core import export, storage
from fmnist.ops import versions

from conftest import ROOT, assert_same_rows, cli, read_rows, run_cli, start, wait_for


def client(s3_server):
    import boto3

    env = s3_server.env
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


# -----------------------------------------------------------------------------
# The server enforces S3's conditional writes (else every lock below always succeeds)


def test_the_server_refuses_a_conditional_write_that_plain_writes_would_pass(s3_server, bucket):
    import botocore.exceptions

    s3, name = client(s3_server), bucket.removeprefix("s3://")
    s3.put_object(Bucket=name, Key="k", Body=b"1")
    s3.put_object(Bucket=name, Key="k", Body=b"2")  # unconditional: overwrites
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=name, Key="k", Body=b"3", IfNoneMatch="*")
    assert e.value.response["Error"]["Code"] == "PreconditionFailed"
    etag = s3.head_object(Bucket=name, Key="k")["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=name, Key="k", Body=b"4", IfMatch='"0123456789abcdef"')
    assert e.value.response["Error"]["Code"] == "PreconditionFailed"
    s3.put_object(Bucket=name, Key="k", Body=b"5", IfMatch=etag)
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"5"


def test_create_and_replace_are_conditional(bucket):
    path = storage.location(f"{bucket}/x/lock", "--x")
    storage.create(path, b"first")
    with pytest.raises(storage.Changed):
        storage.create(path, b"second")
    data, etag = storage.read_tagged(path)
    assert data == b"first"
    storage.write_bytes(path, b"changed behind our back")
    with pytest.raises(storage.Changed):
        storage.replace(path, b"third", etag)
    data, etag = storage.read_tagged(path)
    storage.replace(path, b"third", etag)
    assert path.read_bytes() == b"third"


def _create_one(args):
    uri, who = args
    from fmnist.core import storage

    try:
        storage.create(storage.location(uri, "--x"), who.encode())
        return who
    except storage.Changed:
        return None


def test_of_processes_racing_to_create_one_object_exactly_one_wins(bucket):
    uri = f"{bucket}/race/claim"
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        won = [w for w in pool.map(_create_one, [(uri, f"p{i}") for i in range(12)]) if w]
    assert len(won) == 1
    assert storage.location(uri, "--x").read_bytes() == won[0].encode()


# -----------------------------------------------------------------------------
# Locations


@pytest.mark.parametrize(
    "text, expected",
    [
        ("models/fmnist", Path("models/fmnist")),
        ("file:///tmp/m", Path("/tmp/m")),
        ("./s3:/x", Path("s3:/x")),  # a local folder named so, when written as a path
    ],
)
def test_a_path_is_a_path(text, expected):
    assert storage.location(text, "--export-dir") == expected


def test_an_s3_uri_is_a_bucket_location():
    path = storage.location("s3://bucket/models/fmnist/", "--export-dir")
    assert storage.is_remote(path) and str(path) == "s3://bucket/models/fmnist"
    assert storage.bucket_of(path) == "bucket" and path.name == "fmnist"


@pytest.mark.parametrize(
    "text, says",
    [
        ("s3:/bucket/models", "not a bucket's URI; write s3://BUCKET/PATH"),
        ("s3://", "not a bucket's URI"),
        ("gs://bucket/models", "gs:// is not supported"),
        ("foo://bucket/models", "foo:// is not supported"),
    ],
)
def test_a_uri_that_cannot_be_used_is_refused_never_taken_for_a_folder(text, says):
    with pytest.raises(storage.LocationError) as e:
        storage.location(text, "--export-dir")
    assert str(e.value).startswith(f"--export-dir {text}: ") and says in str(e.value)


def test_a_missing_bucket_is_named(bucket):
    with pytest.raises(storage.LocationError, match="no bucket named 'no-such-bucket-9'"):
        storage.check(storage.location("s3://no-such-bucket-9/m", "--x"), "--x")


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, says",
    [
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "cannot connect to the endpoint"),
        ({"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}, "no credentials"),
    ],
    ids=["unreachable-endpoint", "no-credentials"],
)
def test_train_with_a_bucket_it_cannot_use_says_so_in_one_line_before_training(
    bucket, tmp_path, change, says
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({k: v for k, v in {**_aws(), **change}.items() if v is not None})
    env.update({"HOME": str(tmp_path), "AWS_CONFIG_FILE": "/dev/null"})
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance role to look for here
    r = subprocess.run(
        [sys.executable, "-m", "fmnist.cli", "train", "--export-dir", f"{bucket}/models/fmnist"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and f"{bucket}/models/fmnist" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no run directory, no folder named s3:


def _aws() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


def test_resume_of_a_bucket_prefix_without_a_run_is_one_line(bucket, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["train", "--resume", f"{bucket}/runs/r1"], monkeypatch, capsys)
    assert code == 2
    assert err.strip() == (
        f"fmnist-job: error: {bucket}/runs/r1/results.json: not found; --resume takes a "
        f"run directory that fmnist-job train created"
    )
    assert list(tmp_path.iterdir()) == []


def test_models_list_on_a_wrong_scheme_names_it_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["models", "list", "--export-dir", "s3:/bucket/models"], monkeypatch, capsys)
    assert code == 2 and "not a bucket's URI" in err
    assert list(tmp_path.iterdir()) == []


# -----------------------------------------------------------------------------
# Versions in a bucket


def _fake_savedmodel(directory: Path) -> None:
    (directory / "variables").mkdir()
    (directory / "variables" / "variables.data-00000-of-00001").write_bytes(b"w" * 100)
    (directory / "saved_model.pb").write_bytes(b"pb")


def _publish(uri: str, run_id: str) -> str:
    from fmnist.core import export, storage

    base = storage.location(uri, "--export-dir")
    return export.publish(_fake_savedmodel, {"run_id": run_id}, base).name


def test_a_version_is_there_only_once_its_metadata_is_committed(bucket):
    base = storage.location(f"{bucket}/models/fmnist", "--export-dir")
    assert _publish(str(base), "r1") == "1"
    (base / "2" / "saved_model.pb").write_bytes(b"half an upload, no fmnist.json yet")
    assert export.versions(base) == versions.disk_versions(base) == [1]
    assert versions.resolve(base).version == 1
    assert json.loads((base / "1" / export.METADATA).read_text())["run_id"] == "r1"


def test_a_failed_upload_leaves_no_version_and_its_number_is_not_reused(bucket):
    base = storage.location(f"{bucket}/models/fmnist", "--export-dir")

    def breaks(directory: Path) -> None:
        _fake_savedmodel(directory)
        # A regular file that cannot be read (EIO), uploaded after the others: the
        # upload fails midway, as a dropped connection would.
        (directory / "variables" / "zz").symlink_to("/proc/self/mem")

    with pytest.raises(OSError):
        export.publish(breaks, {"run_id": "broken"}, base)
    assert export.versions(base) == []
    assert not base.fs.glob(f"{base.path}/1/**")  # its objects were removed again
    assert _publish(str(base), "r2") == "2"


def test_two_exporters_racing_get_different_versions_all_whole(bucket):
    uri = f"{bucket}/models/fmnist"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        got = pool.starmap(_publish, [(uri, f"r{i}") for i in range(8)])
    assert sorted(map(int, got)) == list(range(1, 9))
    base = storage.location(uri, "--export-dir")
    runs = {json.loads((base / v / export.METADATA).read_text())["run_id"] for v in got}
    assert runs == {f"r{i}" for i in range(8)}
    for v in got:
        assert (base / v / "saved_model.pb").read_bytes() == b"pb"


def _promote(uri: str, version: int) -> None:
    from fmnist.core import storage
    from fmnist.ops import versions

    versions.promote(storage.location(uri, "--export-dir"), version)


def test_promotions_racing_lose_no_history_entry(bucket):
    """Without the lease each read-modify-write of models.history.json could drop another's
    entry; with it, every promotion is in the history."""
    uri = f"{bucket}/models/fmnist"
    for i in range(6):
        _publish(uri, f"r{i}")
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pool.starmap(_promote, [(uri, v) for v in range(1, 7)])
    base = storage.location(uri, "--export-dir")
    history = versions.read_history(base)
    assert sorted(history) == [1, 2, 3, 4, 5, 6]
    config = versions.read_config(base)
    assert config.stable == history[-1] and config.base_path == uri
    assert not (base / versions.LOCK).exists()  # released


def test_a_lease_left_by_a_dead_holder_expires_and_a_live_one_is_waited_for(bucket):
    path = storage.location(f"{bucket}/m/.models.lock", "--x")
    storage.create(path, json.dumps({"owner": "dead:1", "expires": 0, "since": "then"}).encode())
    with storage.lease(path, wait=5):
        held = json.loads(path.read_text())
        assert held["owner"] != "dead:1"
        with pytest.raises(storage.Held, match="is held by .* delete it"):
            with storage.lease(path, wait=0.5):
                pass
    assert not path.exists()


def test_models_commands_on_a_bucket(bucket, tmp_path, monkeypatch, capsys):
    uri = f"{bucket}/models/fmnist"
    for i in range(3):
        _publish(uri, f"r{i}")
    monkeypatch.chdir(tmp_path)

    def models(*argv):
        return cli(["models", *argv, "--export-dir", uri], monkeypatch, capsys)

    assert models("promote", "1")[0] == 0
    code, out, _ = models("promote", "3")
    assert code == 0 and out.strip() == "stable: version 3 (was 1)"
    code, out, _ = models("rollback")
    assert out.strip() == "stable: version 1 (rolled back from 3)"
    code, out, _ = models("list", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    base = storage.location(uri, "--export-dir")
    metadata_bytes = len((base / "1" / export.METADATA).read_bytes())
    assert [(row["version"], row["labels"], row["run_id"]) for row in rows] == [
        (1, ["stable"], "r0"),
        (2, [], "r1"),
        (3, [], "r2"),
    ]
    assert rows[0]["size_bytes"] == 100 + 2 + metadata_bytes  # weights, graph, fmnist.json
    # Stable (1) is kept; after the rollback nothing is left to roll back to.
    code, out, _ = models("prune", "--keep", "0")
    assert out.strip() == "pruned versions 2, 3"
    assert export.versions(base) == [1] and not base.fs.glob(f"{base.path}/3/**")
    assert versions.read_config(base).versions == [1]  # TF Serving stops serving 3
    assert list(tmp_path.iterdir()) == []  # nothing written locally


# -----------------------------------------------------------------------------
# Training into a bucket, end to end

WEAK = '[[variant]]\nname = "weak"\nhidden = [2]\nepochs = 1\n'
STRONG = '[[variant]]\nname = "strong"\nhidden = [64]\nepochs = 2\n'


def _night(tmp: Path, name: str, sweep: str, export_dir: str, address: str):
    (tmp / f"{name}.toml").write_text(sweep)
    return run_cli(
        "train",
        "--sweep",
        tmp / f"{name}.toml",
        "--workers",
        "1",
        "--limit",
        "2000",
        "--runs-dir",
        tmp / "runs" / name,
        "--export-dir",
        export_dir,
        "--address",
        address,
        cwd=tmp,
    )


@pytest.mark.slow
def test_two_nights_export_to_a_bucket_behind_the_gate(
    bucket, tmp_path, monkeypatch, capsys, ray_cluster
):
    """On the session's Ray, whose tasks hold the S3 server's credentials."""
    uri = f"{bucket}/models/fmnist"
    first = _night(tmp_path, "n1", STRONG, uri, ray_cluster.gcs)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"-> {uri}/1" in first.stdout
    # The second night's weak winner is compared with the bucket's stable (its SavedModel
    # downloaded and scored on this run's validation split) and not promoted.
    second = _night(tmp_path, "n2", WEAK, uri, ray_cluster.gcs)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "gate: version 2 NOT promoted, labelled candidate; stable stays version 1" in (
        second.stdout
    )
    base = storage.location(uri, "--export-dir")
    assert export.versions(base) == [1, 2]
    config = versions.read_config(base)
    assert (config.stable, config.labels.get("candidate"), config.versions) == (1, 2, [1, 2])
    assert config.base_path == uri  # where TF Serving reads the versions from
    meta = export.read_metadata(base / "1")
    assert meta.variant_name == "strong" and meta.run_id
    results = json.loads((tmp_path / "runs" / "n2" / "results.json").read_text())
    assert results["export"] == f"{uri}/2" and results["gate"]["compared_with"] == 1
    # The card beside fmnist.json in the bucket, and the models commands reading it there.
    assert "**candidate**: worse than stable" in (base / "2" / "card.md").read_text()
    assert (base / "2" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(["models", "show", "2", "--export-dir", uri], monkeypatch, capsys)
    assert code == 0 and "Labels: candidate." in out, err
    code, out, _ = cli(["models", "history", "--json", "--export-dir", uri], monkeypatch, capsys)
    assert [json.loads(line)["stable"] for line in out.splitlines()] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n1.toml", "n2.toml", "runs"]


# -----------------------------------------------------------------------------
# Scoring from and into a bucket


def _photos(root: Path, test_set, n: int = 40) -> Path:
    """n test-set images as PNGs in two folders, and one corrupt file."""
    from PIL import Image

    x, _ = test_set
    for i in range(n):
        path = root / ("shoes" if i % 2 else "tops") / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).save(path)
    (root / "tops" / "corrupt.png").write_bytes(b"not an image")
    return root


def _upload(local: Path, uri: str) -> None:
    storage.upload_tree(local, storage.location(uri, "--x"))


@pytest.mark.slow
def test_score_a_bucket_with_a_model_in_a_bucket_gives_the_local_rows(
    bucket, tmp_path, scoring_model, test_set
):
    photos = _photos(tmp_path / "photos", test_set)
    _upload(photos, f"{bucket}/inbox")
    _upload(scoring_model, f"{bucket}/models/fmnist")
    work = tmp_path / "work"
    work.mkdir()
    local = run_cli("score", photos, "--model", scoring_model, "--out", tmp_path / "local.csv")
    assert local.returncode == 3, local.stderr  # the corrupt file
    remote = run_cli(
        "score",
        f"{bucket}/inbox/",
        "--model",
        f"{bucket}/models/fmnist",
        "--out",
        f"{bucket}/preds/night.csv",
        "--preview",
        f"{bucket}/preds/sheet.png",
        "--save-inputs",
        f"{bucket}/preds/seen",
        cwd=work,
    )
    assert remote.returncode == 3, remote.stderr
    assert f"with model {bucket}/models/fmnist/1 (newest; no stable label)" in remote.stderr
    assert f"under {bucket}/inbox" in remote.stderr
    assert f"wrote {bucket}/preds/night.csv (CSV, 41 rows)" in remote.stdout
    out = storage.location(f"{bucket}/preds/night.csv", "--out")
    assert out.read_text() == (tmp_path / "local.csv").read_text()
    assert storage.location(f"{bucket}/preds/sheet.png", "--x").read_bytes()[:4] == b"\x89PNG"
    seen = storage.location(f"{bucket}/preds/seen", "--x")
    assert (seen / "shoes" / "001.png.png").read_bytes()[:4] == b"\x89PNG"
    assert list(work.iterdir()) == []


@pytest.mark.slow
def test_done_in_a_bucket_moves_the_scored_objects_and_keeps_the_failed(
    bucket, tmp_path, scoring_model, test_set, monkeypatch, capsys
):
    _upload(_photos(tmp_path / "photos", test_set, n=6), f"{bucket}/inbox")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(
        ["score", f"{bucket}/inbox", "--model", scoring_model, "--out",
         f"{bucket}/preds/run1.csv", "--done", f"{bucket}/done"],
        monkeypatch,
        capsys,
    )  # fmt: skip
    assert code == 3, err
    assert f"moved 6 scored files to {bucket}/done/run1/" in err
    base = storage.location(bucket, "--x")
    keys = sorted(k.split("/", 1)[1] for k in base.fs.find(base.path))
    assert "inbox/tops/corrupt.png" in keys and "done/run1/shoes/001.png" in keys
    assert not [k for k in keys if k.startswith("inbox/") and k.endswith(("0.png", "1.png"))]


def test_score_refuses_moving_between_a_bucket_and_a_disk(bucket, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(
        ["score", f"{bucket}/inbox", "--done", tmp_path / "done"], monkeypatch, capsys
    )
    assert code == 2
    assert "files are moved within one store; name a bucket location" in err


@pytest.mark.slow
def test_a_prefix_without_objects_is_an_empty_inbox(
    bucket, tmp_path, scoring_model, monkeypatch, capsys
):
    """A bucket has no empty directories: an hourly run after --done emptied the inbox
    scores nothing and succeeds, as an empty local directory does."""
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(
        ["score", f"{bucket}/inbox", "--model", scoring_model, "--out", tmp_path / "p.csv"],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert f"score: 0 image files under {bucket}/inbox" in err
    assert (tmp_path / "p.csv").read_text().count("\n") == 1  # the header


@pytest.mark.slow
def test_score_ray_on_two_nodes_reads_the_bucket_and_gives_the_local_rows(
    s3_server, bucket, tmp_path, scoring_model, test_set, monkeypatch, capsys
):
    """The photos and the model are only in the bucket when the cluster scores: the
    decoding tasks and the predictors read them there, on whichever node they run. The
    local rows to compare with come from the command run in this process."""
    from raycluster import RayStartCluster

    photos = _photos(tmp_path / "photos", test_set, n=300)
    code, _, err = cli(
        ["score", photos, "--model", scoring_model, "--out", tmp_path / "local.csv"],
        monkeypatch,
        capsys,
    )
    assert code == 3, err
    _upload(photos, f"{bucket}/inbox")
    _upload(scoring_model, f"{bucket}/models/fmnist")
    import shutil

    shutil.rmtree(photos)
    cluster = RayStartCluster(tmp_path / "cluster", auth=False, num_cpus=1)
    cluster.env.update(s3_server.env)  # each node's credentials, as a pod's would be
    try:
        cluster.start(second_node=True)
        assert len(cluster.node_ids()) == 2
        work = tmp_path / "work"
        work.mkdir()
        r = run_cli(
            "score",
            f"{bucket}/inbox",
            "--model",
            f"{bucket}/models/fmnist",
            "--out",
            f"{bucket}/preds/ray.csv",
            "--ray",
            "--address",
            cluster.gcs,
            "--batch-size",
            "64",
            cwd=work,
            env={**cluster.env, "PYTHONPATH": str(ROOT)},
            timeout=600,
        )
    finally:
        cluster.stop()
    assert r.returncode == 3, r.stderr[-3000:]
    out = storage.location(f"{bucket}/preds/ray.csv", "--out")
    ray_csv = tmp_path / "ray.csv"
    ray_csv.write_bytes(out.read_bytes())
    assert_same_rows(read_rows(ray_csv), read_rows(tmp_path / "local.csv"))
    assert list(work.iterdir()) == []


@pytest.mark.slow
def test_a_run_directory_in_a_bucket_survives_a_killed_worker(bucket, tmp_path):
    """Checkpoints committed to the bucket after every epoch: the retried task restores
    the last one from there, not from its node's disk."""
    import signal

    runs = f"{bucket}/runs/night"
    (tmp_path / "victim.toml").write_text(
        '[[variant]]\nname = "victim"\nhidden = [256, 256]\nepochs = 6\nbatch_size = 64\n'
    )
    proc = start(
        "train", "--sweep", tmp_path / "victim.toml", "--workers", "1", "--limit", "6000",
        "--runs-dir", runs, "--export-dir", f"{bucket}/models/fmnist", cwd=tmp_path,
    )  # fmt: skip
    checkpoint = storage.location(f"{runs}/checkpoints/victim", "--x")
    wait_for((checkpoint / "latest").exists, proc, 300, "the first epoch's commit")
    epoch = (checkpoint / "latest").read_text().strip()
    pid = json.loads((checkpoint / epoch / "history.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)  # as the OOM killer, or a lost node, would
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    results = json.loads(storage.location(f"{runs}/results.json", "--x").read_text())
    victim = results["variants"][0]
    assert victim["status"] == "ok" and victim["attempts"] == 2
    assert victim["resumed_from_epoch"] >= 1
    assert len(victim["history"]["val_accuracy"]) == victim["epochs_run"] == 6
    base = storage.location(runs, "--x")
    keys = [k.split("/runs/night/", 1)[1] for k in base.fs.find(base.path)]
    assert "weights/victim.npz" in keys and "val_accuracy.png" in keys
    assert any(k.startswith("tensorboard/victim/validation/") for k in keys)
    assert [k for k in keys if k.startswith("checkpoints/")] != []
    assert results["export"] == f"{bucket}/models/fmnist/1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.toml"]


def test_runs_list_and_prune_on_a_bucket(bucket, tmp_path, monkeypatch, capsys):
    from fmnist.ops.results import RunResults, RunSettings

    base = storage.location(f"{bucket}/runs", "--runs-dir")
    RunResults(
        run_id="night-1", started_at="t", sweep=[], address="embedded",
        settings=RunSettings(val_size=10), dataset_sha256={}, train_size=1, val_size=1,
        test_size=1, wall_seconds=12.5,
    ).write(base / "night-1")  # fmt: skip
    storage.write_bytes(base / "night-2" / "weights" / "a.npz", b"partial")  # no results.json
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(
        ["runs", "list", "--json", "--runs-dir", f"{bucket}/runs"], monkeypatch, capsys
    )
    assert code == 0, err
    rows = {row["run_id"]: row for row in map(json.loads, out.splitlines())}
    assert rows["night-1"]["status"] == "failed" and rows["night-1"]["duration_seconds"] == 12.5
    assert rows["night-2"]["problem"] == "no results.json" and rows["night-2"]["started"]
    # Written just now: nothing is older than a day; everything is older than -1 days.
    code, _, _ = cli(
        ["runs", "prune", "--keep-days", "1", "--runs-dir", f"{bucket}/runs"], monkeypatch, capsys
    )
    assert code == 0 and base.fs.find(base.path)
    from fmnist.ops import runs

    assert sorted(runs.prune(base, keep_days=-1)) == ["night-1", "night-2"]
    assert base.fs.find(base.path) == [] and list(tmp_path.iterdir()) == []


def test_an_endpoint_that_is_not_s3_is_named(bucket, tmp_path, monkeypatch):
    """Python's HTTP server answers 404 with no S3 error document."""
    from raycluster import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import time
        import urllib.request

        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        r = run_cli(
            "models", "list", "--export-dir", f"{bucket}/m", cwd=tmp_path,
            env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"},
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait()
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"fmnist-job: error: --export-dir {bucket}/m: the endpoint http://127.0.0.1:{port} "
        f"(AWS_ENDPOINT_URL) answered HTTP 404 without an S3 error; is it an S3 service?"
    )


def test_score_with_a_model_key_that_is_not_there_is_one_line(
    bucket, tmp_path, monkeypatch, capsys
):
    storage.write_bytes(storage.location(f"{bucket}/inbox/a.png", "--x"), b"any bytes")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(
        ["score", f"{bucket}/inbox", "--model", f"{bucket}/models/nothing"], monkeypatch, capsys
    )
    assert code == 2
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(f"fmnist-job: error: --model {bucket}/models/nothing: no such directory; ")
    )
    assert not (tmp_path / "predictions.csv").exists()


@pytest.mark.slow
def test_a_node_lost_mid_sweep_resumes_its_variants_from_the_bucket(bucket, tmp_path):
    """Two Ray nodes; the run directory and the export only in the bucket. The worker
    node goes away while two variants train there: their retries on the head restore
    the checkpoints the lost node committed, not a file on its disk."""

    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=2)
    runs = f"{bucket}/runs/night"
    (tmp_path / "abc.toml").write_text(
        "[defaults]\nhidden = [256, 256]\nepochs = 6\nbatch_size = 64\n"
        + "".join(f'[[variant]]\nname = "{n}"\n' for n in "abc")
    )
    try:
        proc = start(
            "train", "--sweep", tmp_path / "abc.toml", "--workers", "3", "--cpus-per-worker",
            "1", "--limit", "5000", "--address", cluster.address, "--runs-dir", runs,
            "--export-dir", f"{bucket}/models/fmnist", cwd=tmp_path,
        )  # fmt: skip
        latest = [storage.location(f"{runs}/checkpoints/{n}/latest", "--x") for n in "abc"]
        wait_for(lambda: all(p.exists() for p in latest), proc, 400, "all three committed")
        cluster.remove_node(worker)  # the node is gone, and its disk with it
        _, err = proc.communicate(timeout=600)
    finally:
        cluster.shutdown()
    assert proc.returncode == 0, err[-3000:]
    results = json.loads(storage.location(f"{runs}/results.json", "--x").read_text())
    variants = results["variants"]
    assert [v["status"] for v in variants] == ["ok"] * 3, [v.get("error") for v in variants]
    retried = [v for v in variants if v["attempts"] > 1]
    assert len(retried) == 2, [(v["name"], v["attempts"]) for v in variants]
    for v in retried:
        assert v["resumed_from_epoch"] >= 1 and len(v["history"]["val_accuracy"]) == 6
    assert results["export"] == f"{bucket}/models/fmnist/1"


def test_refused_credentials_are_named(tmp_path):
    from s3server import S3Server

    server = S3Server(tmp_path / "moto.log", check_keys=True).start()
    try:
        r = run_cli(
            "train", "--export-dir", "s3://any-bucket/models", cwd=tmp_path,
            env={**server.env, "AWS_ACCESS_KEY_ID": "AKIANOTKNOWNHERE0000"},
        )  # fmt: skip
    finally:
        server.stop()
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "fmnist-job: error: --export-dir s3://any-bucket/models: the credentials were "
        "refused (InvalidAccessKeyId); check AWS_ACCESS_KEY_ID and the secret"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moto.log"]
