#!/usr/bin/env bash
# The whole LAReQA study in one short GPU allocation, from a cold machine:
#
#   bash benchmarks/study/gpu_study.sh OUT_DIR
#   bash benchmarks/study/gpu_study.sh --dry-run     # the order the runs would run in; nothing runs
#
# Prepare here first (builds .device/, ignored by git, ≤ 60 MB with the repository):
#   python benchmarks/study/prepare.py
# Device call (one; see benchmarks/README.md):
#   run(command="bash benchmarks/study/gpu_study.sh $OUT", carry=[".device"], timeout_s=600)
# Then here: n=$(ls docs/study/export 2>/dev/null | wc -l); d=docs/study/export/alloc-$((n+1)); mkdir -p $d && tar -xf <files_at>/study-export.tar -C $d
# and commit it: the next allocation resumes from it (its finished runs are not run again).
#
# Steps, each failing fast with one clear line:
#   1. install the carried wheels (.device/whl: sqlalchemy, alembic, mako) into a private
#      folder; check every import the run needs (the image has no polars, faiss or lang2vec);
#   2. rebuild the model (a Hugging Face folder) from the carried 4-bit pack;
#   3. a GPU smoke: a few quickstart steps on the device, nvidia-smi recorded (smoke.txt);
#      it fails the script only if the device does not work — slower than SMOKE_S seconds is
#      a warning;
#   4. the study (benchmarks/study/study.py run): the done runs read from the run tables of
#      docs/study/export, the rest in the priority order of experiments/run_order/lareqa_study.toml
#      on LANES warm worker lanes that share ONE deadline (DEADLINE, default this script's
#      start + BUDGET_S); a lane claims a run only while the time left is at least its p90
#      run time, and stops after two device errors in a row (its runs go back to the queue);
#      every finished run is exported into OUT_DIR/study-export.tar at once (rewritten
#      atomically), so a call killed at any moment returns every run finished before;
#   5. at most 8 files in OUT_DIR: study-export.tar, status.txt, timings.csv, lanes.log,
#      run.json, smoke.txt, study.log, bench.json (while the study runs, the 8th may be
#      .partial, the file being written);
#   6. if the study finished early and BENCH_MIN_S seconds remain: the throughput benchmarks
#      (benchmarks/study/throughput.py: training and encoding vs sentence-transformers) →
#      bench.json. BENCH=0 skips them, BENCH_ARGS=--tiny runs toy models (CPU rehearsal).
#
# Settings (environment): BUDGET_S (540: seconds from this script's start; on a call with a
# shorter timeout_s T, set BUDGET_S to T - 60) or DEADLINE (epoch seconds, overrides),
# LANES (4), LANE_DEVICES (one device per lane, overrides LANES), THREADS (0 = cores / lanes),
# XLRUN_STUDY_DEVICE (cuda), SMOKE_S (30: slower is a warning), SMOKE_TIMEOUT_S (150: a smoke
# still going then, imports and device start included, is a hung device), RUN_ESTIMATE_S (60: a run's seconds before a lane
# has timed one), EXPORT_RESERVE_S (30), BENCH (1), BENCH_MIN_S (100), BENCH_ARGS (""),
# DEVICE_DIR (.device), STUDY_SPECS (the two study specs), STUDY_ORDER
# (experiments/run_order/lareqa_study.toml), RESUME_DIR (docs/study/export),
# SKIP_INSTALL (1: use what is installed — the CPU rehearsal), XLRUN_STUDY_WORK (/tmp/xlrun-study).
set -euo pipefail
T0=$(date +%s)
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${PYTHON:-python3}
read -r -a SPECS <<< "${STUDY_SPECS:-experiments/lareqa_study.toml experiments/lareqa_study_b.toml}"
ORDER=${STUDY_ORDER:-experiments/run_order/lareqa_study.toml}
# Fixed paths for the model and the data, wherever the repository lands: they are part of
# each run's config, hence of its run key, and later allocations (and the dry run, here)
# must find the same keys for the same runs.
export XLRUN_STUDY_WORK=${XLRUN_STUDY_WORK:-/tmp/xlrun-study}
WORK=$XLRUN_STUDY_WORK
export XLRUN_E5="$WORK/model" XLRUN_MLQAR="$WORK/data/mlqa-r" XLRUN_XQUADR="$WORK/data/xquad-r"
export XLRUN_OUTPUT="$WORK/xlrun-out"
stage_data() {  # the carried data (or, here, ../shared's) at the fixed path
  local src="${DEVICE_DIR:-.device}/data"
  [ -d "$src" ] || src="$ROOT/../shared/data"
  [ -d "$src/mlqa-r" ] && [ -d "$src/xquad-r" ] || { echo "no data in $src: run benchmarks/study/prepare.py"; return 1; }
  rm -rf "$WORK/data" && mkdir -p "$WORK/data" && cp -r "$src/mlqa-r" "$src/xquad-r" "$WORK/data/"
}
if [ "${1:-}" = --dry-run ]; then
  stage_data || exit 3
  mkdir -p "$XLRUN_E5"  # the model is not read, but its path must exist (it is in the keys)
  exec $PY benchmarks/study/study.py plan --specs "${SPECS[@]}" --order "$ORDER" \
    --resume "${RESUME_DIR:-docs/study/export}"
