"""Contact priors by affordance class (`contact_priors.yaml`) over the one category table.

A label resolves to a row of ivlm_core/objects/categories.yaml (built-in category or vocabulary
noun); the row names its affordance class and may carry its own part priors. What the class means
for the body (which parts touch, and which evidence confirms each) is this module's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ivlm_core.body.parts import CENTRAL_PARTS, SIDED_PARTS
from ivlm_core.objects.categories import CATEGORIES_PATH, LabelResolver

PRIORS_PATH = Path(__file__).with_name("contact_priors.yaml")

TESTS = ("near", "seated", "support", "stands_on", "rides", "pedals", "rests", "leans")
# Largest extent (metres, at the person's depth) up to which an unresolved object is taken as
# hand-held small / hand-held large; anything larger is a structure touched with the hands.
GEOMETRY_CLASSES = ((0.6, "hand_held_small"), (2.0, "hand_held_large"), (float("inf"), "lean_on"))


@dataclass(frozen=True)
class PartPrior:
    """One body part's prior for a category and the evidence test that must confirm it."""

    part: str  # a PART_NAMES name, with side (left_hand) or central (buttocks)
    prior: float  # in [0, 1]
    test: str  # one of TESTS
    requires: str | None = None  # a part that must touch too (its score caps this one's)


@dataclass(frozen=True)
class CategoryPrior:
    """Everything the backend knows about one object label."""

    label: str  # the table row the label resolved to (the label itself when unresolved)
    size_m: float  # typical largest extent, metres
    parts: tuple[PartPrior, ...]
    known: bool  # False when the label resolved to no row (reasoned from geometry)
    affordance: str = ""  # the class of contact_priors.yaml whose parts apply
    extended: bool = False  # a surface or scenery: its box says nothing about its distance
    via: str = ""  # how the label reached the row ("" when exact)
    width_m: float | None = None  # typical second-largest extent (what an end-on view spans), metres


def normalize_label(label: str) -> str:
    """Lower case, single spaces, underscores as spaces: 'Tennis_Racket ' -> 'tennis racket'."""
    return " ".join(label.replace("_", " ").lower().split())


class ContactPriors:
    """Affordance classes and the category table: `get(label)` gives a label's part priors."""

    def __init__(self, path: Path | str = PRIORS_PATH, categories_path: Path | str = CATEGORIES_PATH,
                 labels: LabelResolver | None = None) -> None:
        """labels: the category table already loaded (the object registry's), else read from
        categories_path."""
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        self.path = Path(path)
        self.threshold = float(data["threshold"])
        self.affordances = {
            name: self._parts(f"{self.path}: affordance class '{name}'", entry["parts"] or {})
            for name, entry in data["affordances"].items()
        }
        self.labels = labels if labels is not None else LabelResolver(Path(categories_path))
        categories_path = self.labels.path
        for row in (*self.labels.categories.values(), *self.labels.vocabulary.values()):
            if row.affordance not in self.affordances:
                raise ValueError(
                    f"{categories_path}: '{row.label}' has affordance '{row.affordance}', which {self.path} "
                    f"does not define; use one of {sorted(self.affordances)}"
                )
        self._own = {
            row.label: self._parts(f"{categories_path}: category '{row.label}'", row.contact)
            for row in self.labels.categories.values()
            if row.contact is not None
        }

    def get(self, label: str) -> CategoryPrior:
        """The priors of a label; an unresolved one gets a hand-held class until `from_geometry` sizes it."""
        match = self.labels.resolve(label)
        if match is None:
            return self.from_geometry(normalize_label(label), 0.5)
        row = match.category
        return CategoryPrior(
            label=row.label,
            size_m=float(row.size_m.max()),
            parts=self._own.get(row.label, self.affordances[row.affordance]),
            known=True,
            affordance=row.affordance,
            extended=row.extended,
            via=match.via,
            width_m=float(np.sort(row.size_m)[1]),
        )

    def from_geometry(self, label: str, size_m: float) -> CategoryPrior:
        """Priors of an unresolved label from its metric size (GEOMETRY_CLASSES)."""
        affordance = next(cls for limit, cls in GEOMETRY_CLASSES if size_m < limit)
        return CategoryPrior(label, float(size_m), self.affordances[affordance], False, affordance)

    def _parts(self, where: str, entry: dict) -> tuple[PartPrior, ...]:
        parts: list[PartPrior] = []
        for part, values in entry.items():
            prior, test, *rest = values
            requires = rest[0] if rest else None
            if requires is not None and requires not in CENTRAL_PARTS:
                raise ValueError(f"{where}, part '{part}': a required part must be one of {CENTRAL_PARTS}")
            if test not in TESTS:
                raise ValueError(f"{where}, part '{part}': test must be one of {TESTS}")
            if not 0.0 <= float(prior) <= 1.0:
                raise ValueError(f"{where}, part '{part}': prior must be in [0, 1]")
            if part in SIDED_PARTS:
                parts += [PartPrior(f"{side}_{part}", float(prior), test, requires)
                          for side in ("left", "right")]
            elif part in CENTRAL_PARTS:
                parts.append(PartPrior(part, float(prior), test, requires))
            else:
                names = SIDED_PARTS + CENTRAL_PARTS
                raise ValueError(f"{where} names unknown part '{part}'; use one of {names}")
        return tuple(parts)
