"""Accuracy and speed of joint human-object reconstruction on synthetic scenes with known ground truth.

    PYTHONPATH=. .venv/bin/python bench/reconstruct.py [--scenes 60] [--seed 0] [--no-mask]
        [--photos ../shared/photos]

(PYTHONPATH=. so that the working tree, not an installed copy of ivlm_core, is measured.)

Scenes: the anny body with raised arms, a mug / book / bottle held against one hand, the object's
silhouette rendered with our rasterizer (body occludes it), its box shifted by 5% noise per edge, and
the true contact regions as contact probabilities. Prints the error distribution; the last line is one
JSON object with medians, percentiles, `ms_per_pair` (wall clock, CPU, warm process, median over
scenes), `cpu_ms_per_pair` (the process's CPU time, less sensitive to other load on the machine) and the
same for a following video frame warm-started from the first result (`warm_started_*`, with its
success rate and median rotation error).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ivlm_core.body import load_body_model
from ivlm_core.reconstruct import reconstruct
from ivlm_core.render.rasterize import Rasterizer
from ivlm_core.testing import Scene, make_scene, rotation_error_deg, scene_objects
from ivlm_core.types import CameraIntrinsics, Reconstruction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-mask", action="store_true", help="give reconstruct the box only")
    parser.add_argument(
        "--photos",
        type=Path,
        default=None,
        help="also reconstruct the labelled photos in this folder (labels.json) through the keypoint backend",
    )
    args = parser.parse_args()

    model = load_body_model("anny")
    camera = CameraIntrinsics.from_fov(640, 480, 60.0)
    rasterizer = Rasterizer((camera.height, camera.width))
    objects = scene_objects()
    rng = np.random.default_rng(args.seed)
    rows = []

    def run(scene: Scene, init: Reconstruction | None = None) -> Reconstruction:
        mask = None if args.no_mask else scene.mask
        return reconstruct(
            scene.body_vertices,
            scene.body_faces,
            scene.body_contact,
            scene.obj,
            scene.object_contact,
            scene.box,
            camera,
            mask,
            scene.body_normals,
            init,
        )

    while len(rows) < args.scenes:
        obj = objects[len(rows) % len(objects)]
        scene = make_scene(model, rasterizer, camera, obj, rng)
        if scene is None:
            continue
        if not rows:
            run(scene)  # warm-up: first-call costs (imports, allocator) are not per-pair costs
        start, cpu_start = time.perf_counter(), time.process_time()
        rec = run(scene)
        ms, cpu_ms = 1000 * (time.perf_counter() - start), 1000 * (time.process_time() - cpu_start)
        start, cpu_start = time.perf_counter(), time.process_time()
        warm = run(scene, init=rec)  # the next video frame: warm-started from this one
        warm_ms, warm_cpu_ms = 1000 * (time.perf_counter() - start), 1000 * (time.process_time() - cpu_start)
        R, t, s = rec.object_pose[:3, :3], rec.object_pose[:3, 3], rec.object_scale
        placed = s * obj.vertices @ R.T + t
        body_contact = scene.body_vertices[scene.body_contact > 0]
        rows.append(
            {
                "object": obj.name,
                "ok": rec.ok,
                "translation_m": float(np.linalg.norm(t - scene.translation)),
                "rotation_deg": rotation_error_deg(obj, R, scene.rotation),
                "contact_m": float(np.median(cKDTree(placed).query(body_contact)[0])),
                "quality": rec.quality,
                "ms": ms,
                "cpu_ms": cpu_ms,
                "warm_ms": warm_ms,
                "warm_ok": warm.ok,
                "warm_rotation_deg": rotation_error_deg(obj, warm.object_pose[:3, :3], scene.rotation),
                "warm_cpu_ms": warm_cpu_ms,
            }
        )
        r = rows[-1]
        print(
            f"{len(rows):3d} {obj.name:7s} ok={r['ok']!s:5s} t={100 * r['translation_m']:5.1f} cm "
            f"R={r['rotation_deg']:5.1f} deg contact={100 * r['contact_m']:4.1f} cm q={r['quality']:.2f} "
            f"{ms:.0f} ms {rec.reason}"
        )

    def dist(key: str, scale: float) -> dict[str, float]:
        values = np.array([r[key] for r in rows]) * scale
        return {f"p{q}": round(float(np.percentile(values, q)), 2) for q in (25, 50, 75, 90)}

    print("per object, median translation cm / rotation deg:")
    for obj in objects:
        sub = [r for r in rows if r["object"] == obj.name]
        print(
            f"  {obj.name:7s} n={len(sub):3d} {100 * np.median([r['translation_m'] for r in sub]):5.1f} cm "
            f"{np.median([r['rotation_deg'] for r in sub]):5.1f} deg"
        )
    summary = {
        "scenes": len(rows),
        "mask": not args.no_mask,
        "ok_fraction": round(float(np.mean([r["ok"] for r in rows])), 3),
        "translation_error_cm": dist("translation_m", 100),
        "rotation_error_deg": dist("rotation_deg", 1),
        "contact_error_cm": dist("contact_m", 100),
        "median_translation_error_m": round(float(np.median([r["translation_m"] for r in rows])), 4),
        "median_rotation_error_deg": round(float(np.median([r["rotation_deg"] for r in rows])), 2),
        "median_contact_error_m": round(float(np.median([r["contact_m"] for r in rows])), 4),
        "cpu_ms_per_pair": round(float(np.median([r["cpu_ms"] for r in rows])), 1),
        "warm_started_ok_fraction": round(float(np.mean([r["warm_ok"] for r in rows])), 3),
        "warm_started_median_rotation_error_deg": round(
            float(np.median([r["warm_rotation_deg"] for r in rows])), 2
        ),
        "warm_started_ms_per_pair": round(float(np.median([r["warm_ms"] for r in rows])), 1),
        "warm_started_cpu_ms_per_pair": round(float(np.median([r["warm_cpu_ms"] for r in rows])), 1),
        "ms_per_pair": round(float(np.median([r["ms"] for r in rows])), 1),
    }
    if args.photos is not None:
        summary |= photo_figures(args.photos)
    print(json.dumps(summary))


def photo_figures(folder: Path) -> dict[str, float]:
    """How often the reconstruction passes its checks on real photos, for pairs the backend puts in contact.

    There is no 3D ground truth for the photos: this counts honest successes, not accuracy.
    """
    from skimage.io import imread

    from ivlm_core.backends.keypoint import KeypointBackend
    from ivlm_core.types import Detection

    backend = KeypointBackend()
    passed, no_contact_posed = [], 0
    try:
        for item in json.loads((folder / "labels.json").read_text()):
            image = imread(folder / item["file"])
            image = np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3]
            camera = CameraIntrinsics.from_fov(image.shape[1], image.shape[0], 60.0)
            for pair in item["pairs"]:
                person = Detection("person", np.asarray(pair["person_box_xyxy"], float))
                obj = Detection(pair["object"], np.asarray(pair["box_xyxy"], float))
                (res,) = backend.estimate(image, [person, obj], camera)
                if res.body_vertices is None:
                    continue
                mesh = backend.objects.get(obj.label, obj.box_xyxy, camera)
                rec = reconstruct(
                    res.body_vertices,
                    backend.body.faces,
                    res.body_probabilities,
                    mesh,
                    res.object_probabilities,
                    obj.box_xyxy,
                    camera,
                    body_normals=res.body_normals,
                )
                if not pair["contact"]:
                    no_contact_posed += rec.ok
                    continue
                if res.body_parts:
                    passed.append(rec.ok)
                print(
                    f"photo {item['file']:34s} {obj.label:14s} ok={rec.ok!s:5s} q={rec.quality:.2f} "
                    f"{rec.reason}"
                )
    finally:
        backend.close()
    return {
        "photo_contact_pairs": len(passed),
        "photo_ok_fraction": round(float(np.mean(passed)), 3) if passed else 0.0,
        "photo_no_contact_pairs_posed": no_contact_posed,
    }


if __name__ == "__main__":
    main()
