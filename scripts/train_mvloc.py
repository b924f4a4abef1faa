#!/usr/bin/env python3
"""Fine-tune InteractVLM's MV-Loc with LoRA on DAMON-style data (see ivlm_core.backends.interactvlm.train).

    .venv/bin/python scripts/train_mvloc.py --manifest data/train.jsonl \
        --checkpoint ~/models/interactvlm-3d-hcontact-damon --out runs/mvloc --steps 5000
    .venv/bin/python scripts/train_mvloc.py --manifest data/train.jsonl --tiny --out /tmp/mvloc --steps 20
    .venv/bin/python scripts/train_mvloc.py --damon ~/InteractVLM/data/damon/train \
        --checkpoint ~/models/interactvlm-3d-hcontact-damon --body-model-path ~/models/body_models \
        --out runs/damon

A second run with the same --out resumes from <out>/last (use --no-resume to start over).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from ivlm_core.backends.interactvlm.body_rig import TRAINED_BODY_KEY, body_rig, trained_body_name
from ivlm_core.backends.interactvlm.configs import checkpoint_config, tiny_architecture
from ivlm_core.backends.interactvlm.damon import DAMON_VERTICES, read_damon
from ivlm_core.backends.interactvlm.mvloc import MVLoc, MVLocConfig, build_net
from ivlm_core.backends.interactvlm.tokenizer import add_interactvlm_tokens, build_dev_tokenizer
from ivlm_core.backends.interactvlm.train import TrainConfig, export_checkpoint, load_manifest, train
from ivlm_core.body import load_body_model
from ivlm_core.render import Rasterizer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = ap.add_mutually_exclusive_group(required=True)
    data.add_argument("--manifest", help="JSON lines: image, label, contact_vertices, body_parts")
    data.add_argument(
        "--damon", help="DAMON split: InteractVLM's folder (imgname.npy, contact_label_objectwise.pkl) or "
                        "DECO's .npz (imgname, contact_label_objectwise); labels are SMPL vertex ids",
    )
    ap.add_argument("--damon-images", default=None, help="DAMON image folder (default: <split>/images)")
    ap.add_argument("--out", required=True, help="output folder (last/ holds the resumable state)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="InteractVLM checkpoint folder to start from")
    src.add_argument("--tiny", action="store_true", help="tiny random model (CPU development run)")
    ap.add_argument("--sam-checkpoint", default="", help="sam_vit_h_4b8939.pth, if the checkpoint lacks SAM")
    ap.add_argument(
        "--body-model", default="",
        help="anny | smpl | smplh | smplx: the body rendered and the topology of the labels (default: the "
             "checkpoint's trained body, smplh for released checkpoints; anny with --tiny)",
    )
    ap.add_argument("--body-model-path", default=None)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--min-vertices", type=int, default=2,
                    help="face inclusion for target masks (2: mv2 rule of hcontact-damon-fix; 3: older data)")
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument(
        "--export", action="store_true", help="also write <out>/checkpoint: LoRA merged, original layout"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.tiny:
        tokenizer = build_dev_tokenizer()
        seg = add_interactvlm_tokens(tokenizer)
        torch.manual_seed(0)
        loc = MVLoc(build_net(tiny_architecture(len(tokenizer), seg), "cpu"), tokenizer)
    else:
        loc = MVLoc.from_checkpoint(
            MVLocConfig(checkpoint_dir=args.checkpoint, sam_checkpoint=args.sam_checkpoint)
        )
    body = load_body_model(
        args.body_model or ("anny" if args.tiny else trained_body_name(loc.arch)), args.body_model_path
    )
    rig, _ = body_rig(body, Rasterizer(loc.arch.mask_size, device=str(loc.net.device)))  # native frame
    loc.set_views("body", rig.images, rig.cam_params)
    if args.damon:
        if body.num_vertices != DAMON_VERTICES:
            ap.error(f"DAMON labels are SMPL vertex ids: train on smplh or smpl, not {body.name}")
        samples = read_damon(args.damon, args.damon_images, body.num_vertices)
    else:
        samples = load_manifest(args.manifest, body.num_vertices)
    logging.info("%d samples", len(samples))
    cfg = TrainConfig(
        out_dir=args.out,
        steps=args.steps,
        lr=args.lr,
        save_every=args.save_every,
        min_vertices=args.min_vertices,
    )
    losses = train(loc, samples, rig, body.faces, cfg, resume=not args.no_resume)
    if losses:
        logging.info("steps %d, loss first %.4f last %.4f", len(losses), losses[0], losses[-1])
    if args.export:
        source = Path(args.checkpoint or "").expanduser() / "config.json"
        config = json.loads(source.read_text()) if args.checkpoint else checkpoint_config(loc.arch)
        config[TRAINED_BODY_KEY] = body.name  # the backend renders this body for the exported model
        export_checkpoint(loc, Path(args.out) / "checkpoint", config)
        logging.info("exported %s", Path(args.out) / "checkpoint")
    return 0


if __name__ == "__main__":
    sys.exit(main())
