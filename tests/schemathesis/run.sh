#!/usr/bin/env bash
# schemathesis against a running leadx (issue #11): starts
# `leadx demo` (its simulated buyers, publisher key and admin
# token) on a free loopback port, fetches /openapi.json from it and runs
# schemathesis with positive and negative data over every operation this
# build routes. Fails on any 5xx, any answer that does not match its
# documented status, media type, headers or schema, and on auth that is
# not enforced. docs/api.md ("How the description is tested") records
# what it ran and what it found.
#
# schemathesis (PyPI) is installed, pinned, into a venv under target/ when
# missing (install.sh, which .ci/run also runs first); when it cannot be
# installed the run FAILS (it never skips).
#
#   tests/schemathesis/run.sh                  # defaults below
#   LEADX_ST_MAX_EXAMPLES=200 tests/schemathesis/run.sh   # more cases
#   tests/schemathesis/run.sh --report har               # extra schemathesis flags
set -euo pipefail
cd "$(dirname "$0")/../.."

st=$(bash tests/schemathesis/install.sh)
max_examples=${LEADX_ST_MAX_EXAMPLES:-40}
seed=${LEADX_ST_SEED:-20261207}
out=target/schemathesis
mkdir -p "$out"

# `cargo test` passes the binary it built (tests/openapi_live.rs); run by
# hand, the script builds it (a no-op when fresh).
leadx=${LEADX_BIN:-}
if [ -z "$leadx" ]; then
  cargo build --locked --quiet --bin leadx
  leadx=target/debug/leadx
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
"$leadx" demo --listen "127.0.0.1:$port" >"$out/leadx.log" 2>&1 &
leadx_pid=$!
trap 'kill "$leadx_pid" 2>/dev/null; wait "$leadx_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  kill -0 "$leadx_pid" 2>/dev/null || { cat "$out/leadx.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null

# Operations described but not routed yet (api::openapi::NOT_ROUTED_YET)
# would be listed here as --exclude-operation-id; today there are none.
exclude=()

export LEADX_ST_PUBLISHER_KEY=demo-publisher-key
export LEADX_ST_ADMIN_TOKEN=demo-admin-token
# One worker: with two, one run in four failed with a tool error, not a
# finding (CPython 3.11's "AST constructor recursion depth mismatch" inside
# Hypothesis, most likely the two threads racing in `ast`).
status=0
"$st" --config-file tests/schemathesis/schemathesis.toml run "$base/openapi.json" \
  "${exclude[@]}" \
  --mode all \
  --phases examples,coverage,fuzzing,stateful \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,missing_required_header,ignored_auth,unsupported_method,allow_header_conformance \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --workers 1 \
  --request-timeout 10 \
  --suppress-health-check all \
  --report junit --report-dir "$out" \
  "$@" \
  || status=$?
if ! kill -0 "$leadx_pid" 2>/dev/null; then
  echo "leadx died during the run" >&2
  tail -50 "$out/leadx.log" >&2
  exit 1
fi
exit "$status"
