#!/usr/bin/env bash
# Stop the server started by start-postgres.sh (XLRUN_PG_DIR must be set) and remove it.
set -u
[ -n "${XLRUN_PG_DIR:-}" ] || exit 0
run_as=()
[ "$(id -u)" = "0" ] && run_as=(runuser -u postgres --)
"${run_as[@]}" pg_ctl -D "$XLRUN_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
rm -rf "$XLRUN_PG_DIR"
