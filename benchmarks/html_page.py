"""Benchmark: the size of ``xlrun report --html`` pages and their load time in headless
Chromium (Debian's ``chromium``, driven by the playwright package).

Usage::

    # a page of an existing database (the quickstart, the imported CPU pilot, …)
    python benchmarks/html_page.py --db sqlite:///xlrun.db --experiment quickstart \
        --baseline hybrid/size [--screenshot docs/quickstart_report.png]
    # a generated study of 150 runs (15 arms × 10 seeds, 11 languages, 3 settings)
    python benchmarks/html_page.py --generate 150 [--questions 60]

Prints the time to write the page (a fresh ``xlrun report --html`` process, imports
included), its size, and the load time in Chromium: from navigation to the ``load`` event,
and to every chart drawn by plotly.js (the median of ``--loads`` loads). The targets are
≤ 10 MB for the quickstart page and ≤ 20 MB for a 150-run study.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
LANGS = ("ar", "de", "el", "en", "es", "fi", "hi", "ru", "uk", "bg", "zh")


def generate(url: str, runs: int, questions: int) -> float:
    """A study of ``runs`` runs (arms × 10 seeds) in a fresh database; seconds taken."""
    sys.path.insert(0, str(REPO / "tests" / "report"))
    from html_study import Study, build

    from xlrun.db.engine import get_engine

    arms = max(3, runs // 10)
    t0 = time.perf_counter()
    engine = get_engine(url)
    build(engine, Study(langs=LANGS, seeds=tuple(range(1, 11)), n_questions=questions,
                        steps=200, log_every=10, untrained=False, extra_arms=arms - 3,
                        experiment="bench"))
    engine.dispose()
    return time.perf_counter() - t0


def write(url: str, out: Path, args: list[str]) -> float:
    """``xlrun report --html`` in a fresh process; seconds taken."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "xlrun", "report", "--db", url, "--html", str(out),
                    *args], check=True, cwd=REPO)
    return time.perf_counter() - t0


def load_times(page: Path, loads: int, screenshot: Path | None) -> tuple[float, float]:
    """Median seconds to the ``load`` event and to every chart drawn."""
    from playwright.sync_api import sync_playwright

    to_load, to_charts = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        for i in range(loads):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            tab = ctx.new_page()
            t0 = time.perf_counter()
            tab.goto(page.as_uri(), wait_until="load", timeout=300_000)
            to_load.append(time.perf_counter() - t0)
            tab.wait_for_function(
                "document.querySelectorAll('figure.chart .js-plotly-plot svg.main-svg')"
                ".length >= document.querySelectorAll('figure.chart').length",
                timeout=300_000)
            to_charts.append(time.perf_counter() - t0)
            if screenshot is not None and i == 0:
                save_screenshot(tab, screenshot)
            ctx.close()
        browser.close()
    return statistics.median(to_load), statistics.median(to_charts)


def save_screenshot(tab: object, path: Path, width: int = 1000) -> None:
    """The page from its top to the end of the forest plot (overview, stage timings, arms ×
    settings) as a PNG ``width`` pixels wide, 256 colours."""
    from PIL import Image

    tab.set_viewport_size({"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    tab.wait_for_timeout(800)  # type: ignore[attr-defined]
    bottom = tab.evaluate(  # type: ignore[attr-defined]
        """() => { const f = document.querySelector('figure[data-chart="forest"]')
                             || document.querySelector('#settings');
                   return f.getBoundingClientRect().bottom + window.scrollY + 12; }""")
    png = tab.screenshot(full_page=True)  # type: ignore[attr-defined]
    im = Image.open(io.BytesIO(png)).convert("RGB")
    im = im.crop((0, 0, im.width, min(im.height, int(bottom))))
    im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    im.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", help="database URL (default: a generated study)")
    p.add_argument("--generate", type=int, default=150, help="runs of the generated study")
    p.add_argument("--questions", type=int, default=60, help="questions per language")
    p.add_argument("--loads", type=int, default=3)
    p.add_argument("--screenshot", type=Path, help="save the top of the page as a PNG")
    p.add_argument("--keep", type=Path, help="keep the page here")
    p.add_argument("report_args", nargs=argparse.REMAINDER,
                   help="more xlrun report flags (after --), e.g. -- --experiment quickstart")
    a, extra = p.parse_known_args()
    extra += [x for x in a.report_args if x != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        url = a.db
        if url is None:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            secs = generate(url, a.generate, a.questions)
            print(f"generated {a.generate} runs × {len(LANGS)} languages × {a.questions} "
                  f"questions in {secs:.1f} s")
            extra = extra or ["--experiment", "bench", "--compare", "arm", "--baseline",
                              "hybrid/size"]
        out = a.keep or Path(tmp) / "page.html"
        secs = write(url, out, extra)
        size = out.stat().st_size
        print(f"xlrun report --html: {secs:.1f} s, {size / 1e6:.2f} MB ({size} bytes)")
        load, charts = load_times(out, a.loads, a.screenshot)
        print(f"Chromium ({a.loads} loads, median): load event {load:.2f} s, every chart "
              f"drawn {charts:.2f} s")


if __name__ == "__main__":
    main()
