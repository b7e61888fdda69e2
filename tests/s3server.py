"""A real S3 server for the tests: moto's standalone server (`moto_server`, what s3fs,
pandas and Arrow test against) on 127.0.0.1, started as a process and stopped by pid.

tests/test_storage.py shows that it enforces S3's conditional writes (If-None-Match,
If-Match) before anything here relies on them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import procnet
from raycluster import free_port

MOTO_SERVER = Path(sys.executable).with_name("moto_server")


class S3Server:
    def __init__(self, log: Path, check_keys: bool = False):
        """`check_keys`: refuse access keys its IAM does not know, as S3 does (moto
        accepts any by default)."""
        self.check_keys = check_keys
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a client needs: the standard AWS variables, pointing at this server."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> S3Server:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={
                    **os.environ,
                    **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if self.check_keys else {}),
                },
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url, timeout=1).close()
                return self
            except urllib.error.HTTPError:  # it answers (403 when it checks keys)
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"moto_server exited: {self.log.read_text()[-2000:]}")
                time.sleep(0.1)
        raise RuntimeError(f"moto_server did not answer on {self.url} within 30 s")

    def stop(self) -> None:
        procnet.stop(self.proc, group=True)

    def new_bucket(self) -> str:
        """A fresh, empty bucket's name."""
        import boto3

        name = f"b-{uuid.uuid4().hex[:12]}"
        client = boto3.client("s3", endpoint_url=self.url, **_credentials(self.env))
        client.create_bucket(Bucket=name)
        return name


def _credentials(env: dict) -> dict:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


class IgnoringConditions:
    """An S3 endpoint that ignores conditional writes, as some S3-compatible stores do:
    a proxy on 127.0.0.1 that forwards every request to `upstream` (the moto server)
    without its If-None-Match and If-Match headers. Run in a thread; `stop()` ends it."""

    DROPPED = ("if-none-match", "if-match", "host")

    def __init__(self, upstream: str):
        import http.client
        import http.server
        import threading
        from urllib.parse import urlsplit

        host, port = urlsplit(upstream).hostname, urlsplit(upstream).port

        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in proxy.DROPPED}
                # http.client, not urllib: urllib marks a body as a form, which moto parses.
                connection = http.client.HTTPConnection(host, port, timeout=30)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    answer = connection.getresponse()
                    status, got, data = answer.status, answer.headers, answer.read()
                finally:
                    connection.close()
                self.send_response(status)
                for k, v in got.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
