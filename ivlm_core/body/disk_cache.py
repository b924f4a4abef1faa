"""Where the body models are cached on disk, and the lock that makes parallel processes build them once.

anny compiles its rig and blend shapes from the MakeHuman sources on first use (about a minute on
two cores) and stores the result as safetensors; later loads read it back in about a second.
`python -m ivlm_core.body.cache` builds the cache ahead of time.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_dir() -> Path:
    """$IVLM_CACHE_DIR, or ~/.cache/ivlm_ros."""
    return Path(os.environ.get("IVLM_CACHE_DIR") or Path.home() / ".cache" / "ivlm_ros")


def anny_cache_dir() -> Path:
    """Where anny keeps its built model data: $ANNY_CACHE_DIR if set, else <cache_dir()>/anny."""
    return Path(os.environ.get("ANNY_CACHE_DIR") or cache_dir() / "anny")


@contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """Exclusive file lock, so that parallel processes (tests, nodes) build a cache once, not side by side."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".build.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def prune_anny_intermediates(directory: Path | None = None) -> int:
    """Delete anny's intermediate build files, keeping the compact model it actually loads.

    anny caches three stages (~790 MB); once `build_compact_model_data_*` exists only that one
    (~50 MB) is read. Returns the number of bytes freed.
    """
    freed = 0
    for path in (directory or anny_cache_dir()).glob("v*/*.safetensors"):
        if not path.name.startswith("build_compact_model_data_"):
            freed += path.stat().st_size
            path.unlink()
    return freed
