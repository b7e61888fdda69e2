"""Joining Ray: the cluster at --address / RAY_ADDRESS, or an embedded local Ray.

One home for connecting, shared by `train` (sweep.py) and `score --ray` (backends.py):
reachability checked in seconds, Ray 2.52+ token authentication found and switched on,
and the embedded Ray kept on loopback.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import ray

from fmnist.core import internals

# What every task process needs in its environment, on any node.
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


class ConnectError(Exception):
    """The Ray cluster at --address / RAY_ADDRESS could not be reached, or refused us."""


def connect(address: str | None) -> None:
    """Join the cluster at `address`, or start an embedded Ray bound to loopback with
    no dashboard (nothing listens beyond this machine)."""
    if address:
        _check_reachable(address)
        _prepare_authentication(address)
    from ray.exceptions import AuthenticationError
    try:
        if address:
            _init_with_retry(address)
        else:
            # The embedded Ray's processes inherit this environment. A runtime_env
            # would do the same but keep the workers Ray prestarts at ray.init from
            # being used (they have no runtime_env): measured, four tasks started in
            # 2.0 s with it, 1.0 s without.
            os.environ.update(WORKER_ENV)
            internals.ray_single_machine_mode()  # listen on 127.0.0.1 only
            # "local": a new Ray of our own. Without it, ray.init joins the cluster the
            # last `ray start` here recorded in /tmp/ray/ray_current_cluster, and waits
            # minutes on it when that cluster is gone.
            internals.ray_init_on_loopback(address="local", include_dashboard=False,
                                           log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError, RuntimeError, TimeoutError, AuthenticationError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConnectError(f"cannot connect to Ray at '{address}': {first}; check "
                           f"--address / RAY_ADDRESS (e.g. 'auto' or 'ray://head:10001')") from None


CLIENT_ATTEMPTS = 3  # ray:// connects; see _init_with_retry


def _init_with_retry(address: str) -> None:
    """ray.init on a cluster. Over ray:// the client server starts a new server process
    for every connection, and that start failed now and then here ("Initialization
    failure from server"; its log: "SpecificServer startup failed"), then worked on the
    next connection (seen here in test_auth.py in two runs in a row on a loaded 2-core
    machine, then not in the next three connections). A new attempt gets a new server
    process, so it is worth two more tries."""
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            ray.init(address=address, runtime_env={"env_vars": WORKER_ENV},
                     log_to_driver=False, logging_level="ERROR")
            return
        except ConnectionError as e:
            if not (address.startswith("ray://") and "Initialization failure" in str(e)
                    and attempt < CLIENT_ATTEMPTS):
                raise
            ray.shutdown()


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a host:port nobody listens on; ray.init would retry for minutes."""
    hostport = address.removeprefix("ray://")
    if hostport == "auto" or ":" not in hostport:
        return  # 'auto' is resolved by Ray itself, from this node's running cluster
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        raise ConnectError(f"cannot connect to Ray at '{address}': {e}; check --address / "
                           f"RAY_ADDRESS (e.g. 'auto' or 'ray://head:10001')") from None


AUTH_HINT = ("set RAY_AUTH_TOKEN to the cluster's token (or RAY_AUTH_TOKEN_PATH to a file "
             "holding it, or put it in ~/.ray/auth_token); on Kubernetes it is in the Secret "
             "fmnist-ray-auth (deploy/README.md)")


def _prepare_authentication(address: str, timeout: float = 5.0) -> None:
    """Ask the cluster whether it wants a token (Ray 2.52+ token authentication), and
    switch this process to token mode when it does and one is found.

    Ray itself turns token mode on only for a local 'auto' cluster; for an explicit
    address it needs RAY_AUTH_MODE=token, and without it waits 20 s (host:port) or 30 s
    (ray://) and then reports a timeout that does not mention authentication. One small
    gRPC call without a token tells at once: the GCS (host:port) and the Ray client
    server (ray://) both answer UNAUTHENTICATED when they want a token. A second call
    with the token found checks that the cluster accepts it."""
    hostport = address.removeprefix("ray://")
    if hostport == "auto" or ":" not in hostport:
        return  # 'auto': Ray turns token mode on itself when it finds a token
    client = address.startswith("ray://")
    if internals.ray_accepts(hostport, client, None, timeout):
        return  # no authentication, or a problem ray.init will name
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode not in ("", "token"):
        raise ConnectError(f"the Ray cluster at '{address}' requires token authentication, "
                           f"but RAY_AUTH_MODE is '{mode}': set RAY_AUTH_MODE=token (or unset "
                           f"it) and {AUTH_HINT}")
    token, source = _find_token()
    if token is None:
        raise ConnectError(f"the Ray cluster at '{address}' requires token authentication "
                           f"and no token was found: {AUTH_HINT}")
    if not internals.ray_accepts(hostport, client, token, timeout):
        raise ConnectError(f"the Ray cluster at '{address}' rejected the authentication "
                           f"token from {source} (not its current token?): {AUTH_HINT}")
    if mode != "token":
        os.environ["RAY_AUTH_MODE"] = "token"  # for ray.init, and what it starts
        internals.ray_reload_auth_config()  # Ray's config was read at import, without it


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
            raise ConnectError(f"RAY_AUTH_TOKEN_PATH={path}: cannot read the token "
                               f"({e.strerror or e}); name a readable file") from None
        if not text:
            raise ConnectError(f"RAY_AUTH_TOKEN_PATH={path}: the file is empty; it must "
                               f"hold the cluster's token")
        return text, f"RAY_AUTH_TOKEN_PATH={path}"
    default = Path.home() / ".ray" / "auth_token"
    try:
        text = default.read_text().strip()
    except OSError:
        return None, ""
    return (text, str(default)) if text else (None, "")
