"""An exclusive lock on a file, so that parallel processes (pytest-xdist workers, two commands)
build a cached simulator once: the first builds, the others wait and then find it built."""

import contextlib
import fcntl
import pathlib

__all__ = ["locked"]


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock on ``path`` (created, with its folder, if missing) for the block."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
