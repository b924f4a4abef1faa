"""On-disk cache of the body models, and `python -m ivlm_core.body.cache` to build it ahead of time.

anny compiles its rig and blend shapes from the MakeHuman sources on first use (about a minute on
two cores) and stores the result as safetensors; later loads read it back in about a second.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import sys
import time
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


def main(argv: list[str] | None = None) -> int:
    """Build (first run) or verify (later runs) the cached body model, printing progress and timings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="anny", help="body model to warm (default: anny)")
    parser.add_argument("--model-path", default=None, help="folder with licensed SMPL-family model files")
    parser.add_argument("--prune", action="store_true",
                        help="then delete anny's intermediate build files (~740 MB) that loading never reads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from ivlm_core.body.loader import load_body_model

    target = anny_cache_dir() if args.model == "anny" else args.model_path
    print(f"[ivlm body cache] loading '{args.model}' (cache: {target})", flush=True)
    if args.model == "anny" and not any(anny_cache_dir().glob("v*/build_compact_model_data_*.safetensors")):
        print("[ivlm body cache] no anny cache yet: building it (1-3 min, 0.8 GB disk)", flush=True)
    start = time.perf_counter()
    try:
        model = load_body_model(args.model, model_path=args.model_path)
    except ValueError as error:
        print(f"[ivlm body cache] error: {error}", file=sys.stderr, flush=True)
        return 2
    print(f"[ivlm body cache] {model.name}: {model.num_vertices} vertices, {len(model.faces)} faces, "
          f"{model.num_joints} joints, loaded in {time.perf_counter() - start:.1f} s", flush=True)
    if args.prune and args.model == "anny":
        with build_lock(anny_cache_dir()):
            freed = prune_anny_intermediates()
        print(f"[ivlm body cache] pruned {freed / 1e6:.0f} MB of intermediate files", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
