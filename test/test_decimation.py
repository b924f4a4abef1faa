"""Display-mesh decimation without ROS: the triangle budget, the cluster map, small patches kept."""

from __future__ import annotations

import numpy as np
import pytest

from ivlm_core.body import load_body_model
from ivlm_core.decimation import decimate
from ivlm_core.objects import ObjectRegistry


@pytest.mark.parametrize("budget", [500, 3000])
def test_the_body_meets_the_budget_and_a_five_vertex_patch_survives(budget):
    anny = load_body_model("anny")
    mesh = decimate(anny.canonical_vertices, anny.faces, budget)
    assert 0.6 * budget <= len(mesh.faces) <= budget
    assert mesh.cluster.shape == (anny.num_vertices,) and mesh.faces.max() < len(mesh.kept)
    kept = anny.canonical_vertices[mesh.kept]
    extent = np.ptp(anny.canonical_vertices, axis=0)
    assert np.all(np.ptp(kept, axis=0) > 0.8 * extent)  # the decimated body still spans the body
    p = np.zeros(anny.num_vertices, np.float32)
    p[anny.part_vertex_ids("right_hand")[:5]] = 1.0  # less than one cluster at the coarsest budget
    assert mesh.cluster_max(p).max() == 1.0


def test_a_mesh_within_budget_is_kept_as_is_and_a_zero_budget_is_refused():
    cup = ObjectRegistry().builtin("cup")
    mesh = decimate(cup.vertices, cup.faces, 10**6)
    np.testing.assert_array_equal(mesh.faces, cup.faces)
    np.testing.assert_array_equal(mesh.kept, np.arange(len(cup.vertices)))
    with pytest.raises(ValueError, match="triangle budget"):
        decimate(cup.vertices, cup.faces, 0)
