"""Every code snippet of the README runs, as a new user would run it, on a fresh copy.

The README's ``bash`` and ``python`` blocks are run in document order in one fresh copy
of the repository (its tracked files, in a temporary folder), with the copy's own
``src`` on the path.  A block may carry a mark on the line above it:

- ``<!-- readme-test: skip (reason) -->``: not run, for the reason given (it installs
  from the internet, or it is the test suite itself);
- ``<!-- readme-test: slow (reason) -->``: run only with ``-m readme_slow`` (minutes).

``metamed data fetch`` lines get ``--base-url`` of a loopback mirror of the real files
(``METAMED_DATA_DIR``; without it they and the blocks after them that read ``data``
skip, as every real-data test does): the command is the README's, the network is not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<mark>\w+)(?: \((?P<reason>[^)]*)\))? -->\n)?"
    r"^```(?P<lang>bash|python)\n(?P<code>.*?)^```",
    re.S | re.M,
)
FETCH = re.compile(r"^metamed data fetch (\S+) .*$", re.M)


def snippets() -> list:
    text = README.read_text(encoding="utf-8")
    params = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("lang")) + 1
        mark, reason = match["mark"], match["reason"] or ""
        marks = []
        if mark == "skip":
            marks.append(pytest.mark.skip(reason=f"README line {line}: {reason}"))
        elif mark == "slow":
            marks.append(pytest.mark.readme_slow)
        elif mark is not None:
            raise ValueError(f"README line {line}: unknown readme-test mark '{mark}'")
        snippet = (match["lang"], match["code"])
        params.append(pytest.param(snippet, id=f"line{line}-{match['lang']}", marks=marks))
    return params


def test_readme_marks_are_known_and_blocks_found():
    found = snippets()
    assert len(found) >= 6  # the README's own blocks (install, API, benchmark...)
    runnable = [p for p in found if not p.marks]
    assert any(p.values[0][0] == "python" for p in runnable)


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory) -> Path:
    """The repository's tracked files, copied as a fresh clone would have them."""
    root = tmp_path_factory.mktemp("readme") / "metamed"
    try:
        listed = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True
        ).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: the package
        listed = [str(p.relative_to(REPO)) for p in (REPO / "src").rglob("*") if p.is_file()]
        listed += ["README.md", "pyproject.toml", "Makefile"]
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    return root


def _environment(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root / "src")  # the copy's code, not the checkout's
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "100"
    return env


@pytest.mark.parametrize("snippet", snippets())
def test_readme_snippet_runs(snippet, fresh_copy, serve, request):
    lang, code = snippet
    data_dir = os.environ.get("METAMED_DATA_DIR", "").strip()
    needs_data = FETCH.search(code) or '"data"' in code or "--data-dir data" in code
    if needs_data and not data_dir:
        pytest.skip("reads the real data: set METAMED_DATA_DIR (the mirror of metamed data fetch)")
    with_mirror = code
    mirrors = []
    for match in FETCH.finditer(code):
        from metamed.data import get_source

        mirror = serve(Path(data_dir) / get_source(match[1]).folder)
        mirrors.append(mirror)
        url = mirror.__enter__()
        with_mirror = with_mirror.replace(match[0], f"{match[0]} --base-url {url}")
    try:
        if lang == "bash":
            command = ["bash", "-euo", "pipefail", "-c", with_mirror]
        else:
            command = [sys.executable, "-c", with_mirror]
        done = subprocess.run(
            command, cwd=fresh_copy, env=_environment(fresh_copy), capture_output=True,
            text=True, timeout=1800,
        )  # fmt: skip
    finally:
        for mirror in mirrors:
            mirror.__exit__(None, None, None)
    assert done.returncode == 0, f"{lang} snippet failed:\n{code}\n{done.stdout}\n{done.stderr}"
