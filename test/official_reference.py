"""Reference implementations written from the official InteractVLM code, sharing nothing with ivlm_core.

`official_lift` transcribes `HumanContact3DPredictor` (model/components.py, github.com/saidwivedi/InteractVLM
at 79b4bf2): dense pixel_to_vertex / bary_coords maps per view, sigmoid of the clamped logits,
scatter_add_ of votes and counts in the mask dtype, per-view division, mean over the views that count.
"""

from __future__ import annotations

import numpy as np
import torch


def official_lift(seg_maps: torch.Tensor, p2v: np.ndarray, bary: np.ndarray, num_vertices: int):
    """HumanContact3DPredictor.forward for one sample: seg_maps (N, H, W) logits in their dtype."""
    dtype = seg_maps.dtype
    pred = torch.zeros(num_vertices, dtype=dtype)
    view_count = torch.zeros(num_vertices, dtype=dtype)
    for view in range(seg_maps.shape[0]):
        values = torch.sigmoid(torch.clamp(seg_maps[view], -20.0, 20.0)).reshape(-1)
        vertices = torch.from_numpy(p2v[view]).reshape(-1, 3)
        weights = torch.from_numpy(bary[view]).to(dtype=dtype).reshape(-1, 3)
        valid = ((vertices >= 0) & (vertices < num_vertices)).all(dim=1)
        vertices, weights, values = vertices[valid], weights[valid], values[valid]
        votes, counts = torch.zeros_like(pred), torch.zeros_like(view_count)
        for i in range(3):
            votes.scatter_add_(0, vertices[:, i].long(), weights[:, i] * values)
            counts.scatter_add_(0, vertices[:, i].long(), weights[:, i])
        ok = counts > 0
        votes[ok] = votes[ok] / counts[ok]
        pred = pred + votes
        view_count = view_count + ok.to(dtype)
    ok = view_count > 0
    pred[ok] = pred[ok] / view_count[ok]
    return torch.clamp(pred, 0.0, 1.0)
