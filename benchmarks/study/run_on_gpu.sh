#!/usr/bin/env bash
# Run the LAReQA study on the GPU machine, resumably, and bring the results back as an export.
# Prepare here first: bash benchmarks/study/prepare_device.sh
#
# Call 1 (setup; the wheels alone fill most of a call's 64 MiB):
#   run(command="bash benchmarks/study/run_on_gpu.sh setup", carry=[".device/whl"])
# Calls 2.. (each stops starting new runs after BUDGET_S seconds, then exports):
#   run(command="BUDGET_S=480 WORKERS=2 bash benchmarks/study/run_on_gpu.sh run", timeout_s=600,
#       carry=[".device/data", ".device/models", ".device/lang2vec", ".device/state"])
#   then here: cp <files_at>/study-export.tar .device/state/   (the next call resumes from it)
# The wheels are installed into /tmp/xlrun-site, which lives as long as the machine stays warm
# (30 s idle): if a run call finds it missing it exits 3: do the setup call again.
# Finally, here: mkdir -p study-export && tar -xf .device/state/study-export.tar -C study-export
#   && xlrun db import study-export --db sqlite:///study.db   (see docs/results.md)
#
# Checks on the device (image: Python 3.12 with torch, transformers, tokenizers, safetensors,
# numpy, scipy, statsmodels, pandas, pyarrow, matplotlib, click, rich): this script imports
# polars, sqlalchemy, alembic and torch.cuda before it runs anything; datasets, faiss and
# lang2vec's own code are not needed (lareqa data, torch search, URIEL read from its file).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-run}
SITE=${XLRUN_SITE:-/tmp/xlrun-site}
WORK=${XLRUN_WORK:-/tmp/study}
OUT=${OUT:-$WORK/out-files}
mkdir -p "$OUT" "$WORK"
export PYTHONPATH="$PWD:$SITE:$PWD/.device/lang2vec${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
PY="python3"
XL="$PY -m xlrun"

if [ "$MODE" = setup ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .device/whl/*.whl
  $PY -c 'import polars, sqlalchemy, alembic, mako, torch; print("polars", polars.__version__,
"sqlalchemy", sqlalchemy.__version__, "alembic", alembic.__version__, "torch", torch.__version__,
"cuda", torch.cuda.is_available())'
  exit 0
fi
[ "$MODE" = run ] || { echo "usage: run_on_gpu.sh setup|run" >&2; exit 2; }
$PY -c 'import polars, sqlalchemy, alembic' 2>/dev/null \
  || { echo "polars/sqlalchemy/alembic missing: do the setup call first" >&2; exit 3; }
$PY -c 'import torch; assert torch.cuda.is_available(), "no CUDA"'

# float32, not float16: transformers 5 loads a checkpoint in its stored dtype (dtype="auto")
# and xlrun's Encoder does not upcast, so an fp16 export would train fp16 master weights.
if [ ! -f /tmp/me5/config.json ]; then
  $PY .device/models/multilingual-e5-small/export_hf.py --out /tmp/me5 --dtype float32
fi
export XLRUN_E5=/tmp/me5 XLRUN_MLQAR="$PWD/.device/data/mlqa-r" XLRUN_XQUADR="$PWD/.device/data/xquad-r"
export XLRUN_DB="sqlite:///$WORK/study.db" XLRUN_OUTPUT="$WORK/xlrun-out"
SPECS=(experiments/lareqa_study.toml experiments/lareqa_study_b.toml)   # A and B: 36 runs each

start=$(date +%s)
if [ -f .device/state/study-export.tar ]; then       # resume: what earlier calls finished
  rm -rf "$WORK/prev" && mkdir -p "$WORK/prev"
  tar -xf .device/state/study-export.tar -C "$WORK/prev"
  $XL db import "$WORK/prev"
fi
$PY benchmarks/study/order_runs.py "${SPECS[@]}" --count
deadline=$(( start + ${BUDGET_S:-480} ))
# Enqueue every run in seed-major order (workers claim by id, so they take them in this order:
# a partial study has the same seeds in every arm), then run WORKERS workers side by side on the
# one GPU: e5-small leaves the H100 mostly idle, and one worker's CPU-side work (data, metrics,
# SQLite writes) overlaps another's GPU work. A worker claims no new run once less than
# MIN_RUN_S is left; at the deadline a run still going is interrupted and goes back to the
# queue (redone next call).
$PY benchmarks/study/order_runs.py "${SPECS[@]}" > "$WORK/order.txt"
while read -r spec keys; do
  only=(); for k in $keys; do only+=(--only "$k"); done
  $XL submit "$spec" --no-run "${only[@]}" </dev/null >/dev/null
done < "$WORK/order.txt"
left=$(( deadline - $(date +%s) ))
claim=$(( left - ${MIN_RUN_S:-150} ))
if [ "$claim" -le 0 ]; then
  echo "time budget spent before any run; resubmit to continue"
else
  pids=()
  for w in $(seq "${WORKERS:-2}"); do
    timeout -s INT "$left" $XL worker --device cuda --claim-for "$claim" \
      </dev/null >"$OUT/worker-$w.log" 2>&1 &
    pids+=($!)
    sleep 3   # stagger the model loads
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  tail -n 3 "$OUT"/worker-*.log
fi

rm -rf "$WORK/export"
$XL db export "$WORK/export" --done-only
tar -cf "$OUT/study-export.tar" -C "$WORK/export" .
$XL status > "$OUT/status.txt" 2>&1 || true
$XL sql "SELECT e.name, r.status, COUNT(*) AS runs, ROUND(AVG(julianday(r.finished_at) - julianday(r.started_at)) * 86400, 1) AS mean_s FROM runs r JOIN experiments e ON e.id = r.experiment_id GROUP BY 1, 2 ORDER BY 1, 2" | tee "$OUT/progress.txt"
ls -la "$OUT"
