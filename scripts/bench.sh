#!/usr/bin/env bash
# make bench: every benchmark in bench/ (not tests: they measure, never assert).
# Needs PostgreSQL and Redis answering on this machine; starts its own servers.
# QUICK=1 shrinks the sizes for a smoke run. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_URL="${1:-postgres://postgres@127.0.0.1:5432/guitara}"
REDIS_URL_ARG="${2:-redis://127.0.0.1:6379/1}"
PY=.venv/bin/python

answers() { # host port
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# The bench gets its own database next to the test one (dropped and recreated
# each run) and its own Redis database number (3), never the tests' ones.
PG_BASE="${PG_URL%/*}"
REDIS_BASE="${REDIS_URL_ARG%/*}"
export BENCH_DATABASE_URL="${BENCH_DATABASE_URL:-$PG_BASE/guitara_bench}"
export BENCH_REDIS_URL="${BENCH_REDIS_URL:-$REDIS_BASE/3}"

hostport() { # url -> "host port"
  local rest="${1#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"
  echo "${rest%%:*} ${rest##*:}"
}
# shellcheck disable=SC2046
answers $(hostport "$BENCH_DATABASE_URL") || { echo "bench: PostgreSQL does not answer at $BENCH_DATABASE_URL" >&2; exit 1; }
# shellcheck disable=SC2046
answers $(hostport "$BENCH_REDIS_URL") || { echo "bench: Redis does not answer at $BENCH_REDIS_URL" >&2; exit 1; }

# The settings read .env when present; the bench sets everything it needs itself.
unset DEBUG DATABASE_URL REDIS_URL
exec timeout --signal=TERM 900 $PY -m bench.run
