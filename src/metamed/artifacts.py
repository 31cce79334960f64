"""Model artifacts: a folder of safetensors weights and a JSON manifest, never a pickle.

A saved meta-learner, adapted model or :class:`~metamed.learners.Pipeline` is a folder::

    model/
      manifest.json         what the model is and how to rebuild it; sha256 of every file
      weights.safetensors   every tensor and array (a JSON header plus raw bytes)
      <name>.txt            models that have a text format of their own (LightGBM)

The layout and every manifest field are documented in ``docs/artifacts.md``.  (The
folder also holds the ``.metamed-output`` marker of :mod:`metamed.outputs`, which writes
it all or nothing; it is not part of the artifact.)

Why not ``torch.save`` / pickle: loading a pickle runs whatever code the file names, so a
model file from a colleague, a model zoo or a shared drive could run anything on the
machine that loads it.  Here the weights are read by safetensors, which only parses a
header and copies bytes, and everything else is plain JSON; classes are found by name in
metamed's own registries, never imported from a path written in the file.

This module knows nothing about learners: it turns a tree of plain values, tensors and
arrays into files and back, and checks on the way in.  :func:`read_artifact` refuses,
with one line saying why and what to do,

- a path that is not a folder with a ``manifest.json`` (e.g. a ``.pt`` file of the old
  pickle format, which is never opened),
- a manifest that is not valid JSON (truncated) or does not match its own checksum
  (edited or damaged),
- a format version newer than this metamed reads,
- a listed file that is missing, of the wrong size (truncated) or of the wrong sha256
  (replaced or changed),
- weights that safetensors cannot parse (a pickle put in their place never reaches an
  unpickler).

The checksums detect damage and casual edits; they are not a signature: whoever can
write the folder can also rewrite the manifest.  What makes loading safe is that no
file is ever executed.

Encoding of values in the manifest (JSON has no tensors, tuples or NaN):

==============================  ==============================================
Python value                    JSON
==============================  ==============================================
None, bool, int, str            as is
float                           as is (Python's shortest repr reads back exactly);
                                NaN / inf as ``{"$float": "nan"}`` etc.
list / dict with str keys       list / object
tuple                           ``{"$tuple": [...]}``
an outcome type (``BINARY``)     ``{"$outcome": "binary"}``
torch.Tensor                    ``{"$tensor": key}``, the tensor under ``key`` in
                                weights.safetensors (``"requires_grad": true``
                                kept when set)
numpy.ndarray                   ``{"$array": key}``, likewise
:class:`TextFile`               ``{"$text": file name}``, the text in that file
==============================  ==============================================
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from metamed.errors import ArtifactError, ArtifactNotFoundError, MetamedTypeError, MetamedValueError
from metamed.outcomes import OUTCOMES, Outcome
from metamed.outputs import STAGING_PREFIX, check_output_place, staged_output

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "WEIGHTS",
    "TextFile",
    "artifact_error",
    "artifact_id",
    "read_artifact",
    "write_artifact",
]

#: Value of the manifest's ``format`` field: says what kind of file this is.
FORMAT = "metamed-artifact"
#: Bumped whenever a reader of the previous version could not load the new layout.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"

#: Manifest fields this module writes; every other top-level field is the caller's.
HEADER_FIELDS = (
    "format",
    "format_version",
    "metamed_version",
    "library_versions",
    "files",
    "manifest_sha256",
)

_TAGS = ("$tensor", "$array", "$tuple", "$float", "$text", "$outcome")
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


@dataclass(frozen=True)
class TextFile:
    """A text saved as its own file of the artifact (``name``), e.g. a LightGBM model."""

    name: str
    text: str


def artifact_error(path: str | Path, reason: str) -> ArtifactError:
    """The one-line error for an artifact that cannot be loaded."""
    return ArtifactError(f"Cannot load model artifact '{path}': {reason}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(manifest: dict[str, Any]) -> bytes:
    """The bytes the manifest checksum is taken over (independent of indentation)."""
    return json.dumps(
        manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


# -- encoding ----------------------------------------------------------------------------
class _Encoder:
    """Turns a value tree into JSON-ready values, collecting tensors and text files."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.texts: dict[str, str] = {}

    def _key(self, where: str) -> str:
        key, n = where, 1
        while key in self.tensors:
            n += 1
            key = f"{where}#{n}"
        return key

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            number = float(value)
            return number if math.isfinite(number) else {"$float": repr(number)}
        if isinstance(value, torch.Tensor):
            key = self._key(where)
            # A copy: safetensors refuses tensors that share memory, and views are not
            # contiguous.
            self.tensors[key] = value.detach().cpu().contiguous().clone()
            ref: dict[str, Any] = {"$tensor": key}
            if value.requires_grad:
                ref["requires_grad"] = True
            return ref
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise MetamedTypeError(
                    f"Cannot save {where}: an array of Python objects has no safe file "
                    "format; convert it to numbers or a list of strings."
                )
            key = self._key(where)
            self.tensors[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
            return {"$array": key}
        if isinstance(value, Outcome):
            return {"$outcome": value.name}
        if isinstance(value, TextFile):
            name = value.name
            if name in self.texts or name in (MANIFEST, WEIGHTS) or not _is_plain_name(name):
                raise MetamedValueError(f"Cannot save {where}: text file name {name!r} is taken.")
            self.texts[name] = value.text
            return {"$text": name}
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v, f"{where}/{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{where}/{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if not isinstance(k, str) or k.startswith("$"):
                    raise MetamedTypeError(
                        f"Cannot save {where}: dictionary key {k!r} is not a string, or starts "
                        "with '$' (reserved for the artifact's own tags)."
                    )
                out[k] = self.encode(v, f"{where}/{k}" if where else k)
            return out
        raise MetamedTypeError(
            f"Cannot save {where}: a {type(value).__name__} is not a tensor, array, number, "
            "string or a list/tuple/dict of these, and artifacts hold no pickled objects."
        )


def _is_plain_name(name: str) -> bool:
    """A file name inside the artifact folder: no folders, no hidden files, no '..'."""
    return bool(name) and Path(name).name == name and not name.startswith(".") and "\\" not in name


# -- decoding ----------------------------------------------------------------------------
def _decode(value: Any, tensors: dict[str, torch.Tensor], texts: dict[str, str], path: Path) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, texts, path) for v in value]
    if not isinstance(value, dict):
        return value
    tags = [k for k in value if k.startswith("$")]
    if not tags:
        return {k: _decode(v, tensors, texts, path) for k, v in value.items()}
    tag = tags[0]
    if tag not in _TAGS:
        raise artifact_error(path, f"manifest.json holds an unknown tag {tag!r}.")
    ref = value[tag]
    if tag == "$tuple":
        return tuple(_decode(v, tensors, texts, path) for v in ref)
    if tag == "$float":
        if ref not in _NON_FINITE:
            raise artifact_error(path, f"manifest.json holds an invalid number {ref!r}.")
        return _NON_FINITE[ref]
    if tag == "$outcome":
        if ref not in OUTCOMES:
            raise artifact_error(
                path,
                f"manifest.json names an outcome type {ref!r} this metamed does not know "
                f"(known: {', '.join(OUTCOMES)}); load it with the metamed version that saved it.",
            )
        return OUTCOMES[ref]
    if tag == "$text":
        if ref not in texts:
            raise artifact_error(
                path, f"manifest.json refers to a text file {ref!r} it does not list."
            )
        return TextFile(ref, texts[ref])
    if ref not in tensors:
        raise artifact_error(
            path, f"manifest.json refers to tensor {ref!r}, which {WEIGHTS} lacks."
        )
    tensor = tensors[ref]
    if tag == "$array":
        return tensor.numpy()
    return tensor.requires_grad_(True) if value.get("requires_grad") else tensor


