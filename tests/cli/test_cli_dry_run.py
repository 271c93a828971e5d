"""Dry runs that say what they do (a bar while an embedding similarity encodes, the files they
write named), and one rule for relative paths: ``output_dir`` is relative to the spec's folder
like its data paths, so a spec submitted from another folder finds its caches."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from xlrun.cli import main
from xlrun.db.engine import get_engine
from xlrun.db.store import get_run
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import load_spec

SPEC = """
[experiment]
name = "dry"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
[train_data]
source = "jsonl"
path = "train.jsonl"
[sampling]
language_sampling = "clustered"
similarity = "{similarity}"
n_clusters = 2
exposure = "free"
[train]
steps = 2
batch_size = 4
[[eval]]
dataset = "quickstart"
languages = ["en", "de", "ru"]
"""


WORDS = {"en": ("where", "is", "the"), "de": ("wo", "ist", "der"), "ru": ("где", "есть", "тот")}


def _spec(folder: Path, out: str = "out", similarity: str = "script") -> Path:
    """The spec and its training file (40 parallel ids in en, de, ru: little to encode)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.jsonl").open("w", encoding="utf-8") as f:
        for i in range(40):
            for lang, (w1, w2, w3) in WORDS.items():
                f.write(json.dumps({"parallel_id": f"p{i}", "lang": lang,
                                    "query": f"{w1} {w2} {w3} {i}?",
                                    "passage": f"{w3} {i} {w2} {lang}."}) + "\n")
    spec = folder / "spec.toml"
    spec.write_text(SPEC.format(out=out, similarity=similarity))
    return spec


@pytest.mark.parametrize("out", ["out", "${XLRUN_TEST_OUT:-out}", "./runs/../out"])
def test_output_dir_is_relative_to_the_spec(tmp_path: Path, out: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(tmp_path / "study", out)
    keys = []
    for cwd in (tmp_path, tmp_path / "study", tmp_path / "elsewhere"):
        cwd.mkdir(exist_ok=True)
        monkeypatch.chdir(cwd)
        parsed = load_spec(spec.relative_to(tmp_path) if cwd == tmp_path else spec)
        assert parsed.experiment.output_dir == str(tmp_path / "study" / "out")
        keys.append([r.run_key for r in compile_spec(parsed)])
    assert keys[0] == keys[1] == keys[2]  # run keys do not depend on where you stand
    monkeypatch.setenv("XLRUN_TEST_OUT", "/abs/elsewhere")
    if "XLRUN_TEST_OUT" in out:  # an absolute folder stays itself
        assert load_spec(spec).experiment.output_dir == "/abs/elsewhere"


def test_submitted_runs_store_the_spec_relative_output_dir(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    spec = _spec(tmp_path / "study")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    res = CliRunner().invoke(main, ["submit", str(spec), "--db", db, "--no-run"])
    assert res.exit_code == 0, res.output
    engine = get_engine(db)
    stored = json.loads(get_run(engine, 1)["config_json"])["output_dir"]
    engine.dispose()
    assert stored == str(tmp_path / "study" / "out")


def test_dry_run_shows_a_bar_and_names_what_it_writes(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(tmp_path / "study", similarity="embedding")
    db = tmp_path / "x.db"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    first = CliRunner().invoke(main, ["submit", str(spec), "--db", f"sqlite:///{db}",
                                      "--dry-run"])
    assert first.exit_code == 0, first.output
    out = tmp_path / "study" / "out"
    caches = list((out / "dry" / ".langsim").glob("langsim-embedding-*.json"))
    assert len(caches) == 1
    assert "nothing written" not in first.stdout
    assert "nothing enqueued, no database touched" in first.stdout
    assert f"embedding-similarity cache: {caches[0]}" in first.stdout
    assert f"built model: {out / '.models' / 'quickstart-tiny'}" in first.stdout
    # stderr is not a terminal here: the bar prints plain lines, ending at 100 %
    bar = [line for line in first.stderr.splitlines() if "texts encoded" in line]
    assert bar and re.search(r"texts encoded: (\d+)/\1 \(100%\)", bar[-1]), first.stderr
    assert not db.exists()
    assert not (tmp_path / "elsewhere" / "out").exists()  # nothing beside the current folder
    # the same spec from another folder finds the cache and the model: nothing written now
    monkeypatch.chdir(tmp_path)
    again = CliRunner().invoke(main, ["submit", "study/spec.toml", "--db", f"sqlite:///{db}",
                                      "--dry-run"])
    assert again.exit_code == 0, again.output
    assert "(dry run, nothing written)" in again.stdout
    assert "texts encoded" not in again.stderr
    assert list((out / "dry" / ".langsim").glob("*.json")) == caches
