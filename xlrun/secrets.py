"""Secrets never leave the process: masking passwords in text, and telling which environment
variables look secret.

A database password can be written in three ways, and each is masked wherever xlrun prints,
logs or stores text (errors, ``xlrun show``, exports, a failed run's ``runs.error``, SLURM
job commands):

* in a URL's user information: ``postgresql://user:PASSWORD@host/db`` (also without the
  scheme's colon, as in a mistyped ``postgresql+psycopg2//user:PASSWORD@host/db``);
* as a query parameter: ``postgresql://user@host/db?password=PASSWORD``;
* as a libpq key-value string: ``host=h dbname=d password=PASSWORD`` (or ``'quoted'``).

Beyond these forms, the values of environment variables whose names look secret (see
:func:`looks_secret_name`) are replaced wherever they appear, so an error that quotes one
does not print it.
"""

from __future__ import annotations

import os
import re

MASK = "***"

_USERINFO = re.compile(
    r"(?P<pre>(?:^|[\s'\"(=/,]))(?P<user>[^\s:/@'\"?#,]*):(?P<pw>[^\s'\"/]*)@"
    r"(?=[\w.\-\[\]%]|$)")
"""``user:password@`` after a ``//`` (or at a word's start): the password runs to the last
``@`` of the word (a raw ``@`` in a password is common, if invalid)."""
_KEY_VALUE = re.compile(
    r"(?i)\b(?P<key>\w*pass(?:word|wd)?|pwd)(?P<eq>\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s&;,'\")]+)")
"""``password=…`` as a query parameter, a libpq key-value pair or an environment assignment
(``PGPASSWORD=…``)."""
_SECRET_WORDS = frozenset({
    "PASS", "PASSWD", "PASSWORD", "PASSPHRASE", "SECRET", "SECRETS", "TOKEN", "TOKENS",
    "CREDENTIAL", "CREDENTIALS", "AUTH", "COOKIE", "SESSION", "SIGNATURE", "PRIVATE", "KEY",
    "KEYS", "APIKEY"})
"""Words (``_``-separated parts) of environment variable names that hold secrets by
convention (``AWS_SECRET_ACCESS_KEY``, ``HF_TOKEN``, ``DB_PASS``, ``WANDB_API_KEY``,
``SSH_AUTH_SOCK``); ``PGPASSWORD``, ``MYSQL_PWD`` and ``GHTOKEN``-like words count too,
``XLRUN_PASSAGE_PREFIX`` and ``KEYBOARD`` do not."""
_SECRET_ENDINGS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY")
_MIN_SECRET_VALUE = 8
"""Values of secret-named variables shorter than this are not searched for in text (a short
value would match ordinary words and numbers)."""


def mask(text: str) -> str:
    """``text`` with every password (URL user information, ``password=`` parameters and
    key-value pairs) and the value of every secret-looking environment variable replaced by
    ``***``."""
    if not text:
        return text
    out = _USERINFO.sub(lambda m: f"{m['pre']}{m['user']}:{MASK}@", text)
    out = _KEY_VALUE.sub(lambda m: f"{m['key']}{m['eq']}{MASK}", out)
    for value in _secret_values():
        if value in out:
            out = out.replace(value, MASK)
    return out


def has_secret(text: str) -> bool:
    """Whether ``text`` holds a password in one of the forms :func:`mask` knows."""
    return bool(text) and (_USERINFO.search(text) is not None
                           or _KEY_VALUE.search(text) is not None)


def looks_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret: one of its
    ``_``-separated words is a secret word (:data:`_SECRET_WORDS`: ``PASSWORD``, ``SECRET``,
    ``TOKEN``, ``KEY``, ``CREDENTIALS``, ``AUTH`` …) or ends in one (``PGPASSWORD``), or it
    has a ``PWD`` word beside others (``MYSQL_PWD``; ``PWD`` alone is the working folder)."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name.upper()) if w]
    for w in words:
        if w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS):
            return True
        if w == "PWD" and len(words) > 1:
            return True
    return False


def looks_secret(name: str, value: str) -> bool:
    """Whether the variable ``name`` = ``value`` looks secret: by its name, or because its
    value holds a password (a database URL with one, ``password=…``)."""
    return looks_secret_name(name) or has_secret(value)


def _secret_values() -> list[str]:
    """Values of the secret-named environment variables (long enough to search for), longest
    first (so that one value inside another is masked whole)."""
    values = {v for k, v in os.environ.items()
              if len(v) >= _MIN_SECRET_VALUE and looks_secret_name(k)}
    return sorted(values, key=len, reverse=True)