fi
OUT=${1:?usage: gpu_study.sh OUT_DIR | --dry-run}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/study.log") 2>&1

BUDGET_S=${BUDGET_S:-540}
DEADLINE=${DEADLINE:-$(( T0 + BUDGET_S ))}
DEVICE=${XLRUN_STUDY_DEVICE:-cuda}
DEVICE_DIR=$(cd "${DEVICE_DIR:-.device}" && pwd)
SITE=$WORK/site
mkdir -p "$WORK"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
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
stage_data || fail "copying the data to $WORK/data"
say "model ready: $XLRUN_E5; data in $WORK/data"

# 3. smoke: fails only when the device does not work; slow is a warning (SMOKE SLOW)
SMOKE_LIMIT=${SMOKE_S:-30}
SMOKE_RC=0
timeout "${SMOKE_TIMEOUT_S:-150}" $PY benchmarks/study/study.py \
  smoke --device "$DEVICE" --limit "$SMOKE_LIMIT" > "$WORK/smoke.txt" 2>&1 || SMOKE_RC=$?
cp "$WORK/smoke.txt" "$OUT/smoke.txt"; cat "$OUT/smoke.txt"
[ "$SMOKE_RC" = 0 ] && grep -q "^smoke ok" "$OUT/smoke.txt" \
  || fail "the smoke run on $DEVICE (exit $SMOKE_RC; see smoke.txt)"
grep -q "^SMOKE SLOW" "$OUT/smoke.txt" && say "warning: the smoke was slow; going on"

# 4.-5. the study, export, files
LANGSIM=()
if [ -d "$DEVICE_DIR/langsim" ]; then
  LANGSIM=(--langsim "$DEVICE_DIR/langsim")
  carried=$(cat "$DEVICE_DIR/langsim/model_id.txt" 2>/dev/null || true)
  [ -n "$carried" ] && [ "$carried" != "$XLRUN_E5" ] && say "warning: the carried embedding \
distances are for the model path $carried, this call's is $XLRUN_E5: they will be recomputed on the CPU"
fi
read -r -a LANE_DEVS <<< "${LANE_DEVICES:-}"
say "study: ${SPECS[*]} on $DEVICE, ${LANE_DEVS[*]:-${LANES:-4} lanes}, deadline in $(( DEADLINE - $(date +%s) ))s"
$PY benchmarks/study/study.py run "$OUT" --deadline "$DEADLINE" --device "$DEVICE" \
  --lanes "${LANES:-4}" ${LANE_DEVS[@]:+--lane-devices "${LANE_DEVS[@]}"} \
  --threads "${THREADS:-0}" --specs "${SPECS[@]}" --order "$ORDER" "${LANGSIM[@]}" \
  --resume "${RESUME_DIR:-docs/study/export}" --run-estimate "${RUN_ESTIMATE_S:-60}" \
  --export-reserve "${EXPORT_RESERVE_S:-30}" || fail "the study run (see above)"

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
