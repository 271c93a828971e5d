"""A damaged checkpoint fails the run with a message naming the folder to delete (issue 17),
instead of the same traceback on every resubmit."""

from __future__ import annotations

import shutil

import pytest
import torch

from xlrun.errors import XlrunError
from xlrun.spec.schema import (
    ModelSection,
    RunConfig,
    SamplingSection,
    TrainDataSection,
    TrainSection,
)
from xlrun.train.checkpoint import checkpoints
from xlrun.train.trainer import TrainHooks, train


def _config() -> RunConfig:
    return RunConfig(model=ModelSection(name="tiny"), train_data=TrainDataSection(),
                     sampling=SamplingSection(language_sampling="uniform"),
                     train=TrainSection(steps=4, batch_size=4, lr=1e-3, checkpoint_every=2,
                                        log_every=2, seed=1), eval=[])


def _interrupted(toy_corpus, make_encoder, folder):
    done: list[int] = []
    hooks = TrainHooks(checkpoint_dir=folder, progress=lambda s, n: done.append(s),
                       should_stop=lambda: len(done) >= 2)
    train(_config(), toy_corpus, make_encoder(seed=0), None, hooks)
    (_step, path), = checkpoints(folder)
    return path


def test_damaged_checkpoint_names_the_folder(toy_corpus, make_encoder, tmp_path) -> None:
    folder = _interrupted(toy_corpus, make_encoder, tmp_path)
    f = folder / "trainer.pt"
    intact = f.read_bytes()
    state = torch.load(f, weights_only=False)
    for damage in ("truncate", "garbage", "not_a_checkpoint", "wrong_model"):
        if damage == "truncate":
            f.write_bytes(intact[: len(intact) // 2])
        elif damage == "garbage":
            f.write_bytes(b"\x00" * 1000)
        elif damage == "not_a_checkpoint":
            torch.save({"hello": 1}, f)
        else:
            torch.save({**state, "model": {"nope.weight": torch.zeros(1)}}, f)
        with pytest.raises(XlrunError) as err:
            train(_config(), toy_corpus, make_encoder(seed=0), None,
                  TrainHooks(checkpoint_dir=tmp_path))
        assert f"delete the folder {folder}" in str(err.value), damage
    # deleting the named folder lets the run start again from step 0
    shutil.rmtree(folder)
    out = train(_config(), toy_corpus, make_encoder(seed=0), None,
                TrainHooks(checkpoint_dir=tmp_path))
    assert out.steps == 4 and out.resumed_from == 0
