"""``${VAR}`` expands only documented variables and never a secret (issue 24, item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from xlrun.cli import main
from xlrun.errors import SpecError
from xlrun.spec.load import parse_spec

SPEC = """{env}
[experiment]
name = "env"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
query_prefix = "{prefix}"
[train]
steps = 0
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
max_queries_per_language = 3
"""


def _spec(prefix: str, env: str = "", out: str = "xlrun-out") -> str:
    return SPEC.format(env=env, prefix=prefix, out=out)


def test_documented_variables_expand_and_are_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLRUN_PREFIX", "query: ")
    monkeypatch.setenv("DATA_ROOT", "/data")
    monkeypatch.delenv("XLRUN_UNSET", raising=False)
    spec = parse_spec(_spec("${XLRUN_PREFIX}${XLRUN_UNSET:-}", out="${DATA_ROOT}/out",
                            env='[env]\nallow = ["DATA_ROOT"]'))
    assert spec.base.model.query_prefix == "query: "
    assert spec.experiment.output_dir == "/data/out"
    assert spec.env == {"XLRUN_PREFIX": "query: ", "XLRUN_UNSET": None, "DATA_ROOT": "/data"}
    monkeypatch.setenv("HOME", "/home/me")
    assert parse_spec(_spec("${HOME}")).base.model.query_prefix == "/home/me"


@pytest.mark.parametrize(("name", "value", "needle"), [
    ("AWS_SECRET_ACCESS_KEY", "AKIAexamplesecret", "looks like a secret"),
    ("HF_TOKEN", "hf_examplesecret", "looks like a secret"),
    ("XLRUN_API_KEY", "examplesecret1", "looks like a secret"),
    ("XLRUN_DB", "postgresql://u:examplesecret@h/x", "looks like a secret"),
    ("XLRUN_DB", "postgresql://u@h/x?password=examplesecret", "looks like a secret"),
    ("SOME_VAR", "harmless", "may not be used in a spec"),
])
def test_undocumented_and_secret_variables_are_refused(
        name: str, value: str, needle: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SpecError, match=needle) as err:
        parse_spec(_spec("${" + name + "}"))
    assert value not in str(err.value)
    assert err.value.path == "model.query_prefix"


def test_an_allow_list_never_lets_a_secret_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PASSWORD", "examplesecret")
    with pytest.raises(SpecError, match=r"env\.allow\[0\].*secret"):
        parse_spec(_spec("${MY_PASSWORD}", env='[env]\nallow = ["MY_PASSWORD"]'))
    monkeypatch.setenv("DATA", "postgresql://u:examplesecret@h/x")  # a secret by its value
    with pytest.raises(SpecError, match="looks like a secret") as err:
        parse_spec(_spec("${DATA}", env='[env]\nallow = ["DATA"]'))
    assert "examplesecret" not in str(err.value)
    for bad, needle in (('[env]\nallow = "DATA"', "expected a list"),
                        ('[env]\nallow = ["1X"]', "not an environment variable name"),
                        ('[env]\nvars = ["DATA"]', "unknown key")):
        with pytest.raises(SpecError, match=needle):
            parse_spec(_spec("x", env=bad))


def test_submit_records_what_it_expanded_and_no_secret(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLRUN_PREFIX", "query: ")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "AKIAexamplesecret")
    spec = tmp_path / "s.toml"
    spec.write_text(_spec("${XLRUN_PREFIX}", out=str(tmp_path / "out")))
    url = f"sqlite:///{tmp_path / 'x.db'}"
    res = CliRunner().invoke(main, ["submit", str(spec), "--db", url, "--no-run"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["show", "1", "--db", url])
    assert res.exit_code == 0, res.output
    shown = res.output[res.output.index("config:") + len("config:"):].split("\n\n")[0]
    config = json.loads(shown.split("model as loaded")[0])
    assert config["env"] == {"XLRUN_PREFIX": "query: "}
    spec.write_text(_spec("${AWS_SECRET_ACCESS_KEY}", out=str(tmp_path / "out")))
    res = CliRunner().invoke(main, ["submit", str(spec), "--db", url, "--no-run"])
    assert res.exit_code == 2 and "AKIAexamplesecret" not in res.output, res.output
    assert "AKIAexamplesecret" not in (tmp_path / "x.db").read_bytes().decode("latin-1")


def test_the_shipped_specs_expand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ${VAR} the shipped specs use is allowed (XLRUN_PASSAGE_PREFIX is no password)."""
    repo = Path(__file__).resolve().parents[2]
    for name in ("XLRUN_PASSAGE_PREFIX", "XLRUN_QUERY_PREFIX", "XLRUN_E5"):
        monkeypatch.setenv(name, "x")
    for path in sorted((repo / "experiments").glob("*.toml")):
        spec = parse_spec(path.read_text(), base_dir=path.parent)
        assert all(k.startswith("XLRUN_") for k in spec.env), path
