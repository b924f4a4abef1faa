#!/usr/bin/env python3
"""Compare our interactvlm backend with the official InteractVLM demo on one image, vertex by vertex.

    .venv/bin/python scripts/compare_official.py --image tennis_racket__000000041045.jpg \
        --label tennis_racket --official tennis_racket__000000041045_hcontact_vertices.npz \
        --checkpoint ~/models/interactvlm-3d-hcontact-damon --body-model-path ~/models/body_models \
        --interactvlm-data ~/InteractVLM/data --device cuda

`--official` is the `<name>_hcontact_vertices.npz` the official `run_demo.py` (hcontact) writes. By
default the backend runs with `parity` (the original decoding, eager attention, bf16 lift) on the
official renders when `--interactvlm-data` is given. Prints the agreement, F1 and the vertices that
differ most; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np

from ivlm_core.backends.interactvlm.backend import InteractVLMBackend
from ivlm_core.backends.interactvlm.parity import compare_contact, load_official_contact
from ivlm_core.types import Detection


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", required=True, help="the photo given to the official demo")
    ap.add_argument("--label", required=True, help="object name as in the demo's file name (tennis_racket)")
    ap.add_argument("--official", required=True, help="the demo's <name>_hcontact_vertices.npz")
    ap.add_argument("--checkpoint", required=True, help="InteractVLM human-contact checkpoint folder")
    ap.add_argument("--body-model-path", default=None, help="folder with smplh/SMPLH_NEUTRAL.pkl")
    ap.add_argument("--interactvlm-data", default="", help="InteractVLM's data folder (official renders)")
    ap.add_argument("--sam-checkpoint", default="")
    ap.add_argument("--clip-dir", default="")
    ap.add_argument("--device", default="")
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--no-parity", action="store_true", help="compare the product path (fast, float lift)")
    ap.add_argument("--threshold", type=float, default=0.5, help="vertex contact threshold (0.5: metrics)")
    ap.add_argument("--top", type=int, default=10, help="how many of the largest differences to list")
    args = ap.parse_args(argv)

    bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if bgr is None:
        print(f"error: cannot read --image {args.image!r} as an image", file=sys.stderr)
        return 2
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # the demo reads with cv2 and converts to RGB
    try:
        load_official_contact(args.official)  # a wrong file fails before the model loads (minutes)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        backend = InteractVLMBackend(
            checkpoint=args.checkpoint, device=args.device, body_model_path=args.body_model_path,
            interactvlm_data=args.interactvlm_data, sam_checkpoint=args.sam_checkpoint,
            clip_dir=args.clip_dir, max_new_tokens=args.max_new_tokens, parity=not args.no_parity,
        )  # fmt: skip
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        official = load_official_contact(args.official, backend.render_body.num_vertices)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    whole = Detection(args.label, np.array([0.0, 0.0, image.shape[1], image.shape[0]]))
    [result] = backend.estimate(image, [whole])
    report = compare_contact(result.body_probabilities, official, args.threshold, args.top)
    print(f"answer: {result.text}")
    print(f"agreement {report.agreement:.4f}  F1 {report.f1:.4f}  (P {report.precision:.4f}, "
          f"R {report.recall:.4f})  max |diff| {report.max_abs_diff:.4f}  "
          f"mean |diff| {report.mean_abs_diff:.5f}")
    for row in report.largest:
        print(f"  vertex {row['vertex']:5d}: ours {row['ours']:.4f}  official {row['official']:.4f}")
    print(json.dumps({"answer": result.text, **report.to_dict()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
