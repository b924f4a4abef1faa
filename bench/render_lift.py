"""Speed and fidelity of the Render and Lift stages on the shipped anny body (CPU).

    PYTHONPATH=. .venv/bin/python bench/render_lift.py [--runs 30] [--backend auto|moderngl|numpy]

(PYTHONPATH=. so that the working tree, not an installed copy of ivlm_core, is measured.)

Per view and size (512², 1024²), medians over `--runs` warm runs of the whole 4-view rig:
`raster` (rasterize only), `render` (what `render_body_views` costs: vertex normals, rasterization,
Phong-shaded localizer images and lift tables, with the fixed body mesh already uploaded to GL by an
earlier call), `render_new_mesh` (the same for a mesh that changed since the last call, so it is
uploaded again), `lift` (per-view probabilities -> per-vertex ones through the tables; what every frame
pays) and `lift_gated` (the object path's 0.3 pixel gate). `ms_per_view` = render_new_mesh + lift:
each mesh is rendered once (the body at start-up, an object when first seen), so a user pays the upload
too. Then the human rig's surface coverage and, at the rig's 1024², the label -> masks -> lift
round-trip F1 per body part, over the vertices a view sees themselves (`vertex_visibility`) and over
the lift's support (`tables.visible`), with the default mask rule (2 of 3 corners) and the original's
older rule (3). Timings on a shared machine are noisy; the process CPU time (llvmpipe's threads
included) is printed alongside. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
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
    vertex_visibility,
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


def _f1(pred: np.ndarray, labels: np.ndarray, over: np.ndarray) -> float:
    tp = np.sum(pred & labels & over)
    return float(2 * tp / (2 * tp + np.sum(pred & ~labels & over) + np.sum(~pred & labels & over)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--backend", default="auto", choices=["auto", "moderngl", "numpy"])
    args = parser.parse_args()
    if args.runs < 20:
        parser.error("--runs must be at least 20 (medians of fewer runs are too noisy here)")

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
        meshes = itertools.cycle([v, v + np.float32(1e-4)])  # two meshes taking turns: each call uploads
        timed = {
            "raster": _median_ms(lambda r=r: r.rasterize_views(v, f, HUMAN_VIEWS), args.runs),
            "render": _median_ms(lambda r=r: render_body_views(r, v, f), args.runs),
            "render_new_mesh": _median_ms(
                lambda r=r, meshes=meshes: render_body_views(r, next(meshes), f), args.runs
            ),
            "lift": _median_ms(lambda rig=rig, masks=masks: lift(masks, rig.tables), args.runs),
            "lift_gated": _median_ms(
                lambda rig=rig, masks=masks: lift(masks, rig.tables, min_probability=0.3), args.runs
            ),
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
        result[f"ms_per_view_{size}"] = round((timed["render_new_mesh"][0] + timed["lift"][0]) / n, 2)
        result[f"coverage_{size}"] = round(coverage, 4)
        if size == 1024:
            rasters = r.rasterize_views(v, f, HUMAN_VIEWS)
            seen = np.stack(
                [
                    vertex_visibility(ra, view.camera(size), v, f)
                    for ra, view in zip(rasters, HUMAN_VIEWS, strict=True)
                ]
            ).any(0)
            support = rig.tables.visible.any(0)
            print(
                f"  round trip at {size}²: F1 over vertices seen ({seen.sum()}) / over the lift's support "
                f"({support.sum()}), masks from 2 | 3 labelled corners"
            )
            rows = {}
            for part in PART_NAMES:
                labels = np.zeros(body.num_vertices, dtype=bool)
                labels[body.part_vertex_ids(part)] = True
                row = {}
                for k in (2, 3):
                    masks_k = labels_to_masks(labels, rig.tables, f, min_vertices=k).astype(np.float32)
                    pred = lift(masks_k, rig.tables) >= 0.5
                    row[f"seen_mv{k}"] = round(_f1(pred, labels, seen), 4)
                    row[f"support_mv{k}"] = round(_f1(pred, labels, support), 4)
                rows[part] = row
                print(
                    f"  {part:16s} {labels.sum():5d} vertices  F1 {row['seen_mv2']:.4f} / "
                    f"{row['support_mv2']:.4f}  |  {row['seen_mv3']:.4f} / {row['support_mv3']:.4f}"
                )
            result["round_trip_f1_1024"] = {part: row["seen_mv2"] for part, row in rows.items()}
            result["round_trip_f1_1024_min"] = min(row["seen_mv2"] for row in rows.values())
            result["round_trip_f1_1024_support_min"] = min(row["support_mv2"] for row in rows.values())
            result["round_trip_f1_1024_mv3_min"] = min(row["seen_mv3"] for row in rows.values())
        r.close()
    result["coverage"] = result["coverage_1024"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
