"""Fixtures for the trainer tests (the helpers live in ``train_helpers``)."""

from __future__ import annotations

import pytest
from train_helpers import tiny_encoder, toy_examples

from xlrun.data.types import TrainCorpus


@pytest.fixture
def toy_corpus() -> TrainCorpus:
    return TrainCorpus.from_examples(toy_examples(), name="toy")


@pytest.fixture
def make_encoder():
    return tiny_encoder
