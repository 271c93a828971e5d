"""Multi-GPU training: the worker launches ``torchrun`` for runs with ``train.gpus > 1``.

Every rank runs :func:`main`: it loads the run from the database, builds the encoder on its
own GPU (CPU + gloo where there is none, which is how the tests run it), and trains; the
trainer gathers in-batch negatives across ranks and averages gradients, so the global batch
is ``train.batch_size × gpus``. Rank 0 alone writes ``train_log`` / ``batch_languages``
rows and checkpoints, and saves the trained model, which the worker then loads to evaluate.
Clusters are computed by the worker before the launch and read back from
``language_clusters``, so all ranks sample with the same ones.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from sqlalchemy import Engine, select

from xlrun.data.train_sources import load_train_corpus
from xlrun.db.engine import get_engine
from xlrun.db.models import LanguageCluster
from xlrun.errors import XlrunError
from xlrun.execute.run_context import RunContext
from xlrun.execute.training import load_encoder, train_recorded


def launch(db_url: str, run_id: int, nproc: int, out_dir: Path) -> Path:
    """Train run ``run_id`` on ``nproc`` processes with torchrun; the saved model's folder."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "xlrun.execute.distributed",
           "--xlrun-run", str(run_id), "--xlrun-out", str(out_dir)]
    # the URL (it may hold a password) travels in the environment, not on the command line
    env = dict(os.environ, XLRUN_DB=db_url)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise XlrunError(f"distributed training of run {run_id} failed "
                         f"(torchrun exit {proc.returncode}):\n{tail}")
    return out_dir


def stored_clusters(engine: Engine, run_id: int) -> list[list[str]] | None:
    """The clusters the worker computed and stored for run ``run_id`` (``None``: none)."""
    t = LanguageCluster.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.lang, t.c.cluster).where(t.c.run_id == run_id)
                            .order_by(t.c.cluster, t.c.lang)).all()
    out: dict[int, list[str]] = {}
    for r in rows:
        out.setdefault(r.cluster, []).append(r.lang)
    return list(out.values()) or None


def main(argv: list[str] | None = None) -> None:
    """One rank of a distributed training run."""
    ap = argparse.ArgumentParser(description=__doc__)
    # long, unusual names: torchrun's own parser would claim abbreviations like --run
    ap.add_argument("--xlrun-db", dest="db", default=os.environ.get("XLRUN_DB"))
    ap.add_argument("--xlrun-run", dest="run", type=int, required=True)
    ap.add_argument("--xlrun-out", dest="out", required=True)
    args = ap.parse_args(argv)

    engine = get_engine(args.db, migrate=False)
    ctx = RunContext.load(engine, args.run)
    config = ctx.config
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    encoder = load_encoder(config.model, device, ctx.models_dir)
    corpus = load_train_corpus(config.train_data)
    clusters = (stored_clusters(engine, args.run)
                if config.sampling.language_sampling == "clustered" else None)
    train_recorded(engine, args.run, ctx.workdir, config, corpus, encoder, clusters)
    if int(os.environ.get("RANK", "0")) == 0:
        encoder.save(args.out)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
