"""Both HTML reports in a real browser: headless Chromium at desktop and phone widths.

    python benchmarks/check_reports_browser.py [--out runs/browser-check]

Runs a quick benchmark (built-in synthetic hospitals, three methods) and a quick dosing
run, then opens each ``report.html`` in headless Chromium (Debian's ``chromium`` package:
``apt-get install chromium``) at 1280 px (desktop) and 390 px (a phone) wide. For each it
saves a screenshot (``<report>-<width>.png``) and measures, inside the page, whether
anything sticks out of the window: the page's own scroll width, and every element whose
right edge passes the window, except inside the boxes meant to scroll sideways (wide
tables, ``<pre>``). Writes ``browser_check.json`` beside the screenshots and exits 1 when
a page is wider than its window. ``tests/report/test_browser.py`` (marked ``browser``)
runs the same check.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}

#: Added at the end of a copy of the report: once the layout is done, it measures it and
#: posts the answer to the page around it (a frame cannot write into its parent's page
#: from a file:// address, but it may post to it).
_PROBE = """<script>
window.addEventListener('load', () => {
  const width = window.innerWidth;
  const scrolls = el => el.closest('.scroll, pre, details:not([open])');
  const wide = [...document.querySelectorAll('body *')]
    .filter(el => el.getBoundingClientRect().right > width + 1 && !scrolls(el))
    .slice(0, 10)
    .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : '')
         + ' ' + Math.round(el.getBoundingClientRect().right) + 'px');
  parent.postMessage(JSON.stringify({window: width,
    page: document.documentElement.scrollWidth, wide: wide}), '*');
});
</script>"""

#: The page that holds the report in a frame of the width under test: headless Chromium
#: will not make its window narrower than 500 px, but a frame can be any width, and the
#: report's layout (and its media queries) follow the frame's width.
_FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="{src}" style="width:{width}px;height:{height}px;border:0"></iframe>
<script>window.addEventListener('message', e => {{
  const out = document.createElement('pre'); out.id = 'metamed-probe';
  out.textContent = e.data; document.body.appendChild(out); }});</script>
</body></html>"""


def chromium() -> str | None:
    """The Chromium binary on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _run_browser(binary: str, args: list[str]) -> str:
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--virtual-time-budget=10000", *args]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    return done.stdout


def check_page(binary: str, report: Path, shots: Path, name: str) -> dict[str, object]:
    """Screenshots and the overflow measurement of one report at every width."""
    work = Path(tempfile.mkdtemp(prefix="metamed-browser-"))
    probed = work / "report.html"
    probed.write_text(
        report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"),
        encoding="utf-8",
    )
    results: dict[str, object] = {}
    try:
        for label, (width, height) in WIDTHS.items():
            measure = work / f"measure-{label}.html"
            measure.write_text(_FRAME.format(src=probed.name, width=width, height=height))
            dom = _run_browser(binary, [f"--window-size={max(width, 500)},{height}",
                                        "--dump-dom", measure.as_uri()])  # fmt: skip
            found = re.search(r'<pre id="metamed-probe">(.*?)</pre>', dom, re.S)
            if found is None:
                raise RuntimeError(f"{name} at {width} px: the page never finished loading")
            measured = json.loads(html.unescape(found.group(1)))
            measured["overflows"] = measured["page"] > measured["window"] or bool(measured["wide"])
            shot_height = 3 * height
            picture = work / f"picture-{label}.html"
            picture.write_text(_FRAME.format(src=probed.name, width=width, height=shot_height))
            png = shots / f"{name}-{label}.png"
            _run_browser(binary, [f"--window-size={max(width, 500)},{shot_height}",
                                  f"--screenshot={png}", picture.as_uri()])  # fmt: skip
            measured["screenshot"] = str(png)
            results[label] = measured
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def make_reports(out: Path) -> dict[str, Path]:
    """A quick benchmark report and a quick dosing report under ``out``."""
    metamed = [sys.executable, "-c", "from metamed.cli import main; main()"]
    subprocess.run(
        [*metamed, "benchmark", "--dataset", "synthetic", "--methods", "maml,pooled,local-logreg",
         "--shots", "4,10", "--draws", "3", "--meta-iterations", "30", "--out",
         str(out / "benchmark"), "--force"],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [*metamed, "dose", "--patients", "adult", "--quick", "--out", str(out / "dose"), "--force"],
        check=True,
    )
    return {"benchmark": out / "benchmark" / "report.html", "dosing": out / "dose" / "report.html"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/browser-check"))
    args = parser.parse_args(argv)
    binary = chromium()
    if binary is None:
        print("no chromium on PATH: apt-get install chromium", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    reports = make_reports(args.out)
    results = {name: check_page(binary, path, args.out, name) for name, path in reports.items()}
    (args.out / "browser_check.json").write_text(json.dumps(results, indent=2))
    bad = [f"{n} at {w}" for n, r in results.items() for w, m in r.items() if m["overflows"]]
    for name, by_width in results.items():
        for label, m in by_width.items():
            print(f"{name:9s} {label:7s} window {m['window']} px, page {m['page']} px, "
                  f"too wide: {', '.join(m['wide']) or 'nothing'}")  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
