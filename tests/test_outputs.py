"""Output places: refused before any work when unusable, written all or nothing, and
tidied after a run killed with SIGKILL (real subprocesses, really killed)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import metamed
from metamed.cli import app
from metamed.errors import MetamedError, OutputPlaceError
from metamed.outputs import MARKER, STAGING_PREFIX, check_output_place, staged_output


def contents(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with its bytes as text."""
    return {
        str(p.relative_to(folder)): p.read_bytes().decode("latin-1")
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def write_run(place: Path, files: dict[str, str], **kwargs) -> None:
    with staged_output(place, **kwargs) as staging:
        for name, text in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(text)


def fake_mount(monkeypatch, mount: Path) -> None:
    """Make ``mount`` behave as another filesystem: renames across its edge fail with EXDEV."""
    real_replace, real_rename = os.replace, os.rename

    def inside(path) -> bool:
        return Path(os.path.abspath(path)).is_relative_to(mount)

    def guard(real):
        def move(src, dst, *args, **kwargs):
            if inside(src) != inside(dst):
                raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
            return real(src, dst, *args, **kwargs)

        return move

    monkeypatch.setattr(os, "replace", guard(real_replace))
    monkeypatch.setattr(os, "rename", guard(real_rename))


def test_errors_are_metamed_and_os_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPlaceError) as caught:
        check_output_place(tmp_path / "file")
    assert isinstance(caught.value, MetamedError) and isinstance(caught.value, OSError)


def test_a_mount_point_as_destination_needs_no_rename_across_filesystems(tmp_path, monkeypatch):
    mount = tmp_path / "mnt"
    mount.mkdir()
    fake_mount(monkeypatch, mount)
    write_run(mount, {"results.csv": "1", "sub/report.html": "2"})
    write_run(mount, {"results.csv": "3"})  # replacing old files stays inside the mount too
    assert contents(mount) == {MARKER: contents(mount)[MARKER], "results.csv": "3"}


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_files_in_the_way_are_refused(tmp_path, where):
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" if where == "file" else tmp_path / "file" / "run" / "deeper"
    with pytest.raises(OutputPlaceError, match="file, not a folder"):
        check_output_place(path)
    assert contents(tmp_path) == {"file": "x"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_read_only_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputPlaceError, match="cannot write"):
            check_output_place(locked / "run")
    finally:
        locked.chmod(0o755)


