"""No silent pooling: a report that averages arms, models or settings into one number says so
(and what to add), and ``--compare`` without ``--baseline`` names the documented default."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from xlrun.cli.report import report_command
from xlrun.report.pooling import default_baseline


def _notes(url: str, *args: str) -> list[str]:
    res = CliRunner().invoke(report_command, ["--db", url, "--experiment", "quickstart",
                                              "--format", "json", *args])
    assert res.exit_code == 0, res.output
    return [line[len("note: "):] for line in res.stderr.splitlines()
            if line.startswith("note: ")]


def test_default_report_says_it_pools_every_arm(quickstart_like_url: str) -> None:
    # `xlrun report --experiment quickstart`: by language-pair, no --compare
    notes = [n for n in _notes(quickstart_like_url) if "pools" in n]
    assert len(notes) == 1
    note = notes[0]
    assert "4 arms" in note and "untrained model" in note and "--compare arm" in note
    for arm in ("hybrid/size (2 runs)", "monolingual/size (2 runs)", "none (1 run)"):
        assert arm in note
    # one arm selected: nothing pooled, nothing said
    assert not [n for n in _notes(quickstart_like_url, "--where", "sampler=monolingual")
                if "pools" in n]
    assert not [n for n in _notes(quickstart_like_url, "--compare", "arm") if "pools" in n]


def test_by_run_without_setting_says_it_averages_settings(quickstart_like_url: str) -> None:
    notes = _notes(quickstart_like_url, "--by", "run")
    assert any("averages the settings mono, cross, multi" in n and "--setting" in n
               for n in notes)
    assert not any("pools" in n for n in notes)  # a run is one arm
    assert not any("settings" in n for n in _notes(quickstart_like_url, "--by", "run",
                                                   "--setting", "cross"))
    # language pairs and settings are cells of one setting each: nothing to say
    assert not any("settings" in n for n in _notes(quickstart_like_url, "--by", "setting"))
    assert not any("settings" in n for n in _notes(quickstart_like_url))
    assert any("averages the settings" in n
               for n in _notes(quickstart_like_url, "--by", "query-language", "--compare",
                               "arm", "--baseline", "hybrid/size"))


@pytest.mark.parametrize(("compare", "baseline"), [
    ("arm", "hybrid/size"), ("language_sampling", "size"), ("sampler", "none")])
def test_compare_without_baseline_names_the_default(quickstart_like_url: str, compare: str,
                                                    baseline: str) -> None:
    res = CliRunner().invoke(report_command, [
        "--db", quickstart_like_url, "--experiment", "quickstart", "--by", "setting",
        "--compare", compare, "--format", "json"])
    assert res.exit_code == 0, res.output
    meta = json.loads(res.stdout)["meta"]
    assert meta["baseline"] == meta["arms"][0] == baseline
    assert any(f"comparing to {baseline!r}" in n and "--baseline" in n for n in meta["notes"])
    explicit = _notes(quickstart_like_url, "--by", "setting", "--compare", compare,
                      "--baseline", baseline)
    assert not any("no --baseline" in n for n in explicit)


def test_default_baseline_rule() -> None:
    assert default_baseline(["hybrid/clustered[x]", "hybrid/size", "none"])[0] == "hybrid/size"
    assert default_baseline(["clustered", "size", "(none)"])[0] == "size"
    assert default_baseline(["monolingual/size", "hybrid/clustered[x]"])[0] == "monolingual/size"
    assert default_baseline(["hybrid", "monolingual", "none"])[0] == "none"
    # two random-language arms but the untrained model: the untrained model
    assert default_baseline(["cross_lingual/size", "monolingual/size", "none"])[0] == "none"
    assert default_baseline(["cross_lingual/size", "monolingual/size"])[0] == (
        "cross_lingual/size")
    choice, note = default_baseline(["2e-05", "1e-05"])
    assert choice == "1e-05" and "first in sorted order" in note
