"""The ICD-9-CM diagnosis hierarchy: a code, its 3-character category, its chapter.

ICD-9-CM diagnosis codes have three forms (ICD-9-CM Tabular List of Diseases, NCHS/CMS):

* numeric ``001``-``999``, with up to two digits after a point (``250.83``: diabetes
  with other specified manifestations, type I, uncontrolled);
* ``V01``-``V91`` (factors influencing health status), up to two digits after a point;
* ``E000``-``E999`` (external causes of injury), up to one digit after a point.

The *category* is the part before the point (``250``, ``V57``, ``E849``); it has three
characters except for E codes, whose categories have four.  Numeric categories are
written with three digits: files that stored codes as numbers lost the leading zeros
(``8`` is category ``008``, intestinal infections due to other organisms), and
:func:`normalize_icd9` puts them back.  The *chapter* is the range of categories of one
of the 17 chapters of the Tabular List, or of one of its two supplementary
classifications (:data:`ICD9_CHAPTERS`).

Every function returns ``None`` for a text that is not an ICD-9-CM diagnosis code, so
that the caller decides whether that is an error (a loader reading a column documented
as ICD-9) or an unknown code (a model meeting a code it was never trained on).
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = [
    "ICD9_CHAPTERS",
    "icd9_category",
    "icd9_chapter",
    "icd9_chapter_name",
    "normalize_icd9",
]

#: Chapters of the ICD-9-CM Tabular List (first category, last category, short name),
#: in the order of the Tabular List; V and E codes are its two supplementary
#: classifications.  A chapter is named by its range, e.g. ``"390-459"``.
ICD9_CHAPTERS: tuple[tuple[str, str, str], ...] = (
    ("001", "139", "infectious and parasitic"),
    ("140", "239", "neoplasms"),
    ("240", "279", "endocrine, nutritional, metabolic, immunity"),
    ("280", "289", "blood and blood-forming organs"),
    ("290", "319", "mental disorders"),
    ("320", "389", "nervous system and sense organs"),
    ("390", "459", "circulatory system"),
    ("460", "519", "respiratory system"),
    ("520", "579", "digestive system"),
    ("580", "629", "genitourinary system"),
    ("630", "679", "pregnancy, childbirth, puerperium"),
    ("680", "709", "skin and subcutaneous tissue"),
    ("710", "739", "musculoskeletal and connective tissue"),
    ("740", "759", "congenital anomalies"),
    ("760", "779", "perinatal conditions"),
    ("780", "799", "symptoms, signs, ill-defined conditions"),
    ("800", "999", "injury and poisoning"),
    ("V01", "V91", "factors influencing health status (V codes)"),
    ("E000", "E999", "external causes of injury (E codes)"),
)
_CHAPTER_NAMES = {f"{first}-{last}": name for first, last, name in ICD9_CHAPTERS}

_CODE = re.compile(r"(?:(\d{1,3})(?:\.(\d{1,2}))?|(V\d{2})(?:\.(\d{1,2}))?|(E\d{3})(?:\.(\d))?)")


@lru_cache(maxsize=65536)
def normalize_icd9(code: str) -> str | None:
    """``code`` in canonical form (``"8"`` -> ``"008"``, ``" v57.1"`` -> ``"V57.1"``).

    Returns ``None`` when ``code`` is not an ICD-9-CM diagnosis code.
    """
    match = _CODE.fullmatch(code.strip().upper())
    if match is None:
        return None
    numeric, numeric_sub, v_code, v_sub, e_code, e_sub = match.groups()
    if numeric is not None:
        head, sub = numeric.zfill(3), numeric_sub
        if head == "000":
            return None
    elif v_code is not None:
        head, sub = v_code, v_sub
        if not "V01" <= head <= "V91":
            return None
    else:
        head, sub = e_code, e_sub
    return f"{head}.{sub}" if sub else head


def icd9_category(code: str) -> str | None:
    """The category of ``code``: ``"250.83"`` -> ``"250"``, ``"V57.1"`` -> ``"V57"``, ``"E849.7"`` -> ``"E849"``."""
    canonical = normalize_icd9(code)
    return None if canonical is None else canonical.split(".")[0]


@lru_cache(maxsize=4096)
def _chapter_of_category(category: str) -> str:
    # Plain string order is the Tabular List's order here: categories of one form have
    # one length, and letters sort after digits (and "E" before "V").
    for first, last, _ in ICD9_CHAPTERS:
        if first <= category <= last:
            return f"{first}-{last}"
    raise AssertionError(f"ICD-9 category {category!r} falls in no chapter")  # pragma: no cover


def icd9_chapter(code: str) -> str | None:
    """The chapter of ``code`` as its range of categories: ``"428.0"`` -> ``"390-459"``."""
    category = icd9_category(code)
    return None if category is None else _chapter_of_category(category)


def icd9_chapter_name(chapter: str) -> str:
    """Short name of a chapter range, e.g. ``"390-459"`` -> ``"circulatory system"``."""
    return _CHAPTER_NAMES[chapter]
