#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine, idempotently:
#   - system packages (Java 17+, Maven, PostgreSQL, Prometheus, Chromium) via apt-get when missing
#     and root;
#   - a Python >= 3.11 virtualenv in .venv with the project and its test extras.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*"; }

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # promtool + the server for ops tests
command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # mails rendered as recipients see them (ADR 0017)

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    say "missing system packages: ${missing[*]}; install them (as root: apt-get install ${missing[*]})"
    exit 1
  fi
  say "installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's package starts its own cluster on 5432; the project runs a private one, so stop it.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
      pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
    done
  fi
  # Debian's prometheus package starts a server on 9090; the ops tests run their own, so stop it.
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    if [[ -d /run/systemd/system ]]; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    else
      service prometheus stop >/dev/null 2>&1 || true
      update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
  fi
fi

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [[ -z $python ]]; then
  say "Python >= 3.11 is needed (Debian: apt-get install python3 python3-venv)"
  exit 1
fi

stamp=.venv/.installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  say "creating .venv with $($python --version)"
  "$python" -m venv .venv
  # uv installs the same resolution as pip in about a quarter of the time (CI's budget);
  # pip does it alone where uv cannot be had.
  if .venv/bin/python -m pip install -q 'uv>=0.9,<1'; then
    .venv/bin/python -m uv pip install -q --python .venv/bin/python -e '.[test]'
  else
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
  fi
  echo "$want" > "$stamp"
fi
say "ready: $(.venv/bin/dagmonitor --version)"
