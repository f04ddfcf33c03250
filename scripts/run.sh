#!/usr/bin/env bash
# make run: migrate, load demo data, start the sweep (every 60 s) and daphne.
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

if ! grep -q '^VAPID_PRIVATE_KEY=' .env; then
  # Web Push keys, kept with the checkout: subscriptions made with one key pair
  # stop working with another.
  [ -z "$(tail -c1 .env)" ] || echo >> .env
  $PY manage.py generate_vapid_keys >> .env
  echo "Added VAPID keys for Web Push to .env"
fi

$PY manage.py migrate --noinput
$PY manage.py seed_demo

$PY manage.py auto_cancel_overdue --every 60 &
SWEEP_PID=$!
trap 'kill "$SWEEP_PID" 2>/dev/null || true' EXIT INT TERM

echo "Royal Care Scheduling on http://$HOST:$PORT/ (Ctrl-C stops the server and the sweep)"
$PY -m daphne -b "$HOST" -p "$PORT" guitara.asgi:application
