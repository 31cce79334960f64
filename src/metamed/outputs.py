"""Output places: checked before any work starts, written all or nothing.

Two calls, for anything that writes a folder of results (a benchmark run, a dosing
report, a dataset download)::

    place = check_output_place(out, force=force)    # before any work: fails in milliseconds
    ...                                             # minutes of training
    with staged_output(place) as staging:           # write into `staging`
        (staging / "results.csv").write_text(...)
    # here `place` holds exactly the staged files, or, if anything failed, what it held before

Traps this module avoids, each found in a real run:

- **Staging beside the destination.** Files are staged *inside* the destination
  (``out/.metamed-staging-<id>/``), never in its parent, so every rename stays on one
  filesystem. ``--out`` may be a mount point (``docker run -v host:/out ... --out /out``)
  or a network folder, where a rename from the parent fails with EXDEV after the whole run.
- **Finding an unusable place at the end.** :func:`check_output_place` rejects a path that
  is a file, lies under a file, or cannot be written, before anything starts.
- **Overwriting without a word, or half-way.** A folder that already holds files is refused
  unless ``force``; with ``force`` the commit *replaces* its contents, so no stale file from
  an older run stays beside the new ones, and a new ``results.csv`` never sits next to an
  old ``config.json``. The previous entries are moved aside into the staging folder, the new
  ones moved in, the old ones deleted; if a rename fails the moves are undone. ``force``
  never empties a folder that metamed did not write (it carries :data:`MARKER`), so a
  mistyped ``--out ~ --force`` cannot wipe a home folder.
- **Litter from a killed run.** A run holds an exclusive ``flock`` on ``lock`` in its staging
  folder for as long as it lives; the kernel releases it when the process dies, SIGKILL
  included. The next run into the same place removes staging folders whose lock is free,
  first rolling back a commit that was cut short (so the old contents come back whole), and
  refuses to start while a live run is staging there. Where ``flock`` does not exist
  (Windows) a leftover staging folder is reported, never removed.

``merge=True`` is for a folder that gathers the outputs of many runs (a data folder holding
several datasets): existing files are expected, staged files are added (same names
replaced one by one) and nothing else is removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from metamed.errors import OutputPlaceError

try:  # POSIX; the lock is what tells a killed run's staging folder from a live one
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["MARKER", "STAGING_PREFIX", "check_output_place", "staged_output"]

#: Prefix of staging folders inside a destination; entries with it are never outputs.
STAGING_PREFIX = ".metamed-staging-"
#: Written into every folder whose contents metamed replaces, so that ``force`` may replace
#: them again; a non-empty folder without it is never emptied.
MARKER = ".metamed-output"

# Inside one staging folder:
_LOCK = "lock"  # flock-ed by the owning run for its whole life
_NEW = "new"  # the files being written (what staged_output yields)
_OLD = "old"  # the destination's previous entries, during a commit
_MOVING_NEW_IN = "moving-new-in"  # present while new entries are being moved into place
#: A staging folder without a lock this young may be a run that has not locked it yet.
_UNLOCKED_GRACE_S = 60.0

log = logging.getLogger(__name__)


def check_output_place(
    path: str | os.PathLike[str], *, force: bool = False, merge: bool = False, option: str = "--out"
) -> Path:
    """Check that ``path`` can receive a run's outputs, before any work starts.

    Removes staging folders left there by killed runs (rolling back a cut-short commit).

    Parameters
    ----------
    path : path-like
        The destination folder; it need not exist yet (it is created when writing).
    force : bool, default False
        Accept a folder that already holds a previous metamed run's outputs; the commit
        replaces them all.
    merge : bool, default False
        The folder gathers several runs' outputs (a data folder): files there are expected
        and kept (see :func:`staged_output`).
    option : str, default "--out"
        How the user named the place, for messages.

    Returns
    -------
    pathlib.Path
        The destination, with ``~`` expanded.

    Raises
    ------
    OutputPlaceError
        ``path`` is a file, lies under a file, cannot be written, holds files (without
        ``force``, or not written by metamed), or another run is writing there now.
    """
    place = Path(path).expanduser()
    if place.exists() and not place.is_dir():
        raise OutputPlaceError(
            f"{option} {place} is an existing file, not a folder; give a folder path "
            "(it is created if missing)."
        )
    existing = place
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPlaceError(
            f"{option} {place} lies under {existing}, which is a file, not a folder; "
            "choose a path whose parents are folders."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPlaceError(
            f"{option} {place}: cannot write in {existing} (read-only or no permission); "
            "choose a folder you can write to."
        )
    if not place.exists():
        return place
    with _as_place_error(place, f"cannot read {option}"):
        live = _clear_abandoned(place, option)
        entries = sorted(p.name for p in _entries(place))
    if live:
        raise OutputPlaceError(
            f"{option} {place}: another metamed run is writing there now (staging folder "
            f"{live[0].name}); wait for it to finish or choose another folder."
        )
    if merge:
        return place
    if entries and not force:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise OutputPlaceError(
            f"{option} {place} already holds {len(entries)} entries ({shown}); rerun with "
            "--force (force=True) to replace them all, or choose a new or empty folder."
        )
    if entries and MARKER not in entries:
        raise OutputPlaceError(
            f"{option} {place} holds files that metamed did not write; refusing to replace "
            "them even with --force. Choose a new or empty folder."
        )
    return place


@contextlib.contextmanager
def staged_output(path: str | os.PathLike[str], *, merge: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder inside ``path``; on success move its contents into place.

    Parameters
    ----------
    path : path-like
        The destination folder (created if missing; removed again if the body fails and it
        was created here). Check it first with :func:`check_output_place`.
    merge : bool, default False
        False: afterwards ``path`` holds exactly what was staged (the previous entries are
        replaced, none is left beside the new ones). True: staged files are added, replacing
        files of the same name one by one; nothing else is touched.

    Yields
    ------
    pathlib.Path
        The folder to write into. If the body raises, nothing in ``path`` changes.
    """
    place = Path(path).expanduser()
    created = _missing_ancestors(place)
    staging: Path | None = None
    lock_fd: int | None = None
    try:
        with _as_place_error(place, "cannot stage outputs in"):
            place.mkdir(parents=True, exist_ok=True)
            _clear_abandoned(place, "output folder")
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=place))
            lock_fd = _hold_lock(staging)
            (staging / _NEW).mkdir()
        yield staging / _NEW
        with _as_place_error(place, "cannot move the outputs into", intact=not merge):
            if merge:
                _merge(staging / _NEW, place)
            else:
                (staging / _NEW / MARKER).write_text(
                    "Written by metamed. `--force` may replace everything in this folder.\n"
                )
                _replace(place, staging)
    except BaseException:
        if staging is not None and not _holds_old_entries(staging):
            shutil.rmtree(staging, ignore_errors=True)
        # else a roll-back failed too: the previous entries wait there for the next run
        staging = None
        for folder in created:  # innermost first; only what this call created, if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        # Best-effort cleanup: it must not mask the error that brought us here.
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if lock_fd is not None:
            os.close(lock_fd)


