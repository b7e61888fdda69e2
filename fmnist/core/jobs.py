"""Running a command on a Ray cluster as a Ray job, through the Jobs API the dashboard
serves: how `score --ray` runs with a ray:// address, since Ray Data needs a driver on
the cluster and does not run through Ray Client (ray#42739).

The Jobs address is found in seconds (an HTTP probe with a timeout: the SDK itself has
none), with the same token authentication as core/cluster.py, and a job's logs are
followed until it ends.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from fmnist.core.cluster import ConnectError, rejected, token_for

DEFAULT_PORT = 8265  # the dashboard's, which serves the Jobs API
ADDRESS_VARIABLE = "RAY_API_SERVER_ADDRESS"  # the one `ray job submit` reads
PROBE_SECONDS = 4.0
AGENT_WAIT_SECONDS = 60.0  # a head just started serves the API before its agent runs
STOP_WAIT_SECONDS = 15.0

JOBS_HINT = (
    f"the Jobs API is the dashboard's, http://HEAD:{DEFAULT_PORT} by default: start the head "
    f"with it (`ray start --head --include-dashboard true`, needs ray[default]) or name "
    f"its address with {ADDRESS_VARIABLE}=http://HEAD:PORT"
)


class JobError(Exception):
    """The job could not be submitted, or ended without running its command."""


def jobs_address(address: str) -> str:
    """The Jobs API address for a cluster named by `address`.

    Args:
        address: an http(s):// Jobs address, or ray://HOST:PORT (the Ray Client port).

    Returns:
        RAY_API_SERVER_ADDRESS when set; an http(s):// address as given; for
        ray://HOST:PORT, http://HOST:8265 (the dashboard on the same host).
    """
    named = os.environ.get(ADDRESS_VARIABLE, "").strip()
    if named:
        return named.rstrip("/")
    if address.startswith(("http://", "https://")):
        return address.rstrip("/")
    host = urlsplit(address).hostname or ""
    return f"http://{host}:{DEFAULT_PORT}"


def _probe(url: str, headers: dict) -> str:
    """What answers /api/version at `url`: 'ok', 'unauthenticated', 'forbidden' or a
    phrase saying what is wrong."""
    import requests

    where = urlsplit(url).netloc or url
    try:
        r = requests.get(f"{url}/api/version", headers=headers, timeout=PROBE_SECONDS)
    except requests.exceptions.ConnectTimeout:
        return f"{where} did not answer within {PROBE_SECONDS:g} s"
    except requests.exceptions.ReadTimeout:
        return f"{where} accepted the connection but did not answer within {PROBE_SECONDS:g} s"
    except requests.exceptions.ConnectionError as e:
        refused = "refused" in str(e).lower()
        return f"nothing listens at {where}" + (" (connection refused)" if refused else "")
    except requests.exceptions.RequestException as e:
        return f"{where}: {type(e).__name__}"
    if r.status_code == 401:
        return "unauthenticated"
    if r.status_code == 403:
        return "forbidden"
    try:
        ok = r.status_code == 200 and "ray_version" in r.json()
    except ValueError:
        ok = False
    return "ok" if ok else f"{where} answered HTTP {r.status_code}, not as Ray's Jobs API"


def client(address: str):
    """A JobSubmissionClient for the cluster named by `address`, checked in seconds.

    Args:
        address: what the user gave (ray://HOST:PORT or an http(s):// Jobs address).

    Returns:
        The client, with the cluster's token when it wants one.

    Raises:
        ConnectError: nothing serves the Jobs API there, or it wants a token that is
            missing or not accepted.
    """
    url = jobs_address(address)
    headers: dict = {}
    answer = _probe(url, headers)
    if answer in ("unauthenticated", "forbidden"):
        token, source = token_for(url)
        headers = {"Authorization": f"Bearer {token}"}
        answer = _probe(url, headers)
        if answer in ("unauthenticated", "forbidden"):
            raise rejected(url, source)
    if answer != "ok":
        raise ConnectError(f"cannot reach Ray's Jobs API at {url}: {answer}; {JOBS_HINT}")
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(url, headers=headers)


@dataclass
class Outcome:
    status: str  # Ray's JobStatus: SUCCEEDED, FAILED, STOPPED
    exit_code: int | None  # the command's, when it ran
    message: str  # Ray's, for a job whose command did not run


class Job:
    """A command submitted as a Ray job: follow its logs, stop it, its outcome."""

    def __init__(self, jobs, entrypoint: str, env: dict | None = None):
        """Submit `entrypoint` (a shell command run on the head) with `env` for it and
        its Ray tasks, retrying while the head's agent is still starting."""
        self.jobs = jobs
        deadline = time.monotonic() + AGENT_WAIT_SECONDS
        while True:
            try:
                self.id = jobs.submit_job(
                    entrypoint=entrypoint, runtime_env={"env_vars": env or {}}
                )
                return
            except RuntimeError as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                if "No available agent" not in first or time.monotonic() > deadline:
                    raise JobError(f"the cluster did not accept the job: {first}") from None
                time.sleep(1.0)

    def follow(self, write) -> Outcome:
        """Pass the job's logs to `write` as they come, until it ends.

        Returns:
            How it ended.
        """

        async def tail():
            async for text in self.jobs.tail_job_logs(self.id):
                write(text)

        asyncio.run(tail())
        return self._outcome(wait=30.0)

    def stop(self) -> Outcome:
        """Stop the job (its command gets SIGTERM, then SIGKILL) and wait until it has."""
        self.jobs.stop_job(self.id)
        return self._outcome(wait=STOP_WAIT_SECONDS)

    def _outcome(self, wait: float) -> Outcome:
        deadline = time.monotonic() + wait
        info = self.jobs.get_job_info(self.id)
        while not info.status.is_terminal() and time.monotonic() < deadline:
            time.sleep(0.2)
            info = self.jobs.get_job_info(self.id)
        return Outcome(str(info.status.value), info.driver_exit_code, (info.message or "").strip())
