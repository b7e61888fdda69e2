"""fmnist/core/files.py: the one way outputs are written (aside, fsync, rename), and
scratch directories a killed process leaves swept."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fmnist.core import files


def test_atomic_file_replaces_the_target_whole_with_the_umask_mode(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with files.atomic_file(target, "w") as f:
        f.write("new")
        assert target.read_text() == "old"  # nobody sees the new file half-written
    assert target.read_text() == "new"
    assert oct(target.stat().st_mode & 0o777) == oct(files.default_mode(0o666))
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.parametrize("helper", ["atomic_file", "atomic_path"])
def test_an_error_leaves_the_target_and_no_temporary(tmp_path, helper):
    target = tmp_path / "weights.h5"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with getattr(files, helper)(target) as handle:
            if helper == "atomic_path":
                handle.write_bytes(b"half")
            else:
                handle.write(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.h5"]


def test_atomic_path_gives_a_name_with_the_suffix_a_writer_needs(tmp_path):
    target = tmp_path / "latest.weights.h5"
    with files.atomic_path(target, suffix=".weights.h5") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".weights.h5")
        assert tmp.name.startswith(".")  # hidden while it is written
        tmp.write_bytes(b"w")
    assert target.read_bytes() == b"w" and not tmp.exists()


def test_write_json_atomic_creates_the_directory(tmp_path):
    target = tmp_path / "a" / "b" / "results.json"
    files.write_json_atomic(target, {"x": [1, 2]})
    assert json.loads(target.read_text()) == {"x": [1, 2]}
    assert target.read_text().endswith("\n")


def test_check_writable(tmp_path):
    files.check_writable(tmp_path / "new" / "dir")
    assert (tmp_path / "new" / "dir").is_dir() and not os.listdir(tmp_path / "new" / "dir")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        files.check_writable(tmp_path / "file" / "sub")


def test_scratch_dir_sweeps_what_a_killed_process_left(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    namespace = files._namespace()
    assert namespace is not None  # Linux: the sweep is on
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"fmnist-x-{namespace}-{dead.pid}-abc"
    (left / "checkpoint").mkdir(parents=True)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = tmp_path / f"fmnist-x-{namespace}-{alive.pid}-abc"
        elsewhere = tmp_path / f"fmnist-x-4026000000-{dead.pid}-abc"  # another namespace
        other_kind = tmp_path / f"fmnist-y-{namespace}-{dead.pid}-abc"
        for path in (running, elsewhere, other_kind):
            path.mkdir()
        with files.scratch_dir("fmnist-x-") as mine:
            assert Path(mine).name.startswith(f"fmnist-x-{namespace}-{os.getpid()}-")
            assert not left.exists()
            assert running.is_dir() and elsewhere.is_dir() and other_kind.is_dir()
        assert not Path(mine).exists()
    finally:
        alive.kill()
        alive.wait()