@contextlib.contextmanager
def _as_place_error(place: Path, doing: str, intact: bool = True) -> Iterator[None]:
    """Report a filesystem failure (disk full, permissions changed) as one clear error."""
    try:
        yield
    except OutputPlaceError:
        raise
    except OSError as error:
        outcome = "; its previous contents are intact" if intact else ""
        raise OutputPlaceError(
            f"{doing} {place}: {error.strerror or error}{outcome}. Free space or fix the "
            "permissions, or choose another folder."
        ) from error


def _entries(place: Path) -> list[Path]:
    return [p for p in place.iterdir() if not p.name.startswith(STAGING_PREFIX)]


def _missing_ancestors(place: Path) -> list[Path]:
    missing = []
    while not place.exists() and place != place.parent:
        missing.append(place)
        place = place.parent
    return missing


def _hold_lock(staging: Path) -> int | None:
    """Lock ``staging/lock`` for this process's life; the kernel releases it on death."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    pending = staging / (_LOCK + ".pending")
    fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    # Renamed only once held: a `lock` that can be taken always means its owner is gone.
    os.replace(pending, staging / _LOCK)
    return fd


def _owner_alive(staging: Path) -> bool:
    """Whether the run that made ``staging`` still lives (its lock is held)."""
    try:
        fd = os.open(staging / _LOCK, os.O_RDWR)
    except FileNotFoundError:
        # Made but not locked yet, or its run killed in that instant: judge by age.
        return time.time() - staging.stat().st_mtime < _UNLOCKED_GRACE_S
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _clear_abandoned(place: Path, option: str) -> list[Path]:
    """Remove staging folders of dead runs in ``place``; return those of live runs."""
    live = []
    for staging in sorted(place.glob(STAGING_PREFIX + "*")):
        if not staging.is_dir():
            continue
        if fcntl is None:  # pragma: no cover - Windows: no way to tell a live run
            raise OutputPlaceError(
                f"{option} {place} holds {staging.name}, left by a metamed run that may "
                "have been killed; delete it if no run is writing there, then run again."
            )
        try:
            if _owner_alive(staging):
                live.append(staging)
                continue
            _roll_back(place, staging)
            shutil.rmtree(staging)
        except OSError as error:
            if not staging.exists():
                continue  # another run cleared it at the same moment
            raise OutputPlaceError(
                f"{option} {place}: cannot remove {staging.name}, left by a killed metamed "
                f"run ({error.strerror}); delete it by hand, then run again."
            ) from None
        log.warning("removed %s, left in %s by a killed metamed run", staging.name, place)
    return live


def _replace(place: Path, staging: Path) -> None:
    """Make ``place`` hold exactly ``staging/new``'s entries; undo the moves on failure."""
    new, old = staging / _NEW, staging / _OLD
    old.mkdir()
    try:
        for entry in _entries(place):
            os.replace(entry, old / entry.name)
        (staging / _MOVING_NEW_IN).touch()
        for entry in list(new.iterdir()):
            os.replace(entry, place / entry.name)
    except BaseException:
        try:
            _roll_back(place, staging)
        except OSError as error:
            raise OutputPlaceError(
                f"cannot move the outputs into {place}, nor put its previous entries back "
                f"({error.strerror or error}); they wait in {old}, and the next run into "
                "this folder puts them back."
            ) from error
        raise


def _holds_old_entries(staging: Path) -> bool:
    old = staging / _OLD
    return old.is_dir() and any(old.iterdir())


def _roll_back(place: Path, staging: Path) -> None:
    """Undo a commit cut short (by an error, or by a kill found later): the old entries return.

    Ordered so that being killed half-way through it and running it again is safe.
    """
    old = staging / _OLD
    if not _holds_old_entries(staging):
        return  # nothing was moved aside: ``place`` still holds its previous entries
    moving_new_in = staging / _MOVING_NEW_IN
    if moving_new_in.exists():
        if not any((staging / _NEW).iterdir()):
            return  # every new entry arrived: the commit completed, only cleanup was left
        for entry in _entries(place):  # all old entries are aside, so these are new ones
            _remove(entry)
        moving_new_in.unlink()
    for entry in list(old.iterdir()):
        os.replace(entry, place / entry.name)


def _merge(source: Path, target: Path) -> None:
    for entry in sorted(source.rglob("*")):
        if entry.is_file():
            destination = target / entry.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(entry, destination)


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()
