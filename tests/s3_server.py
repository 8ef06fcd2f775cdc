"""A real S3-compatible server for the tests: moto's standalone server over HTTP on 127.0.0.1.

``moto_server`` (from the ``moto[server]`` package in the lock) serves the S3 API on a
free port; the tests talk to it with boto3 over real HTTP, exactly as the app talks to
a clinic's object store. Each server is started by a fixture and stopped by its PID.

Also here: :class:`CutProxy`, a TCP relay between the app and the server that a test
can cut mid-request ("the endpoint went down during the upload") while the server keeps
what it holds, so the test can then look at the bucket directly; and
:func:`enable_auth`, which makes a server check credentials (moto accepts any by default).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

#: Any credentials do for a server without authentication.
TEST_KEY_ID = "vt-test-key"
TEST_SECRET = "vt-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class MotoServer:
    """A running moto server: its endpoint URL and process."""

    endpoint: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, *, key_id: str = TEST_KEY_ID, secret: str = TEST_SECRET) -> Any:
        """A boto3 client of this server (for the tests' own look at the bucket)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            region_name=REGION,
            config=Config(
                retries={"mode": "standard", "total_max_attempts": 2},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def new_bucket(self, name: str | None = None) -> str:
        """Create a bucket with a unique name and return it."""
        bucket = name or f"vt-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket


def _server_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    return [*base, "-H", "127.0.0.1", "-p", str(port)]


@contextlib.contextmanager
def moto_server(log_dir: Path, *, timeout_s: float = 60.0) -> Iterator[MotoServer]:
    """Start ``moto_server`` on a free port of 127.0.0.1; stop it by its PID on exit."""
    port = free_port()
    log = (log_dir / f"moto-{port}.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        _server_command(port), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=log_dir
    )
    server = MotoServer(f"http://127.0.0.1:{port}", proc)
    try:
        _wait_ready(server, timeout_s)
        yield server
    finally:
        stop(proc)
        log.close()


def _wait_ready(server: MotoServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"moto_server exited with status {server.process.returncode}")
        try:
            with urllib.request.urlopen(f"{server.endpoint}/moto-api/data.json", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not answer within {timeout_s} s") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process by its PID: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def use_s3(
    monkeypatch: pytest.MonkeyPatch,
    server: MotoServer,
    bucket: str,
    prefix: str = "clinic",
    *,
    key_id: str = TEST_KEY_ID,
    secret: str = TEST_SECRET,
    endpoint: str | None = None,
) -> str:
    """Select ``s3://bucket/prefix`` on ``server`` through the environment; return the URL."""
    url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    monkeypatch.setenv("VEIN_TRACKER_STORE_URL", url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint or server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return url


def s3_env(server: MotoServer, bucket: str, prefix: str = "clinic") -> dict[str, str]:
    """The same selection as :func:`use_s3`, as a dict (for worker processes)."""
    return {
        "VEIN_TRACKER_STORE_URL": f"s3://{bucket}/{prefix}",
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_ACCESS_KEY_ID": TEST_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET,
        "AWS_DEFAULT_REGION": REGION,
    }


def list_keys(server: MotoServer, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object of ``bucket`` under ``prefix``, read directly from the server."""
    client = server.client()
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def enable_auth(server: MotoServer) -> tuple[str, str]:
    """Make ``server`` check credentials from now on; return a key pair it accepts.

    An IAM user with full S3 rights is made while the server still accepts anything,
    then moto's authentication is switched on (its ``reset-auth`` API: every later
    request must be signed with a key the server knows).
    """
    import boto3

    iam = boto3.session.Session().client(
        "iam",
        endpoint_url=server.endpoint,
        aws_access_key_id=TEST_KEY_ID,
        aws_secret_access_key=TEST_SECRET,
        region_name=REGION,
    )
    user = f"vt-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    req = urllib.request.Request(
        f"{server.endpoint}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},  # not a form: moto reads the raw body
    )
    with urllib.request.urlopen(req, timeout=10):
        pass
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


class CutProxy:
    """A TCP relay from a local port to ``target``; :meth:`cut` drops it like a dead host.

    After ``cut()`` the listening socket is closed (new connections are refused) and
    every relayed connection is reset, mid-request or not. With ``cut_after`` the relay
    cuts itself once that many bytes went from the client to the server: the endpoint
    goes down in the middle of an upload's body.
    """

    def __init__(self, target_port: int, *, cut_after: int | None = None) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = threading.Event()
        #: Bytes relayed from the client to the server so far.
        self.sent = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._cut.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while not self._cut.is_set():
                data = src.recv(65536)
                if not data:
                    break
                if upstream:
                    with self._lock:
                        self.sent += len(data)
                        over = self.cut_after is not None and self.sent >= self.cut_after
                    if over:
                        # Pass on part of this chunk only, then vanish.
                        dst.sendall(data[: len(data) // 2])
                        self.cut()
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        self._cut.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                # SO_LINGER 0: close with a reset, as a host that vanished would look.
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                c.close()

    def close(self) -> None:
        self.cut()
        self._thread.join(timeout=5)
