#!/usr/bin/env bash
# Start a throwaway PostgreSQL server in a temp dir on a free port and print its URL.
# Usage: eval "$(bash .ci/start-postgres.sh)"   → exports XLRUN_TEST_POSTGRES_URL and PGDATA_DIR
# Stop it with: bash .ci/stop-postgres.sh
set -euo pipefail
if ! command -v initdb >/dev/null 2>&1; then
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && export PATH="$d:$PATH"; done
fi
if ! command -v initdb >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq postgresql) >&2
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && export PATH="$d:$PATH"; done
fi
# the read-only SQL tests attack through the dblink and adminpack extensions (contrib)
if ! ls /usr/share/postgresql/*/extension/dblink.control >/dev/null 2>&1 && \
   ! ls "$(dirname "$(command -v initdb)")"/../share/extension/dblink.control >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq postgresql-contrib) >&2 || \
    echo "warning: postgresql-contrib not installed; dblink/adminpack tests will skip" >&2
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d /tmp/xlrun-pg.XXXXXX)
run_as=()
if [ "$(id -u)" = "0" ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown -R postgres "$dir"
  run_as=(runuser -u postgres --)
fi
"${run_as[@]}" initdb -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
"${run_as[@]}" pg_ctl -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" \
  -l "$dir/server.log" -w start >&2
echo "export XLRUN_TEST_POSTGRES_URL=postgresql+psycopg2://postgres@127.0.0.1:$port/postgres"
echo "export XLRUN_PG_DIR=$dir"
