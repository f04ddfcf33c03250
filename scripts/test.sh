#!/usr/bin/env bash
# make test: the whole suite, against PostgreSQL and Redis when they answer.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_URL="$1"
REDIS_URL_DEFAULT="$2"
PY=.venv/bin/python

answers() { # host port
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

if [ -z "${DATABASE_URL:-}" ] && answers 127.0.0.1 5432; then export DATABASE_URL="$PG_URL"; fi
if [ -z "${REDIS_URL:-}" ] && answers 127.0.0.1 6379; then export REDIS_URL="$REDIS_URL_DEFAULT"; fi
echo "DATABASE_URL=${DATABASE_URL:-<sqlite>} REDIS_URL=${REDIS_URL:-<in-memory>} REQUIRE_SERVICES=${REQUIRE_SERVICES:-0}"
unset DEBUG
exec $PY -m pytest ${PYTEST_ARGS:-}
