"""The one category table (`categories.yaml`) and the resolver that maps any detection label onto it.

Every row says what an object is for the whole product: its names (label and synonyms), its size
prior, its affordance class (what people do with it, which the keypoint backend's contact priors
turn into touching body parts) and, for built-in categories, the recipe of its mesh. Nouns without
a built-in shape form the open vocabulary (several hundred nouns, each with a class and a size).

`LabelResolver.resolve` accepts what detectors and people write: plurals ("cups", "knives"),
decorated and multi-word labels ("wet sand" -> sand, "tablet (iPad)", "dining table / counter",
"a pair of scissors", "cup of coffee"); it returns None for a label it cannot place, and says how
it matched otherwise, so that a caller can put that in its evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ivlm_core.objects.shapes import generic_parts

CATEGORIES_PATH = Path(__file__).with_name("categories.yaml")
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def normalize_name(name: str) -> str:
    """Case-, space-, underscore- and hyphen-insensitive key for labels, synonyms and file stems."""
    return "".join(ch for ch in name.lower() if ch not in " _-\t")


@dataclass(frozen=True)
class ObjectCategory:
    """One row of the table: a built-in category or an open-vocabulary noun.

    size_m: (3,) typical extents along x, y, z of the canonical frame, metres. parts: the mesh
    recipe (see ivlm_core.objects.shapes). affordance: a class of the keypoint backend's
    contact_priors.yaml. contact: this row's own part priors ({part: [prior, test]}) or None for its
    class's. builtin: a category with its own shape (False: a vocabulary noun, generic shape).
    extended: a surface or scenery whose image box says nothing about its distance.
    """

    label: str
    synonyms: tuple[str, ...]
    size_m: np.ndarray
    parts: tuple[dict[str, Any], ...]
    like: str | None = None  # built from this category's recipe, stretched to size_m
    affordance: str = "hand_held_small"
    contact: dict[str, list] | None = None
    builtin: bool = True
    extended: bool = False


@dataclass(frozen=True)
class LabelMatch:
    """What a label resolved to, and how (`via`, empty for an exact name or synonym)."""

    category: ObjectCategory
    via: str = ""


def _size(path: Path, label: str, value: Any) -> np.ndarray:
    size = np.asarray(value if value is not None else (), dtype=np.float64)
    if size.shape != (3,) or not np.all(size > 0):
        raise ValueError(f"{path}: category {label!r} needs size_m: [x, y, z] > 0, got {value!r}")
    return size


def load_table(
    path: Path = CATEGORIES_PATH,
) -> tuple[dict[str, ObjectCategory], dict[str, ObjectCategory], dict]:
    """(built-in categories, vocabulary nouns, label grammar) of a categories.yaml.

    Raises ValueError on a malformed row or on a name used by two rows.
    """
    with open(path, encoding="utf-8") as f:
        table = yaml.safe_load(f)
    categories: dict[str, ObjectCategory] = {}
    seen: dict[str, str] = {}

    def claim(names: tuple[str, ...], label: str) -> None:
        for name in names:
            key = normalize_name(name)
            if key in seen and seen[key] != label:
                raise ValueError(f"{path}: name {name!r} is used by both {seen[key]!r} and {label!r}")
            seen[key] = label

    for label, row in table["categories"].items():
        size = _size(path, label, row.get("size_m"))
        recipes = [key for key in ("parts", "shape", "like") if key in row]
        if len(recipes) != 1:
            raise ValueError(f"{path}: category {label!r} needs exactly one of `parts`, `shape` or `like`")
        if "parts" in row:
            parts = row["parts"]
        elif "shape" in row:
            parts = generic_parts(row["shape"], size)
        else:
            like = table["categories"].get(row["like"])
            if like is None or "parts" not in like:
                raise ValueError(
                    f"{path}: category {label!r} is `like` {row['like']!r}, which has no `parts`"
                )
            parts = like["parts"]
        if "affordance" not in row:
            raise ValueError(f"{path}: category {label!r} needs an `affordance` class")
        synonyms = (label, *row.get("synonyms", ()))
        claim(synonyms, label)
        categories[label] = ObjectCategory(
            label, tuple(synonyms), size, tuple(parts), row.get("like"), row["affordance"], row.get("contact")
        )
    vocabulary: dict[str, ObjectCategory] = {}
    for affordance, group in (table.get("vocabulary") or {}).items():
        proportions = np.asarray(group["proportions"], np.float64)
        if proportions.shape != (3,) or not np.all(proportions > 0):
            raise ValueError(f"{path}: vocabulary {affordance!r} needs proportions: [x, y, z] > 0")
        for noun, largest in group["nouns"].items():
            if not float(largest) > 0:
                raise ValueError(f"{path}: vocabulary noun {noun!r} needs a positive size, got {largest!r}")
            size = proportions / proportions.max() * float(largest)
            claim((noun,), noun)
            vocabulary[noun] = ObjectCategory(
                noun,
                (noun,),
                size,
                tuple(generic_parts(group["shape"], size)),
                affordance=affordance,
                builtin=False,
                extended=bool(group.get("extended", False)),
            )
    return categories, vocabulary, table.get("label_grammar") or {}


def load_categories(path: Path = CATEGORIES_PATH) -> dict[str, ObjectCategory]:
    """The built-in categories (those with their own shape) of the table, by label."""
    return load_table(path)[0]


class LabelResolver:
    """Maps a free-form detection label onto a row of the category table (or None)."""

    def __init__(self, path: Path = CATEGORIES_PATH) -> None:
        self.path = Path(path)
        self.categories, self.vocabulary, grammar = load_table(path)
        self._rows = {
            normalize_name(name): row
            for row in (*self.categories.values(), *self.vocabulary.values())
            for name in row.synonyms
        }
        self._quantity = set(grammar.get("quantity_words", ()))
        self._irregular = dict(grammar.get("irregular_plurals", {}))

    def resolve(self, label: str) -> LabelMatch | None:
        """The row a label names: exact name or synonym, else its parts (alternatives split at / , ;
        or "or", parenthesised names, the noun before "of" or after a quantity word, the shortest
        trailing words that name a row), each also in the singular."""
        text = label.lower().replace("_", " ").replace("'s ", " ")
        row = self._rows.get(normalize_name(text))
        if row is not None:
            return LabelMatch(row)
        inner = re.findall(r"\(([^)]*)\)", text)
        outer = re.sub(r"\([^)]*\)", " ", text)
        candidates = [c for part in (outer, *inner) for c in re.split(r"/|,|;|\bor\b|&|\+", part)]
        for candidate in candidates:
            words = _WORD.findall(candidate)
            if "of" in words:
                i = words.index("of")
                before, after = words[:i], words[i + 1 :]
                words = after if before and before[-1] in self._quantity else before
            for start in range(len(words)):
                phrase = words[start:]
                singular = [[*phrase[:-1], s] for s in self._singulars(phrase[-1]) if s != phrase[-1]]
                for form in (phrase, *singular):
                    row = self._rows.get(normalize_name(" ".join(form)))
                    if row is not None:
                        return LabelMatch(row, f"'{' '.join(form)}' in '{label}'")
        return None

    def _singulars(self, word: str) -> list[str]:
        """Singular forms a plural word may have, most likely first (the word itself when none)."""
        if word in self._irregular:
            return [self._irregular[word]]
        forms = []
        if word.endswith("ies") and len(word) > 4:
            forms.append(word[:-3] + "y")
        if word.endswith("ves"):
            forms += [word[:-3] + "f", word[:-3] + "fe"]
        if re.search(r"(s|x|z|ch|sh)es$", word):
            forms.append(word[:-2])
        if word.endswith("s") and not word.endswith("ss"):
            forms.append(word[:-1])
        return forms or [word]
