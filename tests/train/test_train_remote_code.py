"""Models that ship their own modelling code (``auto_map``; e.g. gte-multilingual-base).

A tiny BERT whose custom class changes the hidden states (so the custom code visibly runs) is
written offline with its code files. Without ``trust_remote_code`` loading is an error naming
the spec key; with it, xlrun's vectors equal sentence-transformers' (``trust_remote_code=True``)
and a trained model saves with its code, loadable by both.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from st_models import hf_folder, sample_texts

from xlrun.errors import SpecError, UsageError
from xlrun.spec.schema import ModelSection
from xlrun.train.encoder import load_encoder
from xlrun.train.st_format import ModelFormatError

TOL = 1e-5
MODEL_TYPE = "xlrun-remote-test"

CONFIG_CODE = f'''
from transformers import BertConfig


class XlrunRemoteConfig(BertConfig):
    model_type = "{MODEL_TYPE}"
'''

MODEL_CODE = '''
import torch
from transformers import BertModel

from .configuration_xlrun_remote import XlrunRemoteConfig


class XlrunRemoteModel(BertModel):
    """BERT whose token states pass through tanh(2x): only this code produces them."""

    config_class = XlrunRemoteConfig

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.last_hidden_state = torch.tanh(2.0 * out.last_hidden_state)
        return out
'''


def remote_model(tmp: Path) -> Path:
    """A sentence-transformers folder (mean → Normalize) over a custom-code transformer."""
    out = hf_folder("bert", tmp / "remote")
    (out / "configuration_xlrun_remote.py").write_text(CONFIG_CODE)
    (out / "modeling_xlrun_remote.py").write_text(MODEL_CODE)
    cfg = json.loads((out / "config.json").read_text())
    cfg.update(model_type=MODEL_TYPE, architectures=["XlrunRemoteModel"], auto_map={
        "AutoConfig": "configuration_xlrun_remote.XlrunRemoteConfig",
        "AutoModel": "modeling_xlrun_remote.XlrunRemoteModel"})
    (out / "config.json").write_text(json.dumps(cfg, indent=2))

    def dump(rel: str, obj: object) -> None:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(json.dumps(obj, indent=2))

    dump("modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    dump("sentence_bert_config.json", {"max_seq_length": 24, "do_lower_case": False})
    dump("1_Pooling/config.json", {"embedding_dimension": 32, "pooling_mode": "mean",
                                   "include_prompt": True})
    (out / "2_Normalize").mkdir()
    dump("config_sentence_transformers.json", {
        "prompts": {"query": "query: ", "document": "passage: "}, "default_prompt_name": None,
        "similarity_fn_name": "cosine"})
    return out


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return remote_model(tmp_path_factory.mktemp("remote"))


def st_vectors(path: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(path), device="cpu", trust_remote_code=True)
    return st.encode_query(texts, batch_size=3), st.encode_document(texts, batch_size=3)


def test_a_model_with_its_own_code_needs_the_spec_to_trust_it(remote: Path) -> None:
    with pytest.raises(ModelFormatError, match=r"trust_remote_code = true") as err:
        load_encoder(str(remote), device="cpu")
    assert isinstance(err.value, UsageError)
    assert str(remote) in str(err.value)


def test_trusted_custom_code_runs_and_matches_sentence_transformers(remote: Path,
                                                                   tmp_path: Path) -> None:
    texts = sample_texts()
    enc = load_encoder(ModelSection(name=str(remote), trust_remote_code=True), device="cpu")
    assert type(enc.model).__name__ == "XlrunRemoteModel"
    assert enc.describe()["trust_remote_code"] is True
    query, passage = st_vectors(remote, texts)
    for side, ref in (("query", query), ("passage", passage)):
        got = enc.encode(texts, side, batch_size=4)
        assert float(np.abs(got - ref).max()) <= TOL, side
    # the same weights as a plain BERT embed differently: the custom forward really ran
    plain = tmp_path / "plain"
    shutil.copytree(remote, plain)
    for name in ("configuration_xlrun_remote.py", "modeling_xlrun_remote.py"):
        (plain / name).unlink()
    cfg = json.loads((plain / "config.json").read_text())
    cfg.pop("auto_map")
    cfg.update(model_type="bert", architectures=["BertModel"])
    (plain / "config.json").write_text(json.dumps(cfg))
    bert = load_encoder(str(plain), device="cpu").encode(texts, "query")
    assert float(np.abs(bert - query).max()) > 1e-2


def test_trained_custom_code_model_saves_with_its_code(remote: Path, tmp_path: Path) -> None:
    from train_helpers import toy_examples

    from xlrun.data.types import TrainCorpus
    from xlrun.spec.schema import (
        EvalSection,
        RunConfig,
        SamplingSection,
        TrainDataSection,
        TrainSection,
    )
    from xlrun.train.trainer import train

    section = ModelSection(name=str(remote), trust_remote_code=True)
    enc = load_encoder(section, device="cpu")
    texts = sample_texts()
    before = enc.encode(texts, "query")
    run = RunConfig(model=section, train_data=TrainDataSection(),
                    sampling=SamplingSection(strategy="hybrid"),
                    train=TrainSection(steps=3, batch_size=8, lr=1e-2, warmup_ratio=0.0, seed=3),
                    eval=[EvalSection(dataset="local")])
    train(run, TrainCorpus.from_examples(toy_examples(), name="toy"), enc)
    trained = enc.encode(texts, "query")
    assert float(np.abs(trained - before).max()) > 1e-3
    saved = enc.save(tmp_path / "model")
    assert (saved / "modeling_xlrun_remote.py").is_file()
    assert json.loads((saved / "config.json").read_text())["auto_map"]["AutoModel"].endswith(
        "XlrunRemoteModel")
    query, _ = st_vectors(saved, texts)
    assert float(np.abs(query - trained).max()) <= TOL
    again = load_encoder(ModelSection(name=str(saved), trust_remote_code=True), device="cpu")
    with torch.no_grad():
        np.testing.assert_allclose(again.encode(texts, "query"), trained, atol=TOL)


def test_trust_remote_code_is_a_checked_boolean_that_keys_only_when_set(tmp_path: Path) -> None:
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import parse_spec

    def spec(extra: str) -> str:
        return ('[experiment]\nname = "t"\n[model]\nname = "m"\n' + extra
                + '[train]\nsteps = 0\n[[eval]]\ndataset = "xquad-r"\npath = "d"\n')

    with pytest.raises(SpecError, match=r"model\.trust_remote_code"):
        parse_spec(spec('trust_remote_code = "yes"\n'), base_dir=tmp_path)
    keys = [compile_spec(parse_spec(spec(x), base_dir=tmp_path))[0].run_key
            for x in ("", "trust_remote_code = false\n", "trust_remote_code = true\n")]
    assert keys[0] == keys[1] != keys[2]


def test_evaluate_cli_trusts_only_with_the_flag(remote: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from xlrun.cli.main import main
    from xlrun.db import store
    from xlrun.db.engine import get_engine

    db = f"sqlite:///{tmp_path / 's.db'}"
    args = ["evaluate", str(remote), "--dataset", "quickstart", "--langs", "en,ru",
            "--top-k", "5", "--db", db, "--device", "cpu"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code != 0
    assert "trust_remote_code = true" in refused.output
    assert "--trust-remote-code" in refused.output
    trusted = CliRunner().invoke(main, [*args, "--trust-remote-code"])
    assert trusted.exit_code == 0, trusted.output
    run_id = int(trusted.output.split("run ")[1].split(":")[0])
    assert store.get_run(get_engine(db), run_id)["status"] == "done"
    shown = CliRunner().invoke(main, ["show", str(run_id), "--db", db]).output
    assert "trust_remote_code" in shown
