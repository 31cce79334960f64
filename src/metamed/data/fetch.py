"""Download a registered dataset's files, verify them, and install them atomically.

``fetch_dataset("uci-heart", dest)`` downloads every file of the dataset from its
public URL (or from ``base_url`` + file name, e.g. a mirror or a loopback server in
tests) into a staging folder inside ``dest`` (:func:`metamed.outputs.staged_output`, so
the final renames never cross filesystems), checks each file's sha256 and size against
the registry, and only when *all* files are good moves them into ``dest/<folder>/``.  A
failed fetch leaves nothing behind: no partial file, no half-installed dataset; a killed
one's staging folder is removed by the next fetch.  ``dest`` and ``base_url`` are checked
before anything is downloaded.  Files already present with the right checksum are kept
and not downloaded again.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from metamed.data.registry import DataFile, get_source, sha256_file
from metamed.errors import ChecksumError, DataNotFoundError, MetamedValueError
from metamed.outputs import check_output_place, staged_output

__all__ = ["fetch_dataset", "ProgressCallback"]

#: ``progress(file_name, bytes_done, bytes_total)``; ``bytes_total`` is the published size.
ProgressCallback = Callable[[str, int, int], None]

_CHUNK_BYTES = 1 << 16


#: URL schemes urllib can download from: a mirror over HTTP(S) or a local folder (file:).
_SCHEMES = ("http", "https", "file")


def _check_base_url(base_url: str) -> None:
    """Reject a malformed mirror URL before anything starts (urllib would fail late)."""
    try:
        parts = urllib.parse.urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        reason = f" ({exc})"
    else:
        if parts.scheme in _SCHEMES and (parts.netloc or parts.scheme == "file"):
            return
        reason = ""
    raise MetamedValueError(
        f"base_url (--base-url) '{base_url}' is not a download URL{reason}; expected "
        "http://host[:port]/path, https://... or file:///folder."
    )


def _file_url(item: DataFile, base_url: str | None) -> str | None:
    if base_url:
        return f"{base_url.rstrip('/')}/{urllib.parse.quote(item.name)}"
    return item.url


def _download(
    url: str, target: Path, item: DataFile, progress: ProgressCallback | None, timeout_s: float
) -> str:
    """Stream ``url`` into ``target``; return the sha256 of the bytes written."""
    digest = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(target, "wb") as out:
            while block := response.read(_CHUNK_BYTES):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress is not None:
                    progress(item.name, done, item.size_bytes)
    except urllib.error.HTTPError as exc:
        raise DataNotFoundError(
            f"Download of '{item.name}' from {url} failed: HTTP {exc.code} {exc.reason}. "
            "Check the URL / mirror (base_url) or try again later."
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataNotFoundError(
            f"Download of '{item.name}' from {url} failed: {reason}. Check the network "
            "connection or the mirror (base_url)."
        ) from exc
    return digest.hexdigest()


def fetch_dataset(
    name: str,
    dest: str | Path,
    base_url: str | None = None,
    progress: ProgressCallback | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Download, verify and install dataset ``name`` under ``dest``.

    Parameters
    ----------
    name : str
        Registered dataset name (see ``metamed datasets``).
    dest : path-like
        Data directory; files end in ``dest/<folder>/``.  Point ``METAMED_DATA_DIR`` at it.
    base_url : str, optional
        Download every file from ``base_url/<file name>`` instead of its registered URL
        (a mirror, or a local server).
    progress : callable, optional
        Called as ``progress(file_name, bytes_done, bytes_total)`` while downloading.
    timeout_s : float, default 60
        Socket timeout per request, in seconds.

    Returns
    -------
    Path
        The dataset folder ``dest/<folder>``.

    Raises
    ------
    ChecksumError
        A downloaded file does not match its published sha256 or size; nothing is
        installed.
    DataNotFoundError
        A download failed (HTTP error, no connection); nothing is installed.
    MetamedValueError
        The dataset has no files (built in), a file has no public URL and no
        ``base_url`` was given, or ``base_url`` is not a URL.
    OutputPlaceError
        ``dest`` is a file, lies under a file or cannot be written.
    """
    source = get_source(name)
    if not source.files:
        raise MetamedValueError(
            f"Dataset '{name}' is built in (no files); nothing to fetch. Load it with "
            f"load_dataset('{name}')."
        )
    if timeout_s <= 0:
        raise MetamedValueError(f"timeout_s must be > 0 seconds, got {timeout_s!r}.")
    if base_url is not None:
        _check_base_url(base_url)
    no_url = [f.name for f in source.files if _file_url(f, base_url) is None]
    if no_url:
        raise MetamedValueError(
            f"Dataset '{name}': no public download of the exact published bytes exists for "
            f"{', '.join(no_url)} (the files were repackaged). Obtain them as described at "
            f"{source.homepage or 'the source named in its citation'}, put them in "
            f"DIR/{source.folder}/, and check them with verify('{name}', DIR); or pass "
            "base_url for a mirror holding those exact files."
        )
    dest = Path(dest).expanduser()
    folder = dest / source.folder
    todo = [
        f
        for f in source.files
        if not ((folder / f.name).is_file() and sha256_file(folder / f.name) == f.sha256)
    ]
    if not todo:
        return folder
    # A data folder gathers datasets: files already there are expected, and kept.
    check_output_place(dest, merge=True, option="--dest")
    with staged_output(dest, merge=True) as staging:
        for item in todo:
            part = staging / source.folder / item.name
            part.parent.mkdir(parents=True, exist_ok=True)
            digest = _download(_file_url(item, base_url) or "", part, item, progress, timeout_s)
            size = part.stat().st_size
            if digest != item.sha256 or size != item.size_bytes:
                raise ChecksumError(
                    f"Dataset '{name}': downloaded '{item.name}' has sha256 {digest} "
                    f"({size} bytes), expected {item.sha256} ({item.size_bytes} bytes). The "
                    "server sent a different or corrupted file; nothing was installed. Try "
                    "again, or another mirror (base_url)."
                )
    return folder
