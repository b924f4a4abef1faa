"""Object meshes at real-world size for every detection label, and the InteractVLM render normalisation."""

from ivlm_core.objects.registry import (
    CATEGORIES_PATH,
    ObjectCategory,
    ObjectMesh,
    ObjectRegistry,
    load_categories,
    normalize_for_render,
    normalize_name,
)

__all__ = [
    "CATEGORIES_PATH",
    "ObjectCategory",
    "ObjectMesh",
    "ObjectRegistry",
    "load_categories",
    "normalize_for_render",
    "normalize_name",
]
