"""The run path imports only what a bare GPU image has (PyTorch, transformers, numpy, pyarrow,
…) plus small wheels: no polars (reports only), faiss, lang2vec or datasets, and no tracker's
library (mlflow, wandb, tensorboard, mteb) when the spec names no ``[tracking]``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCKED = ("polars", "faiss", "lang2vec", "datasets", "mlflow", "wandb", "tensorboard", "mteb")
PRELUDE = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in BLOCKED)

RUN = """
from pathlib import Path
import xlrun.cli.main, xlrun.cli.worker, xlrun.execute.worker, xlrun.execute.pipeline
import xlrun.evaluate.runner, xlrun.evaluate.tasks, xlrun.train.trainer
import xlrun.langsim.cluster, xlrun.langsim.distance_sources, xlrun.data.train_sources
import xlrun.db.store, xlrun.execute.executors, xlrun.execute.distributed
from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.execute.worker import WorkerOptions, run_worker
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

tmp = Path(sys.argv[1])
text = '''
[experiment]
name = "lean"
output_dir = "%s"
[model]
name = "quickstart:tiny"
query_max_length = 24
passage_max_length = 32
[train_data]
source = "quickstart"
languages = ["en", "de", "ru"]
[sampling]
strategy = "hybrid"
language_sampling = "clustered"
similarity = "script"
n_clusters = 2
[train]
steps = 3
batch_size = 8
[[eval]]
dataset = "quickstart"
languages = ["en", "de", "ru"]
max_queries_per_language = 8
top_k = 2
''' % (tmp / "out")
engine = get_engine(f"sqlite:///{tmp / 'lean.db'}")
store.submit_runs(engine, "lean", text, compile_spec(parse_spec(text, base_dir=tmp)))
outcomes = run_worker(engine, WorkerOptions(device="cpu", threads=1))
assert [o.status for o in outcomes] == ["done"], outcomes
assert store.count_rows(engine, __import__("xlrun.db.models").db.models.QueryResult.__table__) > 0
print("ok", sorted(m for m in sys.modules if sys.modules[m] is not None
                   and m.split(".")[0] in BLOCKED_NAMES))
""".replace("BLOCKED_NAMES", repr(BLOCKED))


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
                          env=env, capture_output=True, text=True, timeout=600)


def test_a_run_executes_without_polars_faiss_lang2vec_datasets(tmp_path: Path) -> None:
    p = _python(RUN, str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip().splitlines()[-1] == "ok []"


def test_blocking_works() -> None:  # the test above could not fail if the block did nothing
    p = _python("import polars\n")
    assert p.returncode != 0 and "polars" in p.stderr


def test_export_without_polars(tmp_path: Path) -> None:
    p = _python("""
        from pathlib import Path
        from xlrun.db.engine import get_engine
        from xlrun.db.transfer import export_database, import_database
        tmp = Path(sys.argv[1])
        src = get_engine(f"sqlite:///{tmp / 'a.db'}")
        export_database(src, tmp / "export", done_only=True)
        import_database(get_engine(f"sqlite:///{tmp / 'b.db'}"), tmp / "export")
        print("ok")
        """, str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
