"""Trainer: GradCache equivalence, resume, determinism, divergence, hooks."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from xlrun.errors import TrainingDiverged
from xlrun.spec.schema import (
    ModelSection,
    RunConfig,
    SamplingSection,
    TrainDataSection,
    TrainSection,
)
from xlrun.train.loss import info_nce
from xlrun.train.samplers import PairRef
from xlrun.train.trainer import ContrastiveStep, TrainHooks, draw_hard_negatives, train


def run_config(sampling: dict | None = None, **train_kw) -> RunConfig:
    base = dict(steps=6, batch_size=6, lr=1e-3, warmup_ratio=0.2, log_every=2, seed=3)
    base.update(train_kw)
    return RunConfig(model=ModelSection(name="tiny"), train_data=TrainDataSection(),
                     sampling=dataclasses.replace(SamplingSection(language_sampling="uniform"),
                                                  **(sampling or {})),
                     train=TrainSection(**base), eval=[])


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


ITEMS = tuple(PairRef(f"id{i}", q, d) for i, (q, d) in enumerate(
    [("en", "de"), ("de", "de"), ("es", "fr"), ("fr", "en"), ("en", "en"), ("es", "de"),
     ("de", "es"), ("fr", "fr")]))
NEGS = [[("de", "id20")], [("de", "id21")], [("fr", "id22")], [("en", "id23")],
        [("en", "id19")], [("de", "id18")], [("es", "id17")], [("fr", "id16")]]


@pytest.mark.parametrize("symmetric,negs", [(False, None), (True, NEGS)])
def test_grad_cache_matches_plain_gradients(toy_corpus, make_encoder, symmetric, negs):
    cfg = TrainSection(symmetric=symmetric, hard_negatives=1 if negs else 0)
    dense = 16 if symmetric else 0  # with a Dense layer after pooling (it trains too)
    enc = make_encoder(seed=1, dropout=0.0, dense=dense)
    plain_loss = ContrastiveStep(enc, toy_corpus, cfg)(ITEMS, negs)
    plain = grads(enc)
    enc2 = make_encoder(seed=1, dropout=0.0, dense=dense)
    cached_cfg = dataclasses.replace(cfg, grad_cache_chunk=3)
    cached_loss = ContrastiveStep(enc2, toy_corpus, cached_cfg)(ITEMS, negs)
    cached = grads(enc2)
    assert ("dense.0.linear.weight" in plain) == bool(dense)
    assert cached_loss.item() == pytest.approx(plain_loss.item(), rel=1e-5)
    assert plain.keys() == cached.keys() and len(plain) > 10
    for name in plain:
        # fp32 sums in another order (chunks vs one batch, thread splits under load): allow
        # 1e-3 of the tensor's largest gradient; a wrong GradCache is off by O(0.1-1) of it
        scale = float(plain[name].abs().max())
        torch.testing.assert_close(cached[name], plain[name], rtol=1e-4, atol=1e-3 * scale + 1e-9)
    # a different batch gives different gradients (the comparison can fail)
    enc3 = make_encoder(seed=1, dropout=0.0, dense=dense)
    ContrastiveStep(enc3, toy_corpus, cached_cfg)(ITEMS[::-1][:6], negs[:6] if negs else None)
    other = grads(enc3)
    assert any(not torch.allclose(other[n], plain[n], atol=1e-6) for n in plain)


def test_grad_cache_replays_dropout(toy_corpus, make_encoder):
    """With dropout on, GradCache equals a chunked forward-with-grad using the same RNG."""
    cfg = TrainSection(grad_cache_chunk=3)
    enc = make_encoder(seed=2, dropout=0.2)
    enc.model.train()
    torch.manual_seed(7)
    ContrastiveStep(enc, toy_corpus, cfg)(ITEMS)
    cached = grads(enc.model)

    ref = make_encoder(seed=2, dropout=0.2)
    ref.model.train()
    step = ContrastiveStep(ref, toy_corpus, cfg)
    torch.manual_seed(7)
    groups = step.sequences(ITEMS, None)
    embs = [torch.cat([step.embed(step.tokens.collate(g[s:s + 3])) for s in range(0, len(g), 3)])
            for g in groups]
    info_nce(embs[0], embs[1], temperature=cfg.temperature).backward()
    for name, g in grads(ref.model).items():
        torch.testing.assert_close(cached[name], g, rtol=1e-4, atol=1e-6)


def test_training_lowers_the_loss_and_calls_hooks(toy_corpus, make_encoder):
    logs, batches, progress = [], [], []
    hooks = TrainHooks(on_log=lambda *a: logs.append(a), on_batch=batches.append,
                       progress=lambda s, n: progress.append((s, n)))
    enc = make_encoder(seed=0)
    before = weights(enc.model)
    summary = train(run_config(steps=40, log_every=10, lr=3e-3, warmup_ratio=0.1,
                               grad_accum=2, symmetric=True, hard_negatives=1),
                    toy_corpus, enc, None, hooks)
    assert summary.steps == 40
    assert [s for s, *_ in logs] == [10, 20, 30, 40]
    assert logs[-1][1] < logs[0][1]
    assert summary.final_loss == pytest.approx(logs[-1][1])
    assert all(math.isfinite(x[3]) and x[3] > 0 for x in logs)
    assert len(batches) == 80 and [b.step for b in batches] == list(range(80))
    assert progress[-1] == (40, 40)
    assert any(not torch.equal(before[n], p) for n, p in weights(enc.model).items())


def test_steps_zero_trains_nothing(toy_corpus, make_encoder):
    enc = make_encoder(seed=0)
    before = weights(enc.model)
    called = []
    s = train(run_config(steps=0), toy_corpus, enc, None, TrainHooks(on_batch=called.append))
    assert s.steps == 0 and s.final_loss is None and not called
    assert all(torch.equal(before[n], p) for n, p in weights(enc.model).items())


def test_deterministic_for_a_seed(toy_corpus, make_encoder):
    cfg = run_config(sampling={"strategy": "hybrid"})
    a, b = make_encoder(seed=0), make_encoder(seed=0)
    train(cfg, toy_corpus, a, None, TrainHooks())
    train(cfg, toy_corpus, b, None, TrainHooks())
    wa, wb = weights(a.model), weights(b.model)
    assert all(torch.equal(wa[n], wb[n]) for n in wa)
    c = make_encoder(seed=0)
    train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=4)), toy_corpus, c,
          None, TrainHooks())
    assert any(not torch.equal(wa[n], p) for n, p in weights(c.model).items())


@pytest.mark.parametrize("dense", [0, 16])
def test_resume_equals_uninterrupted(toy_corpus, make_encoder, tmp_path, dense):
    cfg = run_config(steps=6, checkpoint_every=3,
                     sampling={"strategy": "hybrid", "language_sampling": "clustered",
                               "pairing": "within"})
    clusters = [["de", "en"], ["es", "fr"]]
    straight_batches: list = []
    straight = make_encoder(seed=5, dense=dense)
    s1 = train(cfg, toy_corpus, straight, clusters, TrainHooks(on_batch=straight_batches.append))
    assert s1.steps == 6

    batches: list = []
    first = make_encoder(seed=5, dense=dense)
    done = []
    hooks = TrainHooks(on_batch=batches.append, checkpoint_dir=tmp_path,
                       progress=lambda s, n: done.append(s), should_stop=lambda: len(done) >= 3)
    part = train(cfg, toy_corpus, first, clusters, hooks)
    assert part.steps == 3 and part.checkpoint is not None and part.checkpoint.exists()

    second = make_encoder(seed=5, dense=dense)  # a fresh process would rebuild the base model
    rest = train(cfg, toy_corpus, second, clusters,
                 TrainHooks(on_batch=batches.append, checkpoint_dir=tmp_path))
    assert rest.resumed_from == 3 and rest.steps == 6
    assert batches == straight_batches
    ws, wr = weights(straight), weights(second)  # the transformer and any Dense layer
    assert any(n.startswith("dense.") for n in ws) == bool(dense)
    for n in ws:
        torch.testing.assert_close(wr[n], ws[n], rtol=1e-5, atol=1e-7)
    assert any(not torch.allclose(weights(first)[n], ws[n]) for n in ws)


def test_nan_loss_raises_with_step(toy_corpus, make_encoder):
    enc = make_encoder(seed=0)

    def poison(batch):
        if batch.step == 2:
            with torch.no_grad():
                enc.model.embeddings.word_embeddings.weight.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="step 3"):
        train(run_config(steps=6), toy_corpus, enc, None, TrainHooks(on_batch=poison))


def test_hard_negatives_are_same_language_and_outside_batch(toy_corpus):
    from xlrun.train.samplers import Batch
    batch = Batch(4, "cross", ITEMS)
    negs = draw_hard_negatives(toy_corpus, batch, 3, seed=0)
    ids = {it.parallel_id for it in ITEMS}
    for it, per in zip(ITEMS, negs, strict=True):
        assert len(per) == 3
        assert all(lang == it.doc_lang and pid not in ids for lang, pid in per)
    assert negs == draw_hard_negatives(toy_corpus, batch, 3, seed=0)


def test_checkpoint_rng_states_stay_on_the_cpu_whatever_the_map_location(tmp_path):
    """Resuming on CUDA crashed (``RNG state must be a torch.ByteTensor``): the RNG states
    were moved to the GPU with the model. ``meta`` stands in for a non-CPU device here."""
    from xlrun.train.checkpoint import load_checkpoint, save_checkpoint, set_rng_state

    torch.manual_seed(7)
    path = save_checkpoint(tmp_path, 3, {"model": {"w": torch.ones(2)}})
    expected = torch.rand(4)
    state = load_checkpoint(path, map_location="meta")
    assert state["model"]["w"].device.type == "meta"
    assert state["rng"]["torch"].device.type == "cpu"
    assert state["rng"]["torch"].dtype == torch.uint8
    torch.rand(10)  # move the generator on
    set_rng_state(state["rng"])
    assert torch.equal(torch.rand(4), expected)
    # a state that did end up on a non-CPU device is named, not a cryptic TypeError
    with pytest.raises(ValueError, match="meta"):
        set_rng_state(dict(state["rng"], torch=state["rng"]["torch"].to("meta")))


@pytest.mark.parametrize("negs", [None, NEGS])
def test_joint_forward_equals_separate_passes(toy_corpus, make_encoder, negs):
    """Queries, passages and negatives in one padded forward pass: same loss and gradients."""
    cfg = TrainSection(hard_negatives=1 if negs else 0)
    enc = make_encoder(seed=3, dropout=0.0)
    sep_loss = ContrastiveStep(enc, toy_corpus, cfg, joint=False)(ITEMS, negs)
    sep = grads(enc.model)
    enc2 = make_encoder(seed=3, dropout=0.0)
    joint_loss = ContrastiveStep(enc2, toy_corpus, cfg, joint=True)(ITEMS, negs)
    joint = grads(enc2.model)
    assert joint_loss.item() == pytest.approx(sep_loss.item(), rel=1e-5)
    assert sep.keys() == joint.keys() and len(sep) > 10
    for name in sep:
        scale = float(sep[name].abs().max())
        torch.testing.assert_close(joint[name], sep[name], rtol=1e-4, atol=1e-3 * scale + 1e-9)
    assert ContrastiveStep(make_encoder(seed=3), toy_corpus, cfg).joint is False  # CPU default
