#!/usr/bin/env bash
# Build .device/ (ignored by git): what the GPU machine needs beside the repository, which is
# all it can see. Run here, from anywhere; then see run_on_gpu.sh for the two device calls.
#
#   bash benchmarks/study/prepare_device.sh            # SHARED=../shared by default
#
#   .device/whl/          wheels the device image lacks (polars, sqlalchemy, alembic, mako)
#                         for its Python 3.12 — carried ONCE, by the setup call (~45 MB)
#   .device/data/         ../shared/data (mlqa-r, xquad-r; ~3 MB)
#   .device/models/multilingual-e5-small/   the 4-bit pack (55 MB; exported on the device)
#   .device/lang2vec/     a stub `lang2vec` package holding only the URIEL file that
#                         uriel:syntax_knn reads (feature_predictions.npz, 0.5 MB)
#   .device/state/        the previous call's export (study-export.tar), to resume from
# A call carries at most 64 MiB, so the wheels and the model travel in different calls.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared}
PY=${PYTHON:-python3}
[ -d "$SHARED/data/mlqa-r" ] && [ -d "$SHARED/models/multilingual-e5-small" ] \
  || { echo "no $SHARED/data or $SHARED/models/multilingual-e5-small" >&2; exit 2; }
rm -rf .device/data .device/models .device/lang2vec
mkdir -p .device/models .device/lang2vec/lang2vec/data .device/whl .device/state
cp -r "$SHARED/data" .device/data
cp -r "$SHARED/models/multilingual-e5-small" .device/models/

l2v=$("$PY" -c 'from xlrun.langsim.uriel import lang2vec_data_dir; print(lang2vec_data_dir())')
cp "$l2v/feature_predictions.npz" .device/lang2vec/lang2vec/data/
echo '"""Stub: only the URIEL data xlrun.langsim.uriel reads (not the lang2vec API)."""' \
  > .device/lang2vec/lang2vec/__init__.py

# Same versions as here, built for the device's CPython 3.12 (manylinux x86_64).
ver() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
if ! ls .device/whl/polars-*.whl >/dev/null 2>&1; then
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_27_x86_64 -d .device/whl \
    "polars==$(ver polars)" "polars-runtime-32==$(ver polars-runtime-32)" \
    "sqlalchemy==$(ver sqlalchemy)" "alembic==$(ver alembic)" "mako==$(ver mako)"
fi
du -sh .device/* | sed 's/^/  /'
echo "setup call carries: .device/whl   run calls carry: .device/data .device/models .device/lang2vec .device/state"
