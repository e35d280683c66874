#!/usr/bin/env bash
# The main job: installs what is missing, brings the local stack up and creates the topics.
# (It grows into `dagmonitor demo` as the services land.)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
.venv/bin/dagmonitor up
.venv/bin/dagmonitor topics apply
echo "stack is up; stop it with: .venv/bin/dagmonitor down"
