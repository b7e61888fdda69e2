"""Joining Ray: the cluster at --address / RAY_ADDRESS, or an embedded local Ray.

One home for connecting, shared by `train` (sweep.py) and `score --ray` (backends.py):
reachability checked in seconds, Ray 2.52+ token authentication found and switched on,
and the embedded Ray kept on loopback.
"""

from __future__ import annotations

import os
from pathlib import Path

import ray

from fmnist.core import internals

# What every task process needs in its environment, on any node.
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def default_token_path() -> Path:
    """Where Ray keeps its token when nothing else names one."""
    return Path.home() / ".ray" / "auth_token"


class ConnectError(Exception):
    """The Ray cluster at --address / RAY_ADDRESS could not be reached, or refused us."""


def connect(address: str | None) -> None:
    """Join the cluster at `address`, or start an embedded Ray bound to loopback with
    no dashboard (nothing listens beyond this machine)."""
    if address:
        _check_address(address)
    from ray.exceptions import AuthenticationError

    try:
        if address:
            _init_with_retry(address)
        else:
            # The embedded Ray's processes inherit this environment. A runtime_env
            # would do the same but keep the workers Ray prestarts at ray.init from
            # being used, as they have none (docs/decisions.md, "less start-up work").
            os.environ.update(WORKER_ENV)
            internals.ray_single_machine_mode()  # listen on 127.0.0.1 only
            # "local": a new Ray of our own. Without it, ray.init joins the cluster the
            # last `ray start` here recorded in /tmp/ray/ray_current_cluster, and waits
            # minutes on it when that cluster is gone.
            internals.ray_init_on_loopback(
                address="local", include_dashboard=False, log_to_driver=False, logging_level="ERROR"
            )
    except (ConnectionError, ValueError, RuntimeError, TimeoutError, AuthenticationError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConnectError(
            f"cannot connect to Ray at '{address}': {first}; {ADDRESS_HINT}"
        ) from None


# What every wrong-address message ends with: one wording, whichever check caught it.
ADDRESS_HINT = "check --address / RAY_ADDRESS (e.g. 'auto', 'head:6379' or 'ray://head:10001')"
CLIENT_ATTEMPTS = 3  # ray:// connects; see _init_with_retry


def _init_with_retry(address: str) -> None:
    """ray.init on a cluster. Over ray:// the client server starts a new server process
    for every connection, and that start failed now and then here ("Initialization
    failure from server"; its log: "SpecificServer startup failed"), then worked on the
    next connection (Ray's open bug ray#63202: the server process is forked while gRPC's
    threads run). A new attempt gets a new server process, so it is worth two more tries;
    each failed one costs about 40 s (seen here: the head's log shows it waiting 30 s for
    the dead process, then retrying, before the next try arrives)."""
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            ray.init(
                address=address,
                runtime_env={"env_vars": WORKER_ENV},
                log_to_driver=False,
                logging_level="ERROR",
            )
            return
        except ConnectionError as e:
            if not (
                address.startswith("ray://")
                and "Initialization failure" in str(e)
                and attempt < CLIENT_ATTEMPTS
            ):
                raise
            ray.shutdown()


AUTH_HINT = (
    "set RAY_AUTH_TOKEN to the cluster's token (or RAY_AUTH_TOKEN_PATH to a file "
    "holding it, or put it in ~/.ray/auth_token); on Kubernetes it is in the Secret "
    "fmnist-ray-auth (deploy/README.md)"
)


PROBE_SECONDS = 4.0  # each of at most two probes: the error comes within 10 s


def _check_address(address: str) -> None:
    """Find out in seconds what answers at `address`, and switch this process to Ray's
    token authentication (Ray 2.52+) when the cluster wants it and a token is found.

    ray.init on a port where something other than the right kind of Ray server answers
    waits 20 s to forever, logging a line per attempt; one small gRPC call tells at once
    (internals.ray_probe). Ray itself turns token mode on only for a local 'auto'
    cluster; for an explicit address it needs RAY_AUTH_MODE=token, and without it
    reports a timeout that does not mention authentication. The GCS (host:port) and the
    Ray client server (ray://) both answer UNAUTHENTICATED when they want a token; a
    second call with the token found checks that the cluster accepts it."""
    hostport = address.removeprefix("ray://")
    if hostport == "auto" or ":" not in hostport:
        return  # 'auto': Ray finds this node's cluster, and turns token mode on itself
    client = address.startswith("ray://")
    answer = internals.ray_probe(hostport, client, None, PROBE_SECONDS)
    if answer == "unauthenticated":
        token, source = token_for(address)
        answer = internals.ray_probe(hostport, client, token, PROBE_SECONDS)
        if answer == "unauthenticated":
            raise rejected(address, source)
        if answer == "ok" and os.environ.get("RAY_AUTH_MODE", "").strip().lower() != "token":
            os.environ["RAY_AUTH_MODE"] = "token"  # for ray.init, and what it starts
            internals.ray_reload_auth_config()  # Ray's config was read at import, without it
    if answer != "ok":
        raise ConnectError(
            f"cannot connect to Ray at '{address}': "
            f"{_what_answered(answer, hostport, client)}; {ADDRESS_HINT}"
        )


def _what_answered(answer: str, hostport: str, client: bool) -> str:
    if answer == "unimplemented":
        return (
            f"{hostport} is a Ray cluster's GCS port, not its Ray Client port (give it "
            f"without ray://, or use the client port, 10001 by default)"
            if client
            else f"{hostport} is a Ray Client server: give it as ray://{hostport}"
        )
    return {
        "http": f"{hostport} is an HTTP server, not Ray (the dashboard, 8265 by "
        f"default? Ray's GCS port is 6379 by default)",
        "silent": f"{hostport} accepted the connection but did not answer as Ray "
        f"within {PROBE_SECONDS:g} s",
        "refused": f"nothing listens at {hostport} (connection refused)",
        "unknown host": f"unknown host in {hostport}",
    }.get(answer, answer)


def rejected(address: str, source: str) -> ConnectError:
    """The error for a cluster that refused the token found in `source`."""
    where = source + (
        " (Ray writes that file when it starts a local cluster, "
        "such as fmnist-job's embedded one, so it may hold another "
        "cluster's token)"
        if source == str(default_token_path())
        else ""
    )
    return ConnectError(
        f"the Ray cluster at '{address}' rejected the authentication token from {where}: {AUTH_HINT}"
    )


def token_for(address: str) -> tuple[str, str]:
    """The token to try on a cluster that wants one, and where it came from.

    Args:
        address: the cluster's address, for the message when there is none.

    Returns:
        The token, and where it was found (for messages).
    """
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode not in ("", "token"):
        raise ConnectError(
            f"the Ray cluster at '{address}' requires token authentication, "
            f"but RAY_AUTH_MODE is '{mode}': set RAY_AUTH_MODE=token (or unset "
            f"it) and {AUTH_HINT}"
        )
    token, source = _find_token()
    if token is None:
        raise ConnectError(
            f"the Ray cluster at '{address}' requires token authentication "
            f"and no token was found: {AUTH_HINT}"
        )
    return token, source


def _find_token() -> tuple[str | None, str]:
    """The token Ray will use, in Ray's order: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH
    names, ~/.ray/auth_token. (An unreadable RAY_AUTH_TOKEN_PATH makes Ray abort the
    process, so it is an error here.)"""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        try:
            text = Path(path).expanduser().read_text().strip()
        except OSError as e:
            raise ConnectError(
                f"RAY_AUTH_TOKEN_PATH={path}: cannot read the token "
                f"({e.strerror or e}); name a readable file"
            ) from None
        if not text:
            raise ConnectError(
                f"RAY_AUTH_TOKEN_PATH={path}: the file is empty; it must hold the cluster's token"
            )
        return text, f"RAY_AUTH_TOKEN_PATH={path}"
    default = default_token_path()
    try:
        text = default.read_text().strip()
    except OSError:
        return None, ""
    return (text, str(default)) if text else (None, "")
