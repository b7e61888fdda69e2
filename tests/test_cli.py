"""The command line: fast help, one-line errors, exit code 2 for bad arguments. What only a
fresh process shows (what --help imports, Ray's own start-up) runs in one; the help's
text and the refusals of bad arguments come from the real entry point called in this
process (its help is the same text a fresh process prints, COLUMNS as set)."""

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from fmnist.cli import app

from conftest import ROOT, cli, run_cli


def test_help_imports_neither_tensorflow_nor_ray():
    code = (
        "import sys\nfrom fmnist.cli import main\nsys.argv = ['fmnist-job', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'ray', 'keras', 'optuna') if m in sys.modules]\n"
        "assert not heavy, heavy\nprint('light')"
    )
    for args in (["--help"], ["train", "--help"], ["score", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-c", code.replace("'--help'", repr(args)[1:-1])],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert proc.returncode == 0 and "light" in proc.stdout, proc.stderr


# A process that ends the way `fmnist-job` ends, with `MODE=plain` the interpreter's way.
ENDING = """
import atexit, os, sys, threading, time

class Teardown:
    def __del__(self):
        print("teardown ran")

kept = Teardown()
atexit.register(print, "exit handler ran")
threading.Thread(target=lambda: (time.sleep(0.3), print("thread done"))).start()
sys.argv = ["fmnist-job", "--nope"]
from fmnist.cli.main import main, run
if os.environ.get("MODE") == "plain":
    sys.exit(main())
run()
print("not reached")
"""


@pytest.mark.parametrize("mode", ["entry point", "plain"])
def test_the_process_ends_after_its_threads_and_exit_handlers_but_before_teardown(mode):
    """The entry point leaves with the command's exit code once the threads it left
    running are done and the atexit handlers have run, its output flushed; it skips the
    interpreter's teardown only, where a native thread of Ray's aborted a `train` in CI.
    The plain ending shows what the teardown would have run."""
    proc = subprocess.run(
        [sys.executable, "-c", ENDING],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**__import__("os").environ, "MODE": mode},
    )
    assert proc.returncode == 2, proc.stderr
    assert "No such option: --nope" in proc.stderr
    teardown = ["teardown ran"] if mode == "plain" else []
    assert proc.stdout.splitlines() == ["thread done", "exit handler ran", *teardown]


def leaf_commands(command=None, path=()) -> list[tuple[tuple[str, ...], object]]:
    """Every runnable command of the real app as (path, Click command), groups walked."""
    command = command or typer.main.get_command(app)
    if hasattr(command, "commands"):
        return [
            leaf
            for name, sub in sorted(command.commands.items())
            for leaf in leaf_commands(sub, (*path, name))
        ]
    return [(path, command)]


LEAVES = leaf_commands()


def test_the_command_walk_finds_every_command():
    names = {" ".join(path) for path, _ in LEAVES}
    assert {"train", "score", "guard", "models list", "runs prune"} <= names, names


@pytest.mark.parametrize("path, command", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_option_has_help_text(path, command, monkeypatch, capsys):
    """The options are read from the command itself, so a new one cannot be missed."""
    options = [p for p in command.params if p.param_type_name == "option" and not p.hidden]
    assert options, path
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = cli([*path, "--help"], monkeypatch, capsys)
    assert code == 0, err
    for param in options:
        option = max(param.opts, key=len)
        assert len(param.help or "") > 20, (path, option)
        # Plain help wraps a long option's text onto the next lines: compare words.
        assert f"{option} " in out or f"{option}\n" in out, option
        assert " ".join(param.help.split())[:40] in " ".join(out.split()), option


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--workers", "0"], "'--workers'"),
        (["train", "--workers", "many"], "'--workers'"),
        (["train", "--epochs", "-1"], "'--epochs'"),
        (["train", "--frobnicate"], "No such option: --frobnicate"),
        (["train", "--sweep", "missing.toml"], "missing.toml: sweep file not found"),
        (["train", "--limit", "1000", "--val-size", "2000"], "--val-size 2000 must be smaller"),
        (["nonsense"], "No such command"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args, expected, monkeypatch, capsys):
    code, _, err = cli(args, monkeypatch, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in err


def test_bad_sweep_file_is_refused_before_anything_starts(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[variant]]\nname = "x"\nhidden = [64]\ndropuot = 0.2\n')
    code, _, err = cli(["train", "--sweep", bad], monkeypatch, capsys)
    assert code == 2
    assert f"{bad}: variant 'x': unknown key 'dropuot'" in err


def test_export_dir_that_is_a_file(tmp_path, monkeypatch, capsys):
    f = tmp_path / "models"
    f.write_text("not a dir")
    code, _, err = cli(["train", "--export-dir", f], monkeypatch, capsys)
    assert code == 2 and "is a file" in err


@pytest.mark.slow
def test_corrupt_data_dir_exits_2_naming_the_file(tmp_path):
    import shutil

    from fmnist.core import data

    d = tmp_path / "fm"
    shutil.copytree(data.BUNDLED_DIR, d)
    (d / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    proc = run_cli("train", "--data-dir", d, "--limit", "1000", cwd=tmp_path)
    assert proc.returncode == 2
    assert "train-labels-idx1-ubyte.gz: sha256" in proc.stderr
    assert len(proc.stderr.strip().splitlines()[-1:]) == 1 and "Traceback" not in proc.stderr
    # The default runs/<id>/ was made to check it is writable, and taken back.
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_bad_data_is_named_before_an_unreachable_cluster(tmp_path, damage):
    """The data loads while Ray starts; when both are wrong, the data is named (a
    missing file is found before anything connects, a corrupt one while connecting)."""
    import shutil

    from fmnist.core import data

    d = tmp_path / "fm"
    shutil.copytree(data.BUNDLED_DIR, d)
    target = d / "t10k-images-idx3-ubyte.gz"
    if damage == "missing":
        target.unlink()
    else:
        target.write_bytes(b"\x1f\x8b garbage")
    proc = run_cli(
        "train", "--data-dir", d, "--address", "127.0.0.1:1", "--runs-dir", tmp_path / "run",
        "--export-dir", tmp_path / "new" / "models",
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"{target}: {damage if damage == 'missing' else 'sha256'}" in proc.stderr
    assert "127.0.0.1:1" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()  # no empty run directory left behind
    assert not (tmp_path / "new").exists()  # nor the export directory it made


@pytest.mark.slow
def test_unknown_ray_address_exits_2(tmp_path):
    proc = run_cli(
        "train",
        "--address",
        "127.0.0.1:1",
        "--limit",
        "1000",
        "--runs-dir",
        tmp_path / "run",
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot connect to Ray at '127.0.0.1:1'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "option, value",
    [
        ("--sweep", "jobs/best.toml"),
        ("--epochs", "3"),
        ("--limit", "2000"),
        ("--val-size", "500"),
        ("--runs-dir", "elsewhere"),
    ],
)
def test_resume_refuses_options_it_would_ignore(tmp_path, option, value, monkeypatch, capsys):
    code, _, err = cli(["train", "--resume", tmp_path, option, value], monkeypatch, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"drop {option}" in lines[0], err


def test_a_non_empty_runs_dir_is_refused_without_resume(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    code, _, err = cli(
        ["train", "--runs-dir", run, "--export-dir", tmp_path / "models"], monkeypatch, capsys
    )
    assert code == 2
    assert err.strip() == (
        f"fmnist-job: error: --runs-dir {run} is not empty; name "
        f"a new directory, or continue that run with --resume {run}"
    )
    assert [p.name for p in run.iterdir()] == ["checkpoints"]
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("option", ["--export-dir", "--runs-dir"])
@pytest.mark.parametrize("where", ["under a file", "read-only"])
def test_unwritable_output_dirs_are_found_before_training(
    tmp_path, option, where, monkeypatch, capsys
):
    """Exit 2 with one line in seconds, where it used to be a traceback and exit 1 after
    the whole sweep. (Root passes permission bits, so: a path through a file, and a
    directory of /proc.)"""
    (tmp_path / "file").write_text("x")
    bad = tmp_path / "file" / "sub" if where == "under a file" else Path("/proc/fmnist-job")
    others = {"--export-dir": tmp_path / "models", "--runs-dir": tmp_path / "run"}
    others[option] = bad
    argv = ["train", *[x for kv in others.items() for x in kv], "--limit", "1000"]
    code, _, err = cli(argv, monkeypatch, capsys)
    assert code == 2, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"fmnist-job: error: {option} {bad}: cannot write there"
    ), err
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.parametrize("content", ["{not json", '{"variants": []}'])
def test_resume_from_a_corrupt_results_json_exits_2(tmp_path, content, monkeypatch, capsys):
    (tmp_path / "results.json").write_text(content)
    code, _, err = cli(["train", "--resume", tmp_path], monkeypatch, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"fmnist-job: error: {tmp_path / 'results.json'}: "
    ), err
    assert "cannot resume from it" in lines[0]
    assert (tmp_path / "results.json").read_text() == content  # left as it was


def test_dry_run_prints_the_expanded_sweep_and_starts_nothing(tmp_path, sweep_file):
    sweep = sweep_file(
        '[[variant]]\nname = "one"\nhidden = [8]\n'
        '[[grid]]\nname = "g"\nhidden = [[16], [32, 16]]\nseed = [0, 1]\n'
    )
    code = (
        "import sys\nfrom fmnist.cli import main\n"
        f"sys.argv = ['fmnist-job', 'train', '--sweep', {str(sweep)!r}, '--dry-run']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('tensorflow', 'ray', 'keras') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**__import__("os").environ, "COLUMNS": "120"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "5 variants in" in proc.stdout
    for name in ("one", "g-h16-s0", "g-h16-s1", "g-h32x16-s0", "g-h32x16-s1"):
        assert f" {name} " in proc.stdout, proc.stdout
    assert list(tmp_path.iterdir()) == [sweep]  # no runs/, no models/


def test_top_level_help_gives_each_command_one_whole_sentence(monkeypatch, capsys):
    """Read from the help itself: each command's summary is one sentence, ending in a
    full stop on its own line group, not a docstring cut mid-sentence."""
    code, out, err = cli(["--help"], monkeypatch, capsys)
    assert code == 0, err
    commands = out.split("Commands")[1]
    summaries, current = {}, None
    for line in commands.splitlines():
        body = line.strip("│ ").rstrip()
        first = body.split(" ", 1)
        if first[0] in ("train", "score", "guard", "models", "runs"):
            current = first[0]
            summaries[current] = first[1].strip() if len(first) > 1 else ""
        elif current and body and not body.startswith(("─", "╰")):
            summaries[current] += " " + body.strip()
    assert set(summaries) == {"train", "score", "guard", "models", "runs"}
    for name, text in summaries.items():
        assert text.endswith("."), (name, text)
        assert text.count(". ") == 0, (name, text)  # one sentence, not a paragraph cut short


def test_help_reads_right(monkeypatch, capsys):
    """Read off the help a user gets: brackets survive, flags take no value, and no
    command's summary is cut."""

    def help_of(*args):
        return cli([*args, "--help"], monkeypatch, capsys)[1]

    train, score = help_of("train"), help_of("score")
    assert "the sweep file's [ensemble] size" in " ".join(train.split())
    assert "<bool>" not in train + score and "--dry-run " in train
    for args in ((), ("models",), ("runs",)):
        out = help_of(*args)
        commands = out.split("Commands:", 1)[1].strip().splitlines()
        assert commands and not [c for c in commands if c.rstrip().endswith("...")], out


@pytest.mark.slow
def test_preview_where_no_file_can_be_made_fails_before_scoring(scoring_model, tmp_path):
    # /proc passes os.access(W_OK) for root, yet no file can be created in it.
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "in" / "a.png")
    proc = run_cli(
        "score",
        tmp_path / "in",
        "--model",
        scoring_model,
        "--out",
        tmp_path / "p.csv",
        "--preview",
        "/proc/sheet.png",
    )
    assert proc.returncode == 2, proc.stderr
    assert "--preview /proc/sheet.png: cannot write there" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "p.csv").exists()
