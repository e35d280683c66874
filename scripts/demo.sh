#!/usr/bin/env bash
# The main job: installs what is missing, then `dagmonitor demo`: brings up Kafka, PostgreSQL,
# the SMTP sink and the five services, publishes a generated day of police records, approves
# the pending requests as the OM and the police would, sends the daily and the bi-weekly
# Dagmonitor, prints a summary, and keeps the stack running until Ctrl-C.
# Extra arguments go to `dagmonitor demo` (e.g. `scripts/demo.sh --exit --count 1000`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
exec .venv/bin/dagmonitor demo "$@"
