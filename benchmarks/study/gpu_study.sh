#!/usr/bin/env bash
# The whole LAReQA study in one short GPU allocation, from a cold machine:
#
#   bash benchmarks/study/gpu_study.sh OUT_DIR
#
# Prepare here first (builds .device/, ignored by git, ≤ 60 MB with the repository):
#   python benchmarks/study/prepare.py
# Device call (one; see benchmarks/README.md):
#   run(command="bash benchmarks/study/gpu_study.sh $OUT", carry=[".device"], timeout_s=600)
# Then here: n=$(ls docs/study/export 2>/dev/null | wc -l); d=docs/study/export/part-$((n+1)); mkdir -p $d && tar -xf <files_at>/study-export.tar -C $d
# and commit it: the next allocation resumes from it (its finished runs are not run again).
#
# Steps, each failing fast with one clear line:
#   1. install the carried wheels (.device/whl: sqlalchemy, alembic, mako) into a private
#      folder; check every import the run needs (the image has no polars, faiss or lang2vec);
#   2. rebuild the model (a Hugging Face folder) from the carried 4-bit pack;
#   3. a GPU smoke: a few quickstart steps on the device (≤ SMOKE_S seconds);
#   4. the study (benchmarks/study/study.py run): resume from docs/study/export, the
#      unfinished runs in seed-major order on LANES warm worker lanes, a hard deadline
#      BUDGET_S seconds after this script started, then `db export --done-only`;
#   5. at most 8 small files in OUT_DIR: study-export.tar, status.txt, timings.csv,
#      lanes.log, run.json, smoke.txt, study.log, bench.json;
#   6. if the study finished early and BENCH_MIN_S seconds remain: the throughput benchmarks
#      (benchmarks/study/throughput.py: training and encoding vs sentence-transformers) →
#      bench.json. BENCH=0 skips them, BENCH_ARGS=--tiny runs toy models (CPU rehearsal).
#
# Settings (environment): BUDGET_S (540), LANES (4), THREADS (0 = cores / lanes),
# XLRUN_STUDY_DEVICE (cuda), SMOKE_S (30), MIN_RUN_S (45), EXPORT_RESERVE_S (45),
# BENCH (1), BENCH_MIN_S (100), BENCH_ARGS (""),
# DEVICE_DIR (.device), STUDY_SPECS (the two study specs), RESUME_DIR (docs/study/export),
# SKIP_INSTALL (1: use what is installed — the CPU rehearsal), XLRUN_STUDY_WORK (/tmp/xlrun-study).
set -euo pipefail
T0=$(date +%s)
OUT=${1:?usage: gpu_study.sh OUT_DIR}
cd "$(dirname "$0")/../.."
ROOT=$PWD
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/study.log") 2>&1

BUDGET_S=${BUDGET_S:-540}
DEADLINE=$(( T0 + BUDGET_S ))
DEVICE=${XLRUN_STUDY_DEVICE:-cuda}
DEVICE_DIR=$(cd "${DEVICE_DIR:-.device}" && pwd)
export XLRUN_STUDY_WORK=${XLRUN_STUDY_WORK:-/tmp/xlrun-study}
WORK=$XLRUN_STUDY_WORK
SITE=$WORK/site
mkdir -p "$WORK"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
say() { echo "[$(date +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*"; }
fail() { say "FAILED: $*"; exit 3; }

# 1. wheels and imports
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  ls "$DEVICE_DIR"/whl/*.whl >/dev/null 2>&1 || fail "no wheels in $DEVICE_DIR/whl (run benchmarks/study/prepare.py)"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$DEVICE_DIR"/whl/*.whl || fail "installing the carried wheels"
  export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
[ -f "$DEVICE_DIR/uriel/feature_predictions.npz" ] && export XLRUN_URIEL_DIR="$DEVICE_DIR/uriel"
$PY - <<'EOF' || fail "a module the study needs does not import (see above)"
import importlib, sys
need = ["torch", "transformers", "numpy", "scipy", "pyarrow", "sqlalchemy", "alembic",
        "xlrun.execute.worker", "xlrun.evaluate.tasks.lareqa", "xlrun.langsim.cluster",
        "xlrun.db.transfer"]
bad = []
for name in need:
    try:
        importlib.import_module(name)
    except Exception as e:  # noqa: BLE001
        bad.append(f"{name}: {type(e).__name__}: {e}")
import torch, transformers, sqlalchemy
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers "
      f"{transformers.__version__}, sqlalchemy {sqlalchemy.__version__}")
if bad:
    print("missing:\n  " + "\n  ".join(bad))
    if any("polars" in b for b in bad):
        print("  (xlrun/db/transfer.py still imports polars: the device image has none; the "
              "polars-free export of issue 17 must be merged first)")
    sys.exit(1)
EOF
say "imports ok"

# 2. the model
if [ ! -f "$WORK/model/model.safetensors" ] || [ "$DEVICE_DIR/model/weights.safetensors" -nt "$WORK/model/model.safetensors" ]; then
  $PY benchmarks/study/pack.py export "$DEVICE_DIR/model" "$WORK/model" --dtype float32 \
    || fail "rebuilding the model from $DEVICE_DIR/model"
fi
export XLRUN_E5="$WORK/model" XLRUN_MLQAR="$DEVICE_DIR/data/mlqa-r" XLRUN_XQUADR="$DEVICE_DIR/data/xquad-r"
export XLRUN_OUTPUT="$WORK/xlrun-out"
say "model ready: $XLRUN_E5"

# 3. smoke
timeout $(( ${SMOKE_S:-30} + 60 )) $PY benchmarks/study/study.py smoke --device "$DEVICE" \
  --limit "${SMOKE_S:-30}" | tee "$OUT/smoke.txt" || fail "the smoke run on $DEVICE (see smoke.txt)"
grep -q "^smoke ok" "$OUT/smoke.txt" || fail "the smoke run on $DEVICE (see smoke.txt)"

# 4.-5. the study, export, files
read -r -a SPECS <<< "${STUDY_SPECS:-experiments/lareqa_study.toml experiments/lareqa_study_b.toml}"
say "study: ${SPECS[*]} on $DEVICE, ${LANES:-4} lanes, deadline in $(( DEADLINE - $(date +%s) ))s"
$PY benchmarks/study/study.py run "$OUT" --deadline "$DEADLINE" --device "$DEVICE" \
  --lanes "${LANES:-4}" --threads "${THREADS:-0}" --specs "${SPECS[@]}" \
  --resume "${RESUME_DIR:-docs/study/export}" --min-run "${MIN_RUN_S:-45}" \
  --export-reserve "${EXPORT_RESERVE_S:-45}" || fail "the study run (see above)"

# 6. throughput benchmarks with the time the study left (its export is already written)
LEFT=$(( DEADLINE - $(date +%s) ))
if [ "${BENCH:-1}" = 1 ] && [ "$LEFT" -ge "${BENCH_MIN_S:-100}" ]; then
  say "throughput benchmarks, ${LEFT}s left"
  # shellcheck disable=SC2086
  timeout $(( LEFT > 10 ? LEFT - 5 : 5 )) $PY benchmarks/study/throughput.py "$OUT/bench.json" \
    --device "$DEVICE" --deadline "$DEADLINE" ${BENCH_ARGS:-} \
    || say "the throughput benchmarks stopped early (the study's files are complete)"
else
  say "no throughput benchmarks (${LEFT}s left; BENCH=${BENCH:-1})"
fi
say "done: $(ls "$OUT" | tr '\n' ' ')"