# -- writing -----------------------------------------------------------------------------
def _check_target(path: Path) -> None:
    """Refuse to replace anything but an earlier artifact (or an empty folder).

    Checked here rather than left to ``check_output_place``: its refusal speaks of
    ``--force``, which saving a model does not have.
    """
    if not path.exists():
        return
    # A killed save's staging folder does not make a folder non-empty.
    entries = (
        [p for p in path.iterdir() if not p.name.startswith(STAGING_PREFIX)]
        if path.is_dir()
        else []
    )
    if path.is_dir() and ((path / MANIFEST).is_file() or not entries):
        return
    raise MetamedValueError(
        f"'{path}' exists and is not a metamed model artifact; refusing to overwrite it. "
        "Save to a new path, or remove it first."
    )


def write_artifact(path: str | Path, content: dict[str, Any]) -> Path:
    """Write ``content`` as an artifact folder at ``path``; return the folder.

    ``content`` is the caller's part of the manifest (kind, model, outcome, ...), a tree of
    the values listed in the module docstring.  Everything is encoded before anything is
    written, and the files are written all or nothing (:mod:`metamed.outputs`): a failed
    or killed save leaves the previous artifact or the new one, never a mix.  An existing
    artifact at ``path`` is replaced; any other existing file or folder is left alone.
    """
    from metamed.provenance import package_versions  # provenance imports metamed itself

    path = Path(path).expanduser()
    reserved = [k for k in content if k in HEADER_FIELDS]
    if reserved:
        raise MetamedValueError(f"Artifact content may not set {reserved}; they are written here.")
    _check_target(path)
    place = check_output_place(path, force=True, option="model path")
    encoder = _Encoder()
    body = encoder.encode(content, "")
    versions = package_versions()
    blobs = {WEIGHTS: save_tensors(encoder.tensors)}
    blobs.update({name: text.encode("utf-8") for name, text in encoder.texts.items()})
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "metamed_version": versions.pop("metamed"),
        "library_versions": versions,
        **body,
        "files": {
            name: {"sha256": _sha256(data), "bytes": len(data)} for name, data in blobs.items()
        },
    }
    manifest["manifest_sha256"] = _sha256(_canonical(manifest))
    with staged_output(place) as staging:
        for name, data in blobs.items():
            (staging / name).write_bytes(data)
        text = json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False)
        (staging / MANIFEST).write_text(text + "\n", encoding="utf-8")
    return place


