"""Speed and fidelity of the Render and Lift stages on the shipped anny body (CPU).

    .venv/bin/python bench/render_lift.py [--runs 20] [--backend auto|moderngl|numpy]

Per view and size (512², 1024²), medians over `--runs` warm runs: `raster` (rasterize only), `render`
(rasterize + Phong-shaded localizer image + lift tables, i.e. `render_body_views`), `lift` (per-view
masks -> per-vertex probabilities through prebuilt tables), and `ms_per_view` = render + lift. Also
the human rig's surface coverage and the label -> masks -> lift round-trip F1 per body part. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ivlm_core.body import PART_NAMES, load_body_model
from ivlm_core.render import (
    HUMAN_VIEWS,
    Rasterizer,
    labels_to_masks,
    lift,
    render_body_views,
    surface_coverage,
)


def _median_ms(fn, runs: int) -> tuple[float, float]:
    """Median wall and process-CPU milliseconds of `fn` (CPU time includes llvmpipe's worker threads and
    is less sensitive to other jobs on a shared machine)."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return 1e3 * float(np.median(wall)), 1e3 * float(np.median(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--backend", default="auto", choices=["auto", "moderngl", "numpy"])
    args = parser.parse_args()

    body = load_body_model("anny")
    v, f = body.canonical_vertices, body.faces
    n = len(HUMAN_VIEWS)
    rng = np.random.default_rng(0)
    result: dict[str, object] = {"body": f"anny V={body.num_vertices} F={len(f)}", "views": n}
    for size in (512, 1024):
        r = Rasterizer(size, backend=args.backend)
        result["backend"] = r.backend
        rig = render_body_views(r, v, f)
        masks = rng.random((n, size, size), dtype=np.float32)
        timed = {
            "raster": _median_ms(lambda r=r: [r.rasterize(v, f, view) for view in HUMAN_VIEWS], args.runs),
            "render": _median_ms(lambda r=r: render_body_views(r, v, f), args.runs),
            "lift": _median_ms(lambda rig=rig, masks=masks: lift(masks, rig.tables), args.runs),
        }
        coverage = surface_coverage(rig.tables, v, f)
        print(
            f"{size}²: "
            + ", ".join(f"{k} {w / n:.2f} ms/view (cpu {c / n:.2f})" for k, (w, c) in timed.items())
            + f", coverage {coverage:.4f}"
        )
        for k, (w, c) in timed.items():
            result[f"ms_{k}_per_view_{size}"] = round(w / n, 2)
            result[f"cpu_ms_{k}_per_view_{size}"] = round(c / n, 2)
        result[f"ms_per_view_{size}"] = round((timed["render"][0] + timed["lift"][0]) / n, 2)
        result[f"coverage_{size}"] = round(coverage, 4)
        if size == 1024:
            visible = rig.tables.visible.any(0)
            f1s = {}
            for part in PART_NAMES:
                labels = np.zeros(body.num_vertices, dtype=bool)
                labels[body.part_vertex_ids(part)] = True
                pred = lift(labels_to_masks(labels, rig.tables, f).astype(np.float32), rig.tables) >= 0.5
                tp, fp = np.sum(pred & labels & visible), np.sum(pred & ~labels & visible)
                fn = np.sum(~pred & labels & visible)
                f1s[part] = round(float(2 * tp / (2 * tp + fp + fn)), 4)
                print(f"  round trip {part:16s} {labels.sum():5d} vertices  F1 {f1s[part]:.4f}")
            result["round_trip_f1_1024"] = f1s
        r.close()
    result["coverage"] = result["coverage_1024"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
