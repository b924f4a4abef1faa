"""`python -m ivlm_core.body.cache`: build (first run) or verify (later runs) the body model's disk cache.

anny compiles its rig and blend shapes on first use (about a minute on two cores); run this at install
time (scripts/setup.sh does) so that the first node start does not pay it. The cache's location and
lock live in `ivlm_core.body.disk_cache`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from ivlm_core.body.disk_cache import anny_cache_dir, build_lock, prune_anny_intermediates
from ivlm_core.body.loader import load_body_model


def main(argv: list[str] | None = None) -> int:
    """Build (first run) or verify (later runs) the cached body model, printing progress and timings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="anny", help="body model to warm (default: anny)")
    parser.add_argument("--model-path", default=None, help="folder with licensed SMPL-family model files")
    parser.add_argument("--prune", action="store_true",
                        help="then delete anny's intermediate build files (~740 MB) that loading never reads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

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
