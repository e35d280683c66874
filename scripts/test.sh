#!/usr/bin/env bash
# The test command: installs what is missing, brings the local stack up (real Kafka, PostgreSQL,
# SMTP sink), runs the linters, the security checks and the whole test suite, and stops the stack again if it
# started it. Extra arguments go to one pytest run instead (e.g. `scripts/test.sh -m "not integration"`).
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
# Static security checks: bandit (skips and their reasons in pyproject.toml, single findings
# marked "# nosec" in place) and pip-audit (scripts/audit-dependencies.sh says when it skips).
.venv/bin/bandit -q -c pyproject.toml -r dagmonitor dagmonitor_cli services deploy
bash scripts/audit-dependencies.sh
if (($#)); then
  .venv/bin/python -m pytest "$@"
else
  # Two parts: what can share the stack on two workers, then what must run alone
  # (tests/conftest.py: SERIAL, with the reasons).
  .venv/bin/python -m pytest -n 2 -m "not serial" --durations=15
  .venv/bin/python -m pytest -m serial --durations=10
fi
