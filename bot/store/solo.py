"""One `run` per SQLite file: a second process on the same file would double every alert.

The lock is an advisory `flock` on `<file>.lock`, which the kernel drops when the process dies
however it dies, so a crash never leaves a stale lock; the file holds the owner's pid and host
for the message a second process prints.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url


class StoreInUseError(RuntimeError):
    """Another process runs the bot on this SQLite file; the message names the file and process."""


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL and in-memory databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    name = parsed.database or ""
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name).expanduser().resolve()


@contextmanager
def single_process(url: str) -> Iterator[None]:
    """Hold the SQLite file's lock for the block; StoreInUseError if another process holds it."""
    path = sqlite_file(url)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise StoreInUseError(
                f"{path} is in use by {owner}: SQLite serves one `stablewatch run` at a time "
                "(stop that one, or use PostgreSQL for several replicas)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {os.uname().nodename}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
