#!/usr/bin/env bash
# Installs schemathesis (PyPI), pinned, into target/schemathesis-venv when it
# is missing or another version; prints the path of its command. Run by
# .ci/run before the suite and by run.sh (so a run by hand needs nothing
# else). Fails, never skips, when it cannot install.
set -euo pipefail
cd "$(dirname "$0")/../.."

ST_VERSION=4.32.5
venv=target/schemathesis-venv
st=$venv/bin/schemathesis

if ! "$st" --version 2>/dev/null | grep -q "version $ST_VERSION\$"; then
  echo "installing schemathesis $ST_VERSION into $venv" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION" >&2
fi
"$st" --version >&2
echo "$st"