# -- reading -----------------------------------------------------------------------------
def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest, checked for format, version and its own checksum."""
    if not path.exists():
        raise ArtifactNotFoundError(f"Cannot load model artifact '{path}': no such folder.")
    if path.is_file():
        raise artifact_error(
            path,
            "it is a file, not an artifact folder. metamed saves models as folders "
            f"({MANIFEST} + {WEIGHTS}); files of the old pickle-based save are never opened "
            "because unpickling runs code from the file. Save the model again.",
        )
    if not (path / MANIFEST).is_file():
        raise ArtifactNotFoundError(
            f"Cannot load model artifact '{path}': the folder has no {MANIFEST}; it is not a "
            "metamed artifact (save one with .save(path))."
        )
    raw = (path / MANIFEST).read_bytes()
    try:
        manifest = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise artifact_error(
            path, f"{MANIFEST} is not valid JSON (truncated or edited?): {error}."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise artifact_error(path, f"{MANIFEST} is not a {FORMAT} manifest (format: {found!r}).")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise artifact_error(path, f"format_version must be an integer >= 1, got {version!r}.")
    if version > FORMAT_VERSION:
        from metamed import __version__

        raise artifact_error(
            path,
            f"it is in artifact format {version} (written by metamed "
            f"{manifest.get('metamed_version', '?')}), and this metamed ({__version__}) reads "
            f"format {FORMAT_VERSION} only; upgrade metamed to load it.",
        )
    stated = manifest.pop("manifest_sha256", None)
    if stated != _sha256(_canonical(manifest)):
        raise artifact_error(
            path,
            f"{MANIFEST} does not match its own checksum (manifest_sha256): it was edited or "
            "damaged after saving. Restore the original or save the model again.",
        )
    return manifest


def artifact_id(path: str | Path) -> str:
    """The artifact's ``manifest_sha256`` (checked): names this exact model in lineage records.

    Every file's sha256 is in the manifest, so this one hash pins the whole artifact.
    """
    return _sha256(_canonical(_read_manifest(Path(path))))


def _read_files(path: Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    """Every file the manifest lists, checked for size and sha256."""
    files = manifest.get("files")
    if not isinstance(files, dict) or WEIGHTS not in files:
        raise artifact_error(path, f"{MANIFEST} does not list {WEIGHTS}.")
    blobs = {}
    for name, entry in files.items():
        if not _is_plain_name(name) or name == MANIFEST:
            raise artifact_error(path, f"{MANIFEST} lists an invalid file name {name!r}.")
        file = path / name
        if not file.is_file():
            raise artifact_error(path, f"{name}, listed in {MANIFEST}, is missing.")
        data = file.read_bytes()
        if len(data) != entry.get("bytes"):
            raise artifact_error(
                path,
                f"{name} is {len(data)} bytes, {MANIFEST} says {entry.get('bytes')}: the file "
                "is truncated or was replaced. Copy the artifact again.",
            )
        if _sha256(data) != entry.get("sha256"):
            raise artifact_error(
                path,
                f"{name} does not match its sha256 in {MANIFEST}: the file was changed after "
                "saving. Restore the original or save the model again.",
            )
        blobs[name] = data
    return blobs


def read_artifact(path: str | Path) -> dict[str, Any]:
    """Read and verify the artifact folder at ``path``; return its decoded manifest.

    Tensors and arrays are back in place of their references and text files in place of
    theirs (as :class:`TextFile`).  Raises :class:`~metamed.errors.ArtifactError` (one
    line: what is wrong, what to do) for every refusal listed in the module docstring.
    """
    path = Path(path)
    manifest = _read_manifest(path)
    blobs = _read_files(path, manifest)
    try:
        tensors = load_tensors(blobs.pop(WEIGHTS))
    except SafetensorError as error:
        raise artifact_error(
            path, f"{WEIGHTS} is not a valid safetensors file ({error})."
        ) from None
    texts = {}
    for name, data in blobs.items():
        try:
            texts[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise artifact_error(path, f"{name} is not UTF-8 text.") from None
    return _decode(manifest, tensors, texts, path)
