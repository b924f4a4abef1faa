"""Command line: contact on one image file with the embedded CPU backend.

    python -m ivlm_core.cli IMAGE [--object LABEL X0,Y0,X1,Y1 ...] [--person X0,Y0,X1,Y1 ...]
                            [--binary] [--out DIR] [--fov DEG | --K fx,fy,cx,cy]

Writes DIR/result.json (per pair: parts, evidence, reasons and the contact report the ROS Contact
message is written from: contact vertex ids and points, object pose, object contact and grasp
points; see ivlm_core.contact_report), DIR/overlay.png (the fitted
body meshes drawn over the image through K, grey -> red by contact probability, with the boxes: look
at this first), DIR/panels.png (InteractVLM-style views: per person the four canonical body views,
per object the four object views, contact in red) and, per pair k, DIR/pair<k>_body.glb and
DIR/pair<k>_object.glb (coloured meshes) and, where the object could be placed against the body,
DIR/pair<k>_scene.glb (both in the camera frame). --binary adds, per person, the object-agnostic
contact (object "any": the ground, seats and every object touched).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import trimesh

from ivlm_core.backends import create_backend
from ivlm_core.backends.keypoint.backend import BINARY_LABEL
from ivlm_core.backends.keypoint.landmarks import to_rgb8
from ivlm_core.colours import contact_rgb, rgba8
from ivlm_core.contact_report import ContactReport, ReportConfig, contact_report
from ivlm_core.image_limits import MAX_IMAGE_PIXELS, check_complete, check_encoded_image
from ivlm_core.objects import normalize_for_render
from ivlm_core.reconstruct import scene_glb
from ivlm_core.render import HUMAN_VIEWS, OBJECT_VIEWS, Rasterizer
from ivlm_core.render.cameras import RenderCamera
from ivlm_core.types import CameraIntrinsics, ContactResult, Detection

MESH_ALPHA = 0.6  # opacity of the body mesh drawn over the photo
PANEL_PX = 192  # side of one view in panels.png


def _box(text: str) -> np.ndarray:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != 4:
        raise argparse.ArgumentTypeError(f"a box is X0,Y0,X1,Y1 in pixels, got {text!r}")
    return np.array(vals)


def _intrinsics(text: str) -> tuple[float, ...]:
    """fx, fy, cx, cy from --K; ValueError naming the option otherwise."""
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4 or not all(np.isfinite(vals)):
        raise ValueError(f"--K takes 4 numbers fx,fy,cx,cy in pixels (CameraInfo K), got {text!r}")
    return vals


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ivlm_core.cli", description=__doc__.splitlines()[0])
    ap.add_argument("image", type=Path, help="image file (PNG, JPEG, ...; grey, colour or 16-bit)")
    ap.add_argument(
        "--object",
        nargs=2,
        action="append",
        default=[],
        metavar=("LABEL", "BOX"),
        help="object label and box X0,Y0,X1,Y1 (repeat for several objects; any label, e.g. 'floor')",
    )
    ap.add_argument(
        "--binary",
        action="store_true",
        help="also report, per person, every body part touching anything (object 'any')",
    )
    ap.add_argument(
        "--person",
        type=_box,
        action="append",
        default=[],
        metavar="BOX",
        help="person box X0,Y0,X1,Y1 (repeat; without it one person is searched for)",
    )
    ap.add_argument("--out", type=Path, default=Path("ivlm_out"), help="output folder (default ./ivlm_out)")
    ap.add_argument("--max-image-pixels", type=int, default=MAX_IMAGE_PIXELS,
                    help=f"larger images are refused before decoding (default {MAX_IMAGE_PIXELS})")
    cam = ap.add_mutually_exclusive_group()
    cam.add_argument("--fov", type=float, default=60.0, help="horizontal field of view, degrees (default 60)")
    cam.add_argument("--K", help="intrinsics fx,fy,cx,cy in pixels (sensor_msgs/CameraInfo K)")
    ap.add_argument("--body-model", default="anny", help="body model (default anny)")
    ap.add_argument(
        "--no-reconstruct",
        action="store_true",
        help="skip placing the object against the body (no pair<k>_scene.glb; faster)",
    )
    return ap


def _person_meshes(results: list[ContactResult]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """person index -> (posed vertices (V, 3), camera frame; contact probability (V,) over all pairs)."""
    people: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for res in results:
        if res.body_vertices is None:
            continue
        verts, probs = people.get(res.person_index, (res.body_vertices, np.zeros(len(res.body_vertices))))
        people[res.person_index] = (verts, np.maximum(probs, res.body_probabilities))
    return people


def draw_overlay(
    image: np.ndarray, results: list[ContactResult], faces: np.ndarray, camera: CameraIntrinsics
) -> np.ndarray:
    """(H, W, 3) uint8 RGB: each fitted body rasterized through K over the photo, grey -> red by contact
    probability, and the object and person boxes."""
    out = image.copy()
    people = _person_meshes(results)
    if people:
        with Rasterizer((camera.height, camera.width)) as raster:
            view = RenderCamera(np.eye(4), camera)
            for verts, probs in people.values():
                colours = contact_rgb(probs)
                light = np.zeros((1, 3))  # at the camera
                (r,), (shaded,) = raster.shade_views(verts, faces, [view], colours, light)
                mask = r.mask
                out[mask] = (MESH_ALPHA * shaded[mask] + (1 - MESH_ALPHA) * out[mask]).astype(np.uint8)
    for res in results:
        if res.obj.label != BINARY_LABEL:  # the binary result's box is the whole image
            x0, y0, x1, y1 = res.obj.box_xyxy.astype(int)
            cv2.rectangle(out, (x0, y0), (x1, y1), (255, 200, 0), 2)
            cv2.putText(
                out, res.obj.label, (x0 + 2, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 200, 0), 1
            )
        if res.person_box is not None:
            px0, py0, px1, py1 = res.person_box.astype(int)
            cv2.rectangle(out, (px0, py0), (px1, py1), (0, 200, 255), 1)
    return out


def draw_panels(
    results: list[ContactResult], canonical: np.ndarray, faces: np.ndarray, objects: dict[int, object]
) -> np.ndarray:
    """(rows * PANEL_PX, 4 * PANEL_PX, 3) uint8 RGB, as InteractVLM shows contact: one row per person
    (the canonical body from its four views) and one per object with a mesh (its four views), contact
    in red. objects: result index -> the result's object mesh."""
    rows = []
    with Rasterizer(PANEL_PX) as raster:
        for _, (_, probs) in sorted(_person_meshes(results).items()):
            lights = np.array([v.light_location for v in HUMAN_VIEWS])
            colours = contact_rgb(probs)
            _, images = raster.shade_views(canonical, faces, HUMAN_VIEWS, colours, lights)
            rows.append(np.concatenate(list(images), axis=1))
        for k, mesh in objects.items():
            lights = np.array([v.light_location for v in OBJECT_VIEWS])
            colours = contact_rgb(results[k].object_probabilities)
            _, images = raster.shade_views(
                normalize_for_render(mesh.vertices), mesh.faces, OBJECT_VIEWS, colours, lights
            )
            row = np.concatenate(list(images), axis=1)
            cv2.putText(row, results[k].obj.label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
            rows.append(row)
    if not rows:
        return np.full((PANEL_PX, 4 * PANEL_PX, 3), 255, np.uint8)
    return np.concatenate(rows, axis=0)


def _result_json(k: int, res: ContactResult, report: ContactReport) -> dict:
    """One pair of result.json: the pair's boxes, parts, answer and evidence, then its contact report
    (the fields of the ROS Contact message: vertex ids, 3D points, object pose, grasp points)."""
    return {
        "pair": k,
        "person_index": res.person_index,
        "object_box_xyxy": res.obj.box_xyxy.tolist(),
        "person_box_xyxy": None if res.person_box is None else res.person_box.tolist(),
        "body_parts": res.body_parts,
        "text": res.text,
        "reason": res.reason,
        "evidence": res.evidence,
        "backend": res.backend,
        **report.as_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file; give a folder (it is created if missing)", file=sys.stderr)
        return 2
    try:  # the size from the header (a small file can decode to a frame of many GB), then completeness
        check_encoded_image(args.image, args.max_image_pixels, f"file {args.image}")
        check_complete(args.image.read_bytes(), f"file {args.image}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bgr = cv2.imread(str(args.image), cv2.IMREAD_UNCHANGED)
    if bgr is None:
        print(f"error: cannot read image {args.image}", file=sys.stderr)
        return 2
    if bgr.ndim == 3 and bgr.shape[2] == 4:
        image = cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    elif bgr.ndim == 3:
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    else:
        image = bgr
    h, w = image.shape[:2]
    try:
        objects = [Detection(label, _box(box)) for label, box in args.object]
        people = [Detection("person", b) for b in args.person]
        if args.K:
            fx, fy, cx, cy = _intrinsics(args.K)
            camera = CameraIntrinsics(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), w, h)
        else:
            camera = CameraIntrinsics.from_fov(w, h, args.fov)
        if not objects and not args.binary:
            raise ValueError("nothing to ask: give at least one --object LABEL BOX, or --binary")
        backend = create_backend(
            "keypoint", body_model=args.body_model, reconstruct=not args.no_reconstruct, binary=args.binary
        )
        results = backend.estimate(image, people + objects, camera)
    except (ValueError, argparse.ArgumentTypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    reports = [contact_report(res, ReportConfig()) for res in results]
    faces = backend.body.faces
    object_meshes = {}
    for k, res in enumerate(results):
        if res.body_vertices is not None:
            body = trimesh.Trimesh(res.body_vertices, faces, process=False)
            body.visual.vertex_colors = rgba8(contact_rgb(res.body_probabilities))
            body.export(args.out / f"pair{k}_body.glb")
        mesh = res.object_mesh
        if mesh is None:  # binary contact: no object mesh
            continue
        object_meshes[k] = mesh
        obj = mesh.to_trimesh()
        obj.visual.vertex_colors = rgba8(contact_rgb(res.object_probabilities))
        obj.export(args.out / f"pair{k}_object.glb")
        if reports[k].reconstructed and res.body_vertices is not None:
            glb = scene_glb(
                res.body_vertices,
                backend.body.faces,
                res.body_probabilities,
                mesh.vertices,
                mesh.faces,
                res.object_probabilities,
                res.reconstruction,
            )
            (args.out / f"pair{k}_scene.glb").write_bytes(glb)
    overlay = draw_overlay(to_rgb8(image), results, faces, camera)
    cv2.imwrite(str(args.out / "overlay.png"), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    panels = draw_panels(results, backend.body.canonical_vertices, faces, object_meshes)
    cv2.imwrite(str(args.out / "panels.png"), cv2.cvtColor(panels, cv2.COLOR_RGB2BGR))
    summary = {
        "image": str(args.image),
        "camera_K": camera.K.tolist(),
        "timings_ms": {k: round(v, 1) for k, v in backend.last_timings_ms.items()},
        "results": [_result_json(k, r, rep) for k, (r, rep) in enumerate(zip(results, reports, strict=True))],
    }
    (args.out / "result.json").write_text(json.dumps(summary, indent=1))
    for k, res in enumerate(results):
        parts = ", ".join(f"{p} {c:.2f}" for p, c in res.body_parts.items()) or f"none ({res.reason})"
        print(f"pair {k}: person {res.person_index} - {res.obj.label}: {parts}")
    print(f"wrote result.json, overlay.png, panels.png and the GLB meshes in {args.out}")
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