def test_non_empty_folder_needs_force_and_force_needs_a_metamed_folder(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(OutputPlaceError, match="--force"):
        check_output_place(mine)
    # --force must not empty a folder that metamed did not write (think `--out ~ --force`)
    with pytest.raises(OutputPlaceError, match="did not write"):
        check_output_place(mine, force=True)
    assert contents(mine) == {"notes.txt": "keep"}
    assert check_output_place(tmp_path / "new") == tmp_path / "new"
    assert not (tmp_path / "new").exists()  # checking writes nothing
    (tmp_path / "empty").mkdir()
    check_output_place(tmp_path / "empty")
    check_output_place(mine, merge=True)  # a data folder: files there are expected


def test_force_replaces_everything_and_leaves_no_stale_file(tmp_path):
    out = tmp_path / "run"
    write_run(out, {"results.csv": "old", "config.json": "old", "old-only.txt": "old"})
    with pytest.raises(OutputPlaceError, match="already holds 4 entries"):
        check_output_place(out)
    check_output_place(out, force=True)
    write_run(out, {"results.csv": "new", "config.json": "new"})
    assert sorted(contents(out)) == sorted([MARKER, "results.csv", "config.json"])
    assert {contents(out)[n] for n in ("results.csv", "config.json")} == {"new"}


def test_failed_writing_changes_nothing(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(RuntimeError), staged_output(out) as staging:
        (staging / "results.csv").write_text("half")
        raise RuntimeError("the report failed")
    assert not (tmp_path / "a").exists()  # the folders it created are gone again
    write_run(out, {"results.csv": "old", "config.json": "old"})
    before = contents(out)
    with pytest.raises(RuntimeError), staged_output(out) as staging:
        (staging / "results.csv").write_text("new")
        raise RuntimeError("the report failed")
    assert contents(out) == before


def test_failed_commit_puts_the_old_files_back(tmp_path, monkeypatch):
    """A rename failing half-way never leaves a new results.csv beside an old config.json."""
    out = tmp_path / "run"
    write_run(out, {"results.csv": "old", "config.json": "old", "old-only.txt": "old"})
    before = contents(out)
    real_replace, failed = os.replace, []

    def failing_replace(src, dst):
        if Path(dst) == out / "config.json" and not failed:  # the new config moving in
            failed.append(dst)
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OutputPlaceError, match="previous contents are intact"):
        write_run(out, {"results.csv": "new", "config.json": "new", "zz.txt": "new"})
    assert contents(out) == before
    assert not list(out.glob(STAGING_PREFIX + "*"))


def test_another_live_run_is_refused(tmp_path):
    out = tmp_path / "run"
    with staged_output(out) as staging:
        (staging / "results.csv").write_text("x")
        with pytest.raises(OutputPlaceError, match="another metamed run"):
            check_output_place(out, force=True)
    assert contents(out)["results.csv"] == "x"


def test_merge_adds_files_and_keeps_the_rest(tmp_path):
    data = tmp_path / "data"
    (data / "other-dataset").mkdir(parents=True)
    (data / "other-dataset" / "a.csv").write_text("keep")
    write_run(data, {"heart/x.data": "1"}, merge=True)
    write_run(data, {"heart/y.data": "2", "heart/x.data": "1b"}, merge=True)
    assert contents(data) == {
        "other-dataset/a.csv": "keep",
        "heart/x.data": "1b",
        "heart/y.data": "2",
    }


def _run_and_kill(script: str, *args: str) -> None:
    """Run ``script`` in a fresh interpreter that ends by SIGKILL (its own or ours)."""
    env = {**os.environ, "PYTHONPATH": str(Path(metamed.__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        if line.strip() == "staged":
            proc.kill()
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -9, f"the child was not killed (exit {proc.returncode})"


def test_staging_of_a_killed_run_is_removed_by_the_next_run(tmp_path, caplog):
    out = tmp_path / "run"
    _run_and_kill(
        """
        import sys, time
        from metamed.outputs import staged_output
        with staged_output(sys.argv[1]) as staging:
            (staging / "results.csv").write_text("half-written")
            print("staged", flush=True)
            time.sleep(60)
        """,
        str(out),
    )
    (left,) = out.iterdir()  # the killed run's litter: a hidden staging folder
    assert left.name.startswith(STAGING_PREFIX)
    with caplog.at_level("WARNING", logger="metamed.outputs"):
        check_output_place(out)  # empty apart from the litter: no --force needed
    assert list(out.iterdir()) == []
    assert "killed" in caplog.text


def test_a_commit_cut_short_by_sigkill_is_rolled_back(tmp_path):
    out = tmp_path / "run"
    write_run(out, {"results.csv": "old", "config.json": "old", "old-only.txt": "old"})
    before = contents(out)
    _run_and_kill(
        """
        import os, signal, sys
        from pathlib import Path
        from metamed.outputs import staged_output
        out, real_replace, moved_in = Path(sys.argv[1]), os.replace, []
        def replace(src, dst):
            if Path(dst).parent == out:
                moved_in.append(dst)
                if len(moved_in) == 2:  # one new file is in place, the rest are not
                    os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst)
        os.replace = replace
        with staged_output(out) as staging:
            for name in ("results.csv", "config.json", "new-only.txt"):
                (staging / name).write_text("new")
        """,
        str(out),
    )
    visible = {k: v for k, v in contents(out).items() if not k.startswith(STAGING_PREFIX)}
    assert visible != before  # the kill really left a mixture
    check_output_place(out, force=True)
    assert contents(out) == before
    assert not list(out.glob(STAGING_PREFIX + "*"))


# Through the command: one line, exit 2, nothing written, and before any training.

runner = CliRunner()
QUICK_BENCHMARK = ["benchmark", "--dataset", "synthetic", "--methods", "local-logreg", "--shots", "4", "--draws", "1"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_refused(result, fragment: str) -> None:
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert result.exit_code == 2, result.output
    assert len(errors) == 1 and fragment in errors[0], result.output
    assert "Traceback" not in result.output


@pytest.fixture
def no_work(monkeypatch):
    """Training, simulating or downloading would raise: the refusal must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the output place was checked")

    monkeypatch.setattr("metamed.runs.benchmark.execute", refuse)
    monkeypatch.setattr("metamed.dosing.evaluate.evaluate_controllers", refuse)
    monkeypatch.setattr("metamed.data.fetch._download", refuse)


@pytest.mark.parametrize("command", ["benchmark", "demo", "dose"])
@pytest.mark.parametrize("where", ["file", "under-file", "non-empty"])
def test_unusable_out_is_refused_before_any_work(tmp_path, no_work, command, where):
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("keep")
    out = {"file": "file", "under-file": "file/run", "non-empty": "full"}[where]
    args = QUICK_BENCHMARK if command == "benchmark" else [command]
    before = contents(tmp_path)
    result = invoke(*args, "--out", str(tmp_path / out))
    assert_refused(result, "--force" if where == "non-empty" else "not a folder")
    assert contents(tmp_path) == before


def test_data_fetch_checks_dest_and_base_url_before_downloading(tmp_path, no_work):
    (tmp_path / "file").write_text("x")
    fetch = ["data", "fetch", "uci-heart", "--dest"]
    assert_refused(invoke(*fetch, str(tmp_path / "file")), "not a folder")
    assert_refused(invoke(*fetch, str(tmp_path / "file" / "data")), "not a folder")
    for url in ("localhost:8000/mirror", "http//mirror", "http://host:port/x", "ftp://h/x"):
        result = invoke(*fetch, str(tmp_path / "data"), "--base-url", url)
        assert_refused(result, "--base-url")
    assert contents(tmp_path) == {"file": "x"}
    assert not (tmp_path / "data").exists()


def test_killed_fetch_leaves_nothing_after_the_next_fetch(tmp_path, serve):
    dest = tmp_path / "data"
    _run_and_kill(
        """
        import sys, time
        from metamed.outputs import staged_output
        with staged_output(sys.argv[1], merge=True) as staging:
            (staging / "uci-heart-disease").mkdir()
            (staging / "uci-heart-disease" / "processed.va.data").write_text("half")
            print("staged", flush=True)
            time.sleep(60)
        """,
        str(dest),
    )
    assert [p.name[: len(STAGING_PREFIX)] for p in dest.iterdir()] == [STAGING_PREFIX]
    served = tmp_path / "served"
    served.mkdir()  # an empty mirror: the fetch fails with HTTP 404, installing nothing
    with serve(served) as url:
        result = invoke("data", "fetch", "uci-heart", "--dest", str(dest), "--base-url", url)
    assert_refused(result, "HTTP 404")
    assert list(dest.iterdir()) == []


def test_mount_point_as_out(tmp_path, monkeypatch):
    """``docker run -v host:/out ... --out /out``: no rename may leave the mount."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    fake_mount(monkeypatch, mount)
    result = invoke(*QUICK_BENCHMARK, "--out", str(mount))
    assert result.exit_code == 0, result.output
    assert {"results.csv", "config.json", "report.html"} <= set(contents(mount))


def test_force_replaces_a_run_all_or_nothing(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert invoke(*QUICK_BENCHMARK, "--seed", "1", "--out", str(out)).exit_code == 0
    (out / "stale.csv").write_text("from an older version")
    first = contents(out)
    assert_refused(invoke(*QUICK_BENCHMARK, "--out", str(out)), "--force")

    real_replace, failed = os.replace, []

    def failing_replace(src, dst):  # the new config.json cannot be moved in
        if Path(dst) == out / "config.json" and not failed:
            failed.append(dst)
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    assert_refused(invoke(*QUICK_BENCHMARK, "--out", str(out), "--force"), "intact")
    assert contents(out) == first  # never a new results.csv beside an old config.json
    monkeypatch.undo()

    assert invoke(*QUICK_BENCHMARK, "--out", str(out), "--force").exit_code == 0
    second = contents(out)
    assert "stale.csv" not in second
    assert second["results.csv"] != first["results.csv"]  # seed 0 now, seed 1 before
    assert json.loads(second["config.json"])["config"]["protocol"]["seed"] == 0
