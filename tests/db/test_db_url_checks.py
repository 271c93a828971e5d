"""A port that is not a number, a port out of range and a libpq key-value string given as a
URL are one-line errors that create nothing and print no password (issue 24, smaller items
and item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from xlrun.cli import main

PW = "Pw-abc-4471"


@pytest.mark.parametrize(("url", "needle"), [
    (f"postgresql+psycopg2://u:{PW}@localhost:abc/x", "port must be a number"),
    (f"postgresql://u@localhost:5432x/x?password={PW}", "port must be a number"),
    (f"postgresql://u:{PW}@localhost:99999/x", "outside 1-65535"),
    (f"host=localhost dbname=x user=u password={PW}", "key=value"),
    (f"dbname=x password='{PW}'", "not a database URL"),
])
def test_bad_urls_are_one_line_errors(url: str, needle: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for args in (["status", "--db", url], ["db", "upgrade", "--db", url]):
        res = CliRunner().invoke(main, args)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error:"), \
            res.output
        assert needle in res.output and PW not in res.output, res.output
    res = CliRunner().invoke(main, ["status"], env={"XLRUN_DB": url})
    assert res.exit_code == 2 and PW not in res.output
    assert list(tmp_path.iterdir()) == []  # no SQLite file named after the string
