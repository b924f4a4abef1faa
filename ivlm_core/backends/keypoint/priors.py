"""Object-category contact priors, read from `contact_priors.yaml` (data, not code)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

PRIORS_PATH = Path(__file__).with_name("contact_priors.yaml")

SIDED_PARTS = ("upper_arm", "forearm", "hand", "thigh", "calf", "foot")
CENTRAL_PARTS = ("head", "neck", "torso_front", "torso_back", "hips", "buttocks")
TESTS = ("near", "seated", "support")


@dataclass(frozen=True)
class PartPrior:
    """One body part's prior for a category and the evidence test that must confirm it."""

    part: str  # a PART_NAMES name, with side (left_hand) or central (buttocks)
    prior: float  # in [0, 1]
    test: str  # one of TESTS


@dataclass(frozen=True)
class CategoryPrior:
    """Everything the backend knows about one object category."""

    label: str  # the category the query label resolved to ("default" when unknown)
    size_m: float  # typical largest extent, metres
    parts: tuple[PartPrior, ...]
    known: bool  # False when the label fell back to `default`


def normalize_label(label: str) -> str:
    """Lower case, single spaces, underscores as spaces: 'Tennis_Racket ' -> 'tennis racket'."""
    return " ".join(label.replace("_", " ").lower().split())


class ContactPriors:
    """The category table: `get(label)` resolves aliases and falls back to the generic default."""

    def __init__(self, path: Path | str = PRIORS_PATH) -> None:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        self.path = Path(path)
        self.threshold = float(data["threshold"])
        self.default = self._category("default", data["default"], known=False)
        self.categories = {
            normalize_label(name): self._category(normalize_label(name), entry, known=True)
            for name, entry in data["categories"].items()
        }
        self.aliases = {
            normalize_label(a): normalize_label(t) for a, t in (data.get("aliases") or {}).items()
        }
        for alias, target in self.aliases.items():
            if target not in self.categories:
                raise ValueError(f"{self.path}: alias '{alias}' points to unknown category '{target}'")

    def get(self, label: str) -> CategoryPrior:
        key = normalize_label(label)
        key = self.aliases.get(key, key)
        return self.categories.get(key, self.default)

    def _category(self, name: str, entry: dict, known: bool) -> CategoryPrior:
        size = float(entry["size_m"])
        if size <= 0:
            raise ValueError(f"{self.path}: category '{name}' needs a positive size_m, got {size}")
        parts: list[PartPrior] = []
        for part, (prior, test) in entry["parts"].items():
            if test not in TESTS:
                raise ValueError(
                    f"{self.path}: category '{name}', part '{part}': test must be one of {TESTS}"
                )
            if not 0.0 <= float(prior) <= 1.0:
                raise ValueError(f"{self.path}: category '{name}', part '{part}': prior must be in [0, 1]")
            if part in SIDED_PARTS:
                parts += [PartPrior(f"{side}_{part}", float(prior), test) for side in ("left", "right")]
            elif part in CENTRAL_PARTS:
                parts.append(PartPrior(part, float(prior), test))
            else:
                raise ValueError(
                    f"{self.path}: category '{name}' names unknown part '{part}'; "
                    f"use one of {SIDED_PARTS + CENTRAL_PARTS}"
                )
        return CategoryPrior(label=name, size_m=size, parts=tuple(parts), known=known)
