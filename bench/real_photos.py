"""Keypoint backend on every labelled person-object pair of the shared real photos.

Usage: .venv/bin/python bench/real_photos.py [--photos /work/shared/photos] [--verbose]
Prints one line per pair (worst first at the end) and, as the last line, one JSON object with
part-level precision/recall/f1 (left/right-agnostic), f1_strict (with laterality),
no_contact_accuracy (share of contact-false pairs predicted empty), f1_original (the first twenty
images, the original 47 pairs) and by_kind.<kind>.f1 (object, scene, open_vocabulary;
by_kind.no_contact.accuracy), see ivlm_core.metrics.labelled_pairs_summary. Boxes are the labelled ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ivlm_core.backends import create_backend
from ivlm_core.metrics import LabelledPair, labelled_pairs_summary, part_prf
from ivlm_core.types import Detection

ORIGINAL_IMAGES = 20  # labels.json lists the original 47 pairs' twenty images first


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "photos")
    ap.add_argument("--verbose", action="store_true", help="print the evidence of every pair")
    args = ap.parse_args()
    labels_path = args.photos / "labels.json"
    if not labels_path.is_file():
        print(f"no labels at {labels_path}; pass --photos", file=sys.stderr)
        return 2
    backend = create_backend("keypoint")
    rows, t_total, n_calls = [], 0.0, 0
    for index, entry in enumerate(json.loads(labels_path.read_text())):
        bgr = cv2.imread(str(args.photos / entry["file"]))
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for pair in entry["pairs"]:
            dets = [
                Detection("person", np.array(pair["person_box_xyxy"], float)),
                Detection(pair["object"], np.array(pair["box_xyxy"], float)),
            ]
            t = time.perf_counter()
            (res,) = backend.estimate(image, dets)
            t_total += time.perf_counter() - t
            n_calls += 1
            pred, gt = sorted(res.body_parts), sorted(pair["parts"])
            f1 = part_prf(pred, gt, sided=False).f1 if (pred or gt) else 1.0
            rows.append(
                {
                    "file": entry["file"],
                    "object": pair["object"],
                    "gt": gt,
                    "pred": pred,
                    "f1": f1,
                    "contact": pair["contact"],
                    "kind": pair["kind"],
                    "original": index < ORIGINAL_IMAGES,
                    "evidence": res.evidence,
                    "reason": res.reason,
                }
            )
            print(f"{f1:4.2f}  {entry['file'][:34]:34s} {pair['object']:14s} gt={gt} pred={res.body_parts}")
            if args.verbose:
                print("      evidence:", "; ".join(res.evidence), res.reason)

    summary = labelled_pairs_summary(
        LabelledPair(r["pred"], r["gt"], r["contact"], r["kind"], r["original"]) for r in rows
    )
    worst = sorted(rows, key=lambda r: r["f1"])[:10]
    print("worst pairs:")
    for r in worst:
        print(f"  {r['f1']:.2f} {r['file']} {r['object']} ({r['kind']}): gt={r['gt']} pred={r['pred']}")
    summary["mean_ms_per_pair"] = round(1e3 * t_total / max(1, n_calls), 1)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
