"""A real redis-server (Debian's package) on 127.0.0.1 for a test session, emptied between tests.

Import the fixture into a test module (`from tests.redis_server import redis_url`). Where
redis-server is absent the tests skip with that reason."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from tests.conftest import free_port

START_TIMEOUT_SECONDS = 10.0


@contextmanager
def running_redis(password: str | None = None, port: int | None = None) -> Iterator[str]:
    """A redis-server on `port` or a free one (requiring AUTH with `password` when given): its
    URL, which never holds the password."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not on PATH (Debian package redis-server)")
    port = port or free_port()
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    if password is not None:
        command += ["--requirepass", password]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, password=password)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    with running_redis() as url:
        yield url


@pytest.fixture(scope="session")
def protected_redis() -> Iterator[tuple[str, str]]:
    """A server that requires AUTH: (its URL, without the password; the password)."""
    password = secrets.token_hex(16)
    with running_redis(password) as url:
        yield url, password


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The server's URL, emptied before the test."""
    with redis.Redis.from_url(redis_server) as client:
        client.flushall()
    yield redis_server
