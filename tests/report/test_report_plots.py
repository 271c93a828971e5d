"""The PNG plots say what they show: bias bars carry their intervals, significance footnotes
name the test that was run, exposure plots absolute shares (monolingual share included)
under a title that says so, and a coefficient without an interval is drawn and labelled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from html_study import Study, build
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from report_db import new_engine

from xlrun.cli.report import report_command

BASE = ["--compare", "arm", "--baseline", "hybrid/size"]


@pytest.fixture(scope="module")
def study_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('plots') / 'study.db'}"
    engine = new_engine(url)
    build(engine, Study())
    engine.dispose()
    return url


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every matplotlib figure saved during the test."""
    saved: list[Figure] = []
    original = Figure.savefig

    def savefig(self: Figure, *args: Any, **kwargs: Any) -> Any:
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def _run(url: str, *args: str) -> dict[str, Any]:
    res = CliRunner().invoke(report_command, ["--db", url, *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout) if "json" in args else {}


def _texts(fig: Figure) -> str:
    texts = [t.get_text() for t in fig.texts]
    texts += [ax.get_title() for ax in fig.axes]
    return " ".join(texts)


def test_bias_bars_carry_their_intervals(study_url: str, tmp_path: Path,
                                         figures: list[Figure]) -> None:
    doc = _run(study_url, "--bias", "--by", "query-language", *BASE, "--format", "json",
               "--plot", str(tmp_path / "b.png"))
    ax = figures[-1].axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 4  # one per arm
    drawn = []
    for c in bars:
        segments = c.lines[2][0].get_segments()
        drawn += [round(float(s[1][1] - s[0][1]), 6) for s in segments if len(s)]
    want = [round(r["rd_ci_high"] - r["rd_ci_low"], 6) for r in doc["rows"]
            if r["rd_ci_low"] is not None]
    assert sorted(drawn) == pytest.approx(sorted(want), abs=1e-3)
    assert "95% interval" in figures[-1].axes[0].get_ylabel()


def test_footnotes_name_the_test_that_was_run(study_url: str, tmp_path: Path,
                                             figures: list[Figure]) -> None:
    _run(study_url, "--setting", "cross", *BASE, "--plot", str(tmp_path / "h.png"))
    text = _texts(figures[-1])
    assert "paired t" not in text
    assert "--test seed" in text and "seeds and questions random" in text
    _run(study_url, "--by", "setting", *BASE, "--test", "query", "--permutations", "200",
         "--plot", str(tmp_path / "b.png"))
    text = _texts(figures[-1])
    assert "--test query" in text and "question-only paired t" in text


def test_exposure_plot_shows_absolute_shares_with_mono(study_url: str, tmp_path: Path,
                                                      figures: list[Figure]) -> None:
    _run(study_url, "--exposure", "--baseline", "hybrid/size", "--plot",
         str(tmp_path / "e.png"))
    fig = figures[-1]
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "share of query texts (%)", "share of passage texts (%)",
        "in monolingual pairs (% of the language's)"]
    title = fig._suptitle.get_text() if fig._suptitle else ""
    assert "differences" not in title and "monolingual" in title
    # the third panel's bars are the mono shares of the table (×100)
    heights = sorted(round(p.get_height(), 3) for p in fig.axes[2].patches)
    assert max(heights) == pytest.approx(100.0, abs=1e-6)  # monolingual/size: all mono


def test_coefficient_plot_shows_a_term_without_interval(study_url: str, tmp_path: Path,
                                                        figures: list[Figure]) -> None:
    _run(study_url, "--regress", "--setting", "cross", *BASE, "--plot",
         str(tmp_path / "c.png"))
    fig = figures[-1]
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "arm[none] (no interval)" in labels
    assert "hollow points: no interval" in _texts(fig)
