#!/usr/bin/env bash
# Install what the tests need into .venv, make sure the servers run, then run the whole test suite:
# the default suite, then the slow one. Extra arguments go to one pytest run instead.
# pytest's "no tests collected" (exit 5) is a failure here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade "pip>=25.1"
.venv/bin/python -m pip install --quiet -e . --group dev
bash scripts/services.sh
# The dashboard's browser tests drive Debian's Chromium (Playwright's own browser download fails here).
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
run_pytest() {  # pytest's "no tests collected" (exit 5) fails the run
  local rc
  set +e
  .venv/bin/python -m pytest "$@"
  rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then
    echo "scripts/test.sh: pytest collected no tests ($*); that is a failure" >&2
    return 1
  fi
  return "$rc"
}

if [ "$#" -gt 0 ]; then
  run_pytest "$@"
  exit $?
fi
# The default suite (kept under 10 minutes), then the slow one (fault, restart and process
# tests marked `slow`); both must pass.
status=0
run_pytest -m "not slow" || status=1
run_pytest -m slow || status=1
exit "$status"
