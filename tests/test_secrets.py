"""Passwords are masked in every form a database URL can carry them (issue 24, item 6)."""

from __future__ import annotations

import pytest

from xlrun.secrets import has_secret, looks_secret, looks_secret_name, mask

PW = "Xq7s3cr3tpw"

FORMS = {
    "userinfo": f"postgresql+psycopg2://user:{PW}@db.example:5432/xlrun",
    "userinfo, password with @": f"postgresql://user:{PW}@x@db.example/xlrun",
    "mistyped scheme": f"postgresql+psycopg2//user:{PW}@host:5432/xlrun",
    "query parameter": f"postgresql://user@db.example/xlrun?password={PW}&sslmode=require",
    "query parameter, first": f"postgresql:///xlrun?password={PW}",
    "sslpassword": f"postgresql://u@h/x?sslmode=verify-full&sslpassword={PW}",
    "libpq key-value": f"host=db.example dbname=xlrun password={PW} user=u",
    "libpq key-value, quoted": f"host=h password='{PW} with space' dbname=x",
    "libpq spaces around =": f"host=h password = {PW}",
    "environment assignment": f"PGPASSWORD={PW} xlrun status",
    "quoted in an error": f"not a database URL: 'postgresql://u:{PW}@h/x' (e.g. …)",
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_form_is_masked(form: str) -> None:
    text = FORMS[form]
    masked = mask(text)
    assert PW not in masked and "***" in masked, masked
    assert has_secret(text)


def test_text_without_passwords_is_left_alone() -> None:
    for text in ("sqlite:///path/to/xlrun.db", "postgresql+psycopg2://user@host:5432/xlrun",
                 "run key 1a2b:3c", "e.g. sqlite:///x.db or postgresql+psycopg2://u@h:5432/db",
                 "git@github.com:org/repo", "loss 0.5, lr 2e-05"):
        assert mask(text) == text and not has_secret(text), text


def test_values_of_secret_variables_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "AKIAverysecretvalue")
    monkeypatch.setenv("XLRUN_OUTPUT", "/scratch/some/long/path")
    text = "boom: AKIAverysecretvalue at /scratch/some/long/path"
    assert mask(text) == "boom: *** at /scratch/some/long/path"


@pytest.mark.parametrize(("name", "secret"), [
    ("AWS_SECRET_ACCESS_KEY", True), ("HF_TOKEN", True), ("PGPASSWORD", True),
    ("WANDB_API_KEY", True), ("GITHUB_TOKEN", True), ("MY_CREDENTIALS", True),
    ("DB_PASS", True), ("MYSQL_PWD", True), ("SSH_AUTH_SOCK", True),
    ("HOME", False), ("XLRUN_OUTPUT", False), ("XLRUN_DB", False), ("KEYBOARD", False),
    ("MONKEY", False), ("PATH", False), ("PWD", False), ("OLDPWD", False),
    ("XLRUN_PASSAGE_PREFIX", False), ("XLRUN_QUERY_PREFIX", False), ("AUTHOR", False),
    ("BYPASS_CACHE", False)])
def test_secret_names(name: str, secret: bool) -> None:
    assert looks_secret_name(name) is secret


def test_a_url_with_a_password_looks_secret_whatever_its_name() -> None:
    assert looks_secret("XLRUN_DB", f"postgresql://u@h/x?password={PW}")
    assert looks_secret("XLRUN_DB", f"postgresql://u:{PW}@h/x")
    assert not looks_secret("XLRUN_DB", "postgresql://u@h/x")
