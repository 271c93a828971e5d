"""Files of Hugging Face hub *dataset* repositories, read without running loading scripts.

MIRACL and MLDR publish plain files (TSV topics and qrels, gzipped JSON lines) next to a
loading script that ``datasets`` ≥ 4 no longer runs (so does mMARCO, read by the ``mmarco``
training source; Belebele publishes JSON lines). xlrun downloads the files it needs with
``huggingface_hub.snapshot_download`` (only those matching ``allow_patterns``, at a pinned
``revision``, with the user's stored token or ``HF_TOKEN``) and parses them itself.

Downloads land in the hub cache (``$HF_HUB_CACHE``, by default ``$HF_HOME/hub``, i.e.
``~/.cache/huggingface/hub``) and are reused: a second load of the same revision reads the
cache, and with ``HF_HUB_OFFLINE=1`` works without a network.

:func:`download` is the one place that talks to the hub; tests replace it with a stand-in
that serves a fixture tree. :func:`fetch` wraps it and turns the hub's errors into messages
that say what to do (log in, accept the terms, fix the revision, go online once).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants
from huggingface_hub.utils import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from xlrun.errors import UsageError

LOGIN_COMMAND = "hf auth login"
"""How a user stores a token (``huggingface-cli login`` with huggingface_hub < 1.0)."""


class HubAccessError(UsageError):
    """The hub refused or could not serve a dataset repository; the message says what to do."""


def dataset_url(repo_id: str) -> str:
    """The dataset's page on the hub (where its terms are accepted)."""
    return f"https://huggingface.co/datasets/{repo_id}"


def download(repo_id: str, patterns: Sequence[str], revision: str) -> Path:
    """Download the files of dataset repository ``repo_id`` at ``revision`` whose paths match
    ``patterns`` (fnmatch-style, as ``snapshot_download``'s ``allow_patterns``) into the hub
    cache and return the snapshot folder (its files keep their repository paths).

    The token is the one ``hf auth login`` stored, or ``HF_TOKEN``; public repositories need
    none. This is the only function that talks to the hub (tests replace it). Offline
    (``HF_HUB_OFFLINE=1``) it asks for cached files only: some huggingface_hub releases would
    otherwise try to list a pinned commit's files online.
    """
    offline = bool(getattr(constants, "HF_HUB_OFFLINE", False))
    return Path(huggingface_hub.snapshot_download(repo_id, repo_type="dataset", revision=revision,
                                  allow_patterns=list(patterns), local_files_only=offline))


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def _access_message(repo_id: str, why: str) -> str:
    return (f"{why}. To read a gated dataset, the first time: (1) open {dataset_url(repo_id)} "
            f"while logged in to huggingface.co and accept its terms, (2) on this machine run "
            f"`{LOGIN_COMMAND}` (`huggingface-cli login` with huggingface_hub < 1.0) or export "
            f"HF_TOKEN=<a read token of that account>, then run xlrun again")


def hub_error(repo_id: str, revision: str, exc: BaseException,
              revision_key: str = "[[eval]] revision (or --revision)") -> BaseException:
    """The xlrun error for an exception raised while downloading ``repo_id`` (the exception
    itself when it is not a hub error xlrun knows how to explain). ``revision_key``: where
    the user sets the revision (``train_data.revision`` for a training source)."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, GatedRepoError):
        return HubAccessError(_access_message(
            repo_id, f"{repo_id} is a gated dataset and this machine has no access to it "
                     f"(hub: {detail})"))
    if isinstance(exc, RevisionNotFoundError):
        return HubAccessError(
            f"{repo_id} has no revision {revision!r}: set {revision_key} "
            f"to a commit hash, branch or tag of that repository; its history is at "
            f"{dataset_url(repo_id)}/commits/main")
    if isinstance(exc, RepositoryNotFoundError):
        return HubAccessError(_access_message(
            repo_id, f"the Hugging Face hub says {repo_id} does not exist or needs a login "
                     f"(hub: {detail})"))
    if isinstance(exc, HfHubHTTPError) and _status(exc) in (401, 403):
        return HubAccessError(_access_message(
            repo_id, f"the Hugging Face hub refused to serve {repo_id} (hub: {detail})"))
    if isinstance(exc, LocalEntryNotFoundError):
        return HubAccessError(
            f"{repo_id} at revision {revision!r} is not in the hub cache "
            f"({constants.HF_HUB_CACHE}) and the hub cannot be reached (no network, or "
            f"HF_HUB_OFFLINE=1): run once with network access and the same HF_HOME / "
            f"HF_HUB_CACHE, or copy that cache here")
    if isinstance(exc, HfHubHTTPError):
        return HubAccessError(f"downloading {repo_id} at revision {revision!r} failed: {detail}")
    return exc


def fetch(repo_id: str, patterns: Sequence[str], revision: str,
          revision_key: str = "[[eval]] revision (or --revision)") -> Path:
    """:func:`download` with the hub's errors turned into :class:`HubAccessError`."""
    try:
        return download(repo_id, tuple(patterns), revision)
    except Exception as exc:
        mapped = hub_error(repo_id, revision, exc, revision_key)
        if mapped is exc:
            raise
        raise mapped from exc


def resolved_revision(snapshot: Path) -> str:
    """The commit a hub-cache snapshot folder holds (its name), else ``""``."""
    name = snapshot.name
    return name if re.fullmatch(r"[0-9a-f]{40}", name) else ""


def _natural_key(path: Path) -> tuple[object, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix()))


def files_matching(root: Path, pattern: str) -> list[Path]:
    """Files under ``root`` whose repository path matches ``pattern``, in natural order
    (``docs-2`` before ``docs-10``)."""
    return sorted((p for p in root.glob(pattern) if p.is_file()), key=_natural_key)
