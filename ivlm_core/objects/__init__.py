"""Object meshes at real-world size for every detection label, and the InteractVLM render normalisation."""

from ivlm_core.objects.categories import (
    CATEGORIES_PATH,
    LabelMatch,
    LabelResolver,
    ObjectCategory,
    load_categories,
    normalize_name,
)
from ivlm_core.objects.mesh import ObjectMesh
from ivlm_core.objects.registry import ObjectRegistry, normalize_for_render

__all__ = [
    "CATEGORIES_PATH",
    "LabelMatch",
    "LabelResolver",
    "ObjectCategory",
    "ObjectMesh",
    "ObjectRegistry",
    "load_categories",
    "normalize_for_render",
    "normalize_name",
]
