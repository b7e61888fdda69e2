"""`fmnist-job guard`: run a scheduled job at most once at a time, and never too late.

The RayCronJob (KubeRay 1.7) has no concurrencyPolicy and no startingDeadlineSeconds:
after operator downtime or a lifted `suspend`, every missed night's RayJob can start at
once. So the job guards itself, with what every run shares, the volume:

  lateness  the run's scheduled time (from its RayJob's name, or an explicit timestamp)
            more than --max-lateness-hours ago: skip. Of a backlog of nightly runs, all
            but the newest are a day or more late.
  overlap   an exclusive lock (fcntl.flock) on `<lease>.lock`, taken without waiting and
            held by the guarded command itself (the guard execs it with the lock's file
            descriptor open), so it ends when that process ends, however it ends.
  repeats   `<lease>` (JSON) records the scheduled time of the last run started; a run
            scheduled at or before it is skipped (a retried or re-created RayJob for a
            night that already ran).

A skipped run prints one line and exits 0: a skip is the job working, not failing (and a
non-zero exit would make KubeRay retry it).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import socket
from pathlib import Path

from fmnist.core.files import write_json_atomic

# KubeRay's RayCronJob names the RayJobs it creates <prefix>-<scheduled time in minutes
# since the epoch> in the source read for this (the CronJob controller's convention);
# another version names them <cronjob>-<5 random characters> and puts the time in the
# annotation ray.io/cronjob-scheduled-timestamp instead. Both are accepted: a name whose
# last part is a minute count, or an RFC 3339 timestamp.
# The RayCluster a RayJob creates is named <RayJob name>-<5 random characters>, and its
# pods carry that in their ray.io/cluster label: the minute count may be followed by it.
MINUTES_SUFFIX = re.compile(r"-(\d{8,})(?:-[a-z0-9]{5})?$")


class GuardError(Exception):
    """A --scheduled value that is neither a timestamp nor a RayJob name with one."""


def scheduled_time(value: str | None) -> dt.datetime | None:
    """The scheduled time `value` names (UTC), or None when it names none (empty)."""
    value = (value or "").strip()
    if not value:
        return None
    if (when := time_in_name(value)) is not None:
        return when
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GuardError(
            f"--scheduled {value!r}: neither an RFC 3339 time (2026-11-27T02:00:00Z) "
            f"nor a RayJob name ending in -<minutes since the epoch>"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def time_in_name(name: str) -> dt.datetime | None:
    """The scheduled time a RayJob's name ends with, or None."""
    match = MINUTES_SUFFIX.search(name.strip())
    return dt.datetime.fromtimestamp(int(match.group(1)) * 60, dt.timezone.utc) if match else None


def acquire(
    lease: Path,
    scheduled: dt.datetime | None,
    max_lateness_hours: float,
    now: dt.datetime | None = None,
) -> tuple[int | None, str]:
    """Take the lease for a run, or say why the run is skipped.

    Args:
        lease: the lease file (its lock beside it, `<lease>.lock`).
        scheduled: when the run was scheduled (UTC), or None: lateness not checked.
        max_lateness_hours: skip a run that starts later than this after `scheduled`.
        now: the time to judge lateness by and record; the clock's when None.

    Returns:
        (lock fd, message): a held lock and why the run goes ahead, or (None, why it
        is skipped). The caller keeps the fd open for as long as the run lasts.
    """
    current = now or dt.datetime.now(dt.timezone.utc)
    if scheduled is not None:
        late = (current - scheduled).total_seconds() / 3600
        if late > max_lateness_hours:
            return None, (
                f"skipped: scheduled for {scheduled:%Y-%m-%d %H:%M} UTC, "
                f"{late:.1f} h ago (more than --max-lateness-hours "
                f"{max_lateness_hours:g})"
            )
    lease.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{lease}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = _read(lease)
        return None, (
            f"skipped: another run holds {lease}.lock (started "
            f"{holder.get('started', '?')} on {holder.get('host', '?')}, scheduled "
            f"{holder.get('scheduled') or '?'})"
        )
    last = _read(lease).get("scheduled")
    if scheduled is not None and last and scheduled <= scheduled_time(last):
        os.close(fd)
        return None, (
            f"skipped: a run scheduled for {last} already started "
            f"(this one: {scheduled.isoformat()})"
        )
    write_json_atomic(
        lease,
        {
            "scheduled": scheduled.isoformat() if scheduled else last,
            "started": current.isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        },
    )
    when = (
        f"scheduled {scheduled:%Y-%m-%d %H:%M} UTC"
        if scheduled
        else "no scheduled time given: lateness not checked"
    )
    return fd, f"running ({when}; holding {lease}.lock)"


def _read(lease: Path) -> dict:
    try:
        saved = json.loads(lease.read_text())
        return saved if isinstance(saved, dict) else {}
    except (OSError, ValueError):
        return {}
