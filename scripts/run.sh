#!/usr/bin/env bash
# make run: migrate, load demo data, start daphne with the deadline sweep inside it.
set -euo pipefail
cd "$(dirname "$0")/.."
HOST="${1:-127.0.0.1}"
PORT="${2:-8000}"
PY=.venv/bin/python

if [ ! -f .env ]; then
  # A per-checkout secret, kept out of git; cron and the server both read .env.
  echo "SECRET_KEY=$($PY -c 'import secrets; print(secrets.token_urlsafe(50))')" > .env
  echo "Wrote .env with a new SECRET_KEY"
fi
export DEBUG="${DEBUG:-1}"
# The sweep runs inside the server (scheduling/embedded_sweep.py): with the in-memory
# channel layer only the server's own process reaches the open dashboards.
export EMBEDDED_SWEEP_SECONDS="${EMBEDDED_SWEEP_SECONDS:-5}"

if ! grep -q '^VAPID_PRIVATE_KEY=' .env; then
  # Web Push keys, kept with the checkout: subscriptions made with one key pair
  # stop working with another.
  [ -z "$(tail -c1 .env)" ] || echo >> .env
  $PY manage.py generate_vapid_keys >> .env
  echo "Added VAPID keys for Web Push to .env"
fi

$PY manage.py migrate --noinput
$PY manage.py seed_demo

# The sweep starts with the server's first request; make that one right away.
$PY - "$HOST" "$PORT" <<'PY' &
import sys, time, urllib.request
url = f"http://{sys.argv[1]}:{sys.argv[2]}/healthz"
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=1).close()
        break
    except OSError:
        time.sleep(0.2)
PY

echo "Royal Care Scheduling on http://$HOST:$PORT/ (deadline sweep every ${EMBEDDED_SWEEP_SECONDS} s; Ctrl-C stops it)"
exec $PY -m daphne -b "$HOST" -p "$PORT" guitara.asgi:application
