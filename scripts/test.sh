#!/usr/bin/env bash
# The test command: installs what is missing, brings the local stack up (real Kafka, PostgreSQL,
# SMTP sink), runs the linters and the whole test suite, and stops the stack again if it
# started it. Extra arguments go to pytest (e.g. `scripts/test.sh -m "not integration"`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh

started_here=0
if ! .venv/bin/dagmonitor status >/dev/null 2>&1; then
  started_here=1
fi
stop_stack() {
  if ((started_here)); then .venv/bin/dagmonitor down || true; fi
}
trap stop_stack EXIT

.venv/bin/dagmonitor up --no-services
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
