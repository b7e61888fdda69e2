"""`fmnist-job guard`, the nightly job's catch-up guard: real processes racing for a real
lease file, on the real clock (the nights are scheduled relative to now, so a backlog
replays in seconds); the lateness and repeat rules at exact times, with the time passed
to guard.acquire. The guarded command is a small Python program that records that it
ran."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fmnist.ops import guard

from conftest import FMNIST_JOB, ROOT

NIGHT = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.timezone.utc)
# The guarded command: appends its name to a file, then takes a while.
RECORD = (
    "import sys, time; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n'); "
    "time.sleep(float(sys.argv[3]))"
)


def ago(**delta) -> dt.datetime:
    """A scheduled time that long before now, on a whole minute (as a RayJob's name
    gives it)."""
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(**delta)).replace(
        second=0, microsecond=0
    )


def rayjob_name(when: dt.datetime) -> str:
    return f"rayjob-fmnist-nightly-{int(when.timestamp()) // 60}"


def start(tmp_path, scheduled: str, sleep: float = 2.0, extra=()):
    return subprocess.Popen(
        [
            *FMNIST_JOB,
            "guard",
            "--lease",
            str(tmp_path / "lease"),
            "--scheduled",
            scheduled,
            *extra,
            "--",
            sys.executable,
            "-c",
            RECORD,
            str(tmp_path / "ran"),
            scheduled,
            str(sleep),
        ],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def ran(tmp_path) -> list[str]:
    path = tmp_path / "ran"
    return path.read_text().split() if path.exists() else []


def test_a_backlog_of_five_missed_nights_runs_once(tmp_path):
    """The operator was down five nights; when it comes back an hour after the fifth
    tick, the RayCronJob creates all five RayJobs at once. One runs: the newest."""
    night = ago(hours=1)
    nights = [night - dt.timedelta(days=d) for d in range(4, -1, -1)]
    procs = [start(tmp_path, rayjob_name(n)) for n in nights]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 5
    assert ran(tmp_path) == [rayjob_name(night)]
    skipped = [err for _, err in outs if "skipped: scheduled for" in err]
    assert len(skipped) == 4 and all(len(e.strip().splitlines()) == 1 for e in skipped)
    assert "25.0 h ago (more than --max-lateness-hours 6)" in "".join(skipped)
    assert json.loads((tmp_path / "lease").read_text())["scheduled"] == night.isoformat()


def test_backlog_within_the_lateness_runs_once_too(tmp_path):
    """An hourly schedule with --max-lateness-hours 6: five missed ticks are all 'on
    time'. The one that takes the lease runs; the others find it held, or find a run for
    a later-or-same tick already started."""
    last = ago(minutes=30)
    ticks = [last - dt.timedelta(hours=h) for h in range(4, -1, -1)]
    procs = [start(tmp_path, t.isoformat(), sleep=4) for t in ticks]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 5
    assert len(ran(tmp_path)) == 1, outs


def test_overlap_is_refused_and_a_night_runs_once(tmp_path):
    night = ago(hours=2)
    first = start(tmp_path, rayjob_name(night), sleep=6)
    time.sleep(3)  # the first holds the lease by now (the guard starts in < 1 s)
    second = start(tmp_path, rayjob_name(night))
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0 and "skipped: another run holds" in err
    assert first.wait(timeout=60) == 0
    again = start(tmp_path, rayjob_name(night))  # a retried RayJob, same night
    _, err = again.communicate(timeout=60)
    assert f"skipped: a run scheduled for {night.isoformat()} already started" in err
    nxt = night + dt.timedelta(hours=1)
    later = start(tmp_path, rayjob_name(nxt), sleep=0)
    assert later.wait(timeout=60) == 0
    assert ran(tmp_path) == [rayjob_name(night), rayjob_name(nxt)]


def test_a_killed_run_releases_the_lease(tmp_path):
    night = ago(hours=2)
    victim = start(tmp_path, rayjob_name(night), sleep=60)
    for _ in range(100):  # until the guarded command has started
        if ran(tmp_path):
            break
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)  # the guard exec'd the command: same process
    victim.wait(timeout=30)
    nxt = night + dt.timedelta(hours=1)
    after = start(tmp_path, rayjob_name(nxt), sleep=0)
    _, err = after.communicate(timeout=60)
    assert after.returncode == 0 and f"running (scheduled {nxt:%Y-%m-%d %H:%M} UTC" in err


def test_lateness_and_repeats_at_exact_times(tmp_path):
    """The rules with the clock given: at most --max-lateness-hours late (the limit
    itself is on time), never a night at or before the last one started, never while
    the lease is held; the lease records the time the run started."""
    lease = tmp_path / "lease"
    fd, message = guard.acquire(lease, NIGHT, 6, now=NIGHT + dt.timedelta(hours=6))
    assert fd is not None and message.startswith("running (scheduled 2026-11-27 02:00 UTC")
    saved = json.loads(lease.read_text())
    assert (saved["scheduled"], saved["started"]) == (
        NIGHT.isoformat(),
        "2026-11-27T08:00:00+00:00",
    )
    held, message = guard.acquire(
        lease, NIGHT + dt.timedelta(days=1), 6, now=NIGHT + dt.timedelta(days=1)
    )
    assert held is None and message.startswith(f"skipped: another run holds {lease}.lock")
    os.close(fd)
    for scheduled, now, words in [
        (
            NIGHT - dt.timedelta(days=1),
            NIGHT + dt.timedelta(hours=1),
            "25.0 h ago (more than --max-lateness-hours 6)",
        ),
        (
            NIGHT,
            NIGHT + dt.timedelta(hours=1),
            "a run scheduled for 2026-11-27T02:00:00+00:00 already started",
        ),
        (NIGHT - dt.timedelta(hours=1), NIGHT + dt.timedelta(hours=1), "already started"),
        (
            NIGHT + dt.timedelta(days=1),
            NIGHT + dt.timedelta(days=1, hours=6, seconds=1),
            "6.0 h ago",
        ),
    ]:
        fd, message = guard.acquire(lease, scheduled, 6, now=now)
        assert fd is None and words in message, (scheduled, message)
    fd, message = guard.acquire(
        lease, NIGHT + dt.timedelta(days=1), 6, now=NIGHT + dt.timedelta(days=1, minutes=1)
    )
    assert fd is not None
    os.close(fd)
    assert json.loads(lease.read_text())["scheduled"] == (NIGHT + dt.timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    "value, expected",
    [
        (rayjob_name(NIGHT), NIGHT),
        (rayjob_name(NIGHT) + "-x7k9q", NIGHT),  # the RayCluster's name, ray.io/cluster
        ("fmnist-train-nightly-" + str(int(NIGHT.timestamp()) // 60), NIGHT),  # a CronJob's Job
        ("2026-11-27T02:00:00Z", NIGHT),
        ("2026-11-27T03:00:00+01:00", NIGHT),
        ("2026-11-27T02:00:00", NIGHT),  # no zone: UTC, as the schedule's Etc/UTC
        ("", None),
    ],
)
def test_scheduled_time_from_a_rayjob_name_or_a_timestamp(value, expected):
    assert guard.scheduled_time(value) == expected


def test_bad_input_is_one_line_and_exit_two(tmp_path):
    for args, words in (
        (["--scheduled", "fmnist-nightly-x7k9q", "--", "true"], "neither an RFC 3339"),
        ([], "no command to run"),
    ):
        proc = subprocess.run(
            [*FMNIST_JOB, "guard", "--lease", str(tmp_path / "l"), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2 and words in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "l").exists()


def test_a_rayjob_name_without_a_time_warns_and_keeps_the_lease(tmp_path):
    """KubeRay versions that name RayJobs <cronjob>-<random> give no time to check:
    the run goes ahead (a night is not lost to a naming change), the lease still holds."""
    env = {**os.environ, "FMNIST_JOB_NAME": "fmnist-nightly-x7k9q"}
    proc = subprocess.run(
        [
            *FMNIST_JOB,
            "guard",
            "--lease",
            str(tmp_path / "lease"),
            "--",
            sys.executable,
            "-c",
            "print('ran')",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout == "ran\n"
    assert "job name 'fmnist-nightly-x7k9q' carries no scheduled time" in proc.stderr
    env["FMNIST_JOB_NAME"] = rayjob_name(ago(days=1))
    proc = subprocess.run(
        [
            *FMNIST_JOB,
            "guard",
            "--lease",
            str(tmp_path / "lease"),
            "--",
            sys.executable,
            "-c",
            "print('ran')",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout == "" and "24.0 h ago" in proc.stderr
