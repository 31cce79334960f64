"""Dataset versions and specs against what is on disk.

A loadable dataset's default cohort is pinned by a fingerprint per version: a change to
its cleaning that forgets to bump ``SPEC.version`` fails here.  After a deliberate
change, bump the version and add the new fingerprint below (keep the old lines: they
document which cohort each version was).  Every spec's files are also checked against
the dataset's own ``SOURCE.md`` where the data directory has it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from metamed.data import Cohort
from metamed.data.registry import DATASETS, get_source, load_dataset, verify

#: (name, version) -> fingerprint of ``load_dataset(name)`` with the default options.
FINGERPRINTS = {
    ("synthetic", 1): "9e8a1401e3d7d557f137a120cf3962103b66da5ca157418ecb05faa9b3ba5780",
    ("uci-heart", 1): "df984ff79234d553a4fd9a08acb76a481abd49a8ec92dcd6874caccdf5f6ee2a",
    ("eicu-demo", 1): "6f87483ebd99b193615bf237290a3a9bd594004596ac4ccd5d3b7383444b8271",
    ("physionet-2012", 1): "dff297f7ed65b3cc93910276fdc1c126686c9322312dfce1a8f3122c37c1ab05",
    ("iwpc-warfarin", 1): "cf58cb4ac66836a8a6e2699131b864656b6cb0f10f3a123da8f5241dacfbb7ae",
    ("opt", 1): "ae5399ec6865f5b7cf61ca66043366eff94337eaff7ee6967b5bb2e47e9dbb89",
    ("indo-rct", 1): "56f5efe5732b14115f7b78b65a842bdfbd1ea3c5afb441ed8bfb547fd93ae9ad",
    ("diabetes-130", 1): "7609c74a5a49093c872db9ec71f84c2e2eaf68841223ae106ceef1979adb840f",
    ("support2", 1): "57e6e39fb122c8780d755ab56636a8e4743a0b8ad1a9b00b1d9a391cc87c6314",
    ("eicu-demo-diagnoses", 1): "43eda4f2d851e8f9cc68ab88b6c29cc6e67b6b14125d009fd90059312335dc62",
    ("moleculenet", 1): "8092416b9b6181591bdbec8c1dd821896a0d7a98c999f9111f641353c131608d",
    ("medmnist", 1): "57cf56c92da56386874157b62b724a8f22e1163f49e65f7ae476e7388a304471",
}


def fingerprint(cohort: Cohort) -> str:
    """sha256 of the table's values (as CSV), dtypes and schema."""
    digest = hashlib.sha256()
    digest.update(cohort.frame.to_csv(index=False).encode())
    digest.update(json.dumps({k: str(v) for k, v in cohort.frame.dtypes.items()}).encode())
    digest.update(json.dumps(cohort.schema.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()


def test_every_loadable_dataset_has_a_fingerprint() -> None:
    loadable = {(s.name, s.version) for s in DATASETS.values() if s.loadable}
    assert loadable <= set(FINGERPRINTS), (
        f"record the fingerprint of {sorted(loadable - set(FINGERPRINTS))} in FINGERPRINTS"
    )


def _check(name: str, data_dir: Path | None) -> None:
    spec = get_source(name)
    found = fingerprint(load_dataset(name, data_dir))
    assert found == FINGERPRINTS[(name, spec.version)], (
        f"The default cohort of '{name}' changed but its version is still {spec.version}: "
        f"bump SPEC.version and add ('{name}', {spec.version + 1}): '{found}' to FINGERPRINTS."
    )


def test_synthetic_cohort_matches_its_version() -> None:
    _check("synthetic", None)


def test_uci_heart_cohort_matches_its_version(data_dir: Path, uci_heart_dir: Path) -> None:
    _check("uci-heart", data_dir)


@pytest.mark.parametrize(
    "name",
    [
        "eicu-demo",
        "eicu-demo-diagnoses",
        "physionet-2012",
        "iwpc-warfarin",
        "opt",
        "indo-rct",
        "diabetes-130",
        "support2",
        "moleculenet",
        "medmnist",
    ],
)
def test_real_cohort_matches_its_version(name: str, data_dir: Path, need_dataset) -> None:
    need_dataset(get_source(name).folder)  # fails (never skips) when the folder is missing
    _check(name, data_dir)


# A row of the "## Files" table of a SOURCE.md: | `name` | 1,234 | ... | `sha256` |
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*([\d,]+)\s*\|.*`([0-9a-f]{64})`\s*\|\s*$")


def _source_md_files(folder: Path) -> dict[str, tuple[int, str]]:
    rows = {}
    for line in (folder / "SOURCE.md").read_text("utf-8").splitlines():
        if match := _ROW.match(line):
            name, size, digest = match.groups()
            rows[name] = (int(size.replace(",", "")), digest)
    return rows


def test_specs_agree_with_source_md(data_dir: Path) -> None:
    """Each dataset folder's SOURCE.md is covered by its specs (several may share a
    folder, e.g. ``opt`` and ``indo-rct`` in ``r-multisite-trials``) with the same sizes
    and sha256."""
    by_folder: dict[str, list] = {}
    for spec in DATASETS.values():
        if spec.folder:
            by_folder.setdefault(spec.folder, []).append(spec)
    folders = sorted(p.parent for p in data_dir.glob("*/SOURCE.md"))
    if not folders:
        pytest.skip(f"no dataset folder with a SOURCE.md in {data_dir}")
    for folder in folders:
        assert folder.name in by_folder, f"no dataset spec for the folder {folder.name}"
        published = _source_md_files(folder)
        for spec in by_folder[folder.name]:
            for item in spec.files:
                assert published.get(item.name) == (item.size_bytes, item.sha256), (
                    spec.name,
                    item.name,
                )


def test_real_files_match_their_specs(data_dir: Path, uci_heart_dir: Path) -> None:
    """Every dataset present in METAMED_DATA_DIR verifies against its spec's checksums
    (uci-heart must be there; the others are checked when present)."""
    checked = 0
    for name, spec in DATASETS.items():
        if spec.files and (data_dir / spec.folder).is_dir():
            assert set(verify(name, data_dir)) == {f.name for f in spec.files}
            checked += 1
    assert checked >= 1
