#!/usr/bin/env bash
# Schema-driven testing: schemathesis generates requests from the served OpenAPI documents and
# checks every answer against them (no 5xx, every status documented, bodies and content types as
# documented). Each API surface has its own document (the public one at /openapi.json, the
# operator API's at /admin/v1/openapi.json for an operator, the service API's at
# /internal/v1/openapi.json for a service secret); every run covers all three. Runs against a
# fresh `target/debug/gatehouse serve`: anonymous, and as a signed-in owner of an organisation
# (bearer token, `x-organization-id`, and a service secret for `/internal/v1`), the operations
# that end the caller's session in a third run of their own.
# Fails on any failure or error; the server is always stopped. docs/SECURITY.md has the figures.
#
# Needs `cargo build -p gatehouse` first, python3 with venv, and PyPI for the first install.
# GH_ST_MAX_EXAMPLES, GH_ST_SEED and GH_ST_RUN_TIMEOUT change the defaults for a longer local hunt.
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION=4.32.5
VENV=target/schemathesis-venv
BIN=target/debug/gatehouse
# Test cases per operation (the fuzzing phase's budget; the coverage and stateful phases add
# theirs), a fixed seed so a failure replays, and a hard bound on each run: reaching it fails.
MAX_EXAMPLES=${GH_ST_MAX_EXAMPLES:-50}
RUN_TIMEOUT=${GH_ST_RUN_TIMEOUT:-150}
SEED=${GH_ST_SEED:-1}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance

die() { printf 'schemathesis: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "$BIN is missing; run cargo build -p gatehouse first"

if [ ! -x "$VENV/bin/st" ] || [ "$("$VENV/bin/st" --version 2>/dev/null)" != "st, version $ST_VERSION" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION" \
    || die "could not install schemathesis $ST_VERSION from PyPI"
fi
st="$PWD/$VENV/bin/st"
config="$PWD/.ci/schemathesis.toml"
"$st" --version

work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-st.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  # The server's log stays for a look after a failure.
  if [ -f "$work/server.log" ]; then cp "$work/server.log" target/schemathesis-server.log; fi
  rm -rf "$work"
}
trap cleanup EXIT

# A service secret for /internal/v1 (base64 of 32 random bytes, mode 0600).
umask 077
python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())' > "$work/schemathesis.key"
service_secret=$(cat "$work/schemathesis.key")
umask 022

# Development mode on a fresh data directory and an ephemeral loopback port, from a file of its
# own and a clean environment (no ./gatehouse.toml or GATEHOUSE_* of the caller's). Rate limits
# stay on (429 is documented and checked) with quotas and lockout thresholds this run cannot reach.
cat > "$work/gatehouse.toml" <<TOML
mode = "development"
listen = "127.0.0.1:0"
data_dir = "$work/data"
log_format = "text"
log_level = "info"

[service_auth]
secret_files = ["$work/schemathesis.key"]

[rate_limits]
per_user = 1000000

[rate_limits.per_ip]
auth = 1000000
read = 1000000
write = 1000000
admin = 1000000

[rate_limits.lockout]
account_threshold = 1000000
account_wide_threshold = 1000000
ip_threshold = 1000000
TOML
# An operator, only to fetch the operator API's document (the runs use the owner's credentials, as
# they did when one document held every surface).
operator_email="st-operator-$RANDOM@example.com"
operator_password="schemathesis operator passphrase $RANDOM"
printf '%s\n' "$operator_password" | env -i PATH="$PATH" "$BIN" admin create-operator \
  --config "$work/gatehouse.toml" --email "$operator_email" --name "Schema Operator" \
  > "$work/create-operator.log" 2>&1 || { cat "$work/create-operator.log" >&2; die "could not create an operator"; }
env -i PATH="$PATH" "$BIN" serve --config "$work/gatehouse.toml" > "$work/server.log" 2>&1 &
server_pid=$!

base=""
for _ in $(seq 1 120); do
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "the server exited at start"; }
  base=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$work/server.log" | head -n1 | sed 's/^listening on //' || true)
  if [ -n "$base" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/health/ready")" = "200" ]; then break; fi
  base=""
  sleep 0.5
done
[ -n "$base" ] || { cat "$work/server.log" >&2; die "the server did not answer /health/ready with 200"; }
echo "server: $base (data in $work/data)"

# A signed-in owner: sign up (a new user and organisation), then sign in. Development mode lets an
# unverified account act in full (identity.unverified_access = "full"), so no mail is needed.
email="st-owner-$RANDOM@example.com"
password="schemathesis owner passphrase $RANDOM"
json() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
signup=$(curl -sf -H 'content-type: application/json' "$base/v1/auth/signup" \
  -d "{\"email\":\"$email\",\"password\":\"$password\",\"name\":\"Schema Owner\",\"organization_name\":\"Schema Org\"}") \
  || die "sign-up failed"
[ "$(json status <<< "$signup")" = "accepted" ] || die "sign-up was not accepted"
# Sign-up answers no ids; the organisation comes with a sign-in.
org=$(curl -sf -H 'content-type: application/json' "$base/v1/auth/login" \
  -d "{\"email\":\"$email\",\"password\":\"$password\",\"device_name\":\"schemathesis\"}" \
  | json organization_id) || die "the first sign-in failed"
sign_in() {
  local body token
  body=$(curl -sf -H 'content-type: application/json' "$base/v1/auth/login" \
    -d "{\"email\":\"$email\",\"password\":\"$password\",\"device_name\":\"schemathesis\"}") \
    || die "sign-in failed"
  [ "$(json organization_id <<< "$body")" = "$org" ] || die "the session is not in the new organisation"
  token=$(json access_token <<< "$body")
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $token" "$base/v1/me")" = "200" ] \
    || die "GET /v1/me refused the new token"
  printf '%s' "$token"
}
token=$(sign_in)
echo "signed in: organisation $org"

# The operator and service APIs' documents, fetched from where they are served, behind their
# credentials (each run then reads the file, with --url for the server).
operator_token=$(curl -sf -H 'content-type: application/json' "$base/admin/v1/auth/login" \
  -d "{\"email\":\"$operator_email\",\"password\":\"$operator_password\"}" | json access_token) \
  || die "the operator's sign-in failed"
curl -sf -H "authorization: Bearer $operator_token" "$base/admin/v1/openapi.json" > "$work/openapi-admin.json" \
  || die "GET /admin/v1/openapi.json refused the operator"
curl -sf -H "x-service-auth: $service_secret" "$base/internal/v1/openapi.json" > "$work/openapi-internal.json" \
  || die "GET /internal/v1/openapi.json refused the service secret"
documents=("$base/openapi.json" "$work/openapi-admin.json" "$work/openapi-internal.json")

# run LABEL DOCUMENT [st options...]: DOCUMENT is the public document's URL or a fetched file.
run() {
  local label=$1 document=$2
  shift 2
  local location=("$document")
  if [ -f "$document" ]; then location=("$document" --url "$base"); fi
  echo
  echo "==> schemathesis: $label ($(basename "$document"))"
  # From the scratch directory: schemathesis and Hypothesis keep state in the working directory.
  # One worker: with two, Hypothesis parses sources with `ast` from both threads, which Python
  # 3.11 does not survive ("SystemError: AST constructor recursion depth mismatch").
  (cd "$work" && GH_ST_ORG="$org" timeout --signal=INT --kill-after=10 "$RUN_TIMEOUT" "$st" --config-file "$config" run \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --seed "$SEED" \
    --no-color \
    "$@" \
    "${location[@]}")
}

status=0
for document in "${documents[@]}"; do
  run anonymous "$document" || status=1
done
# Signing out, and ending a session by its id (the stateful phase takes the caller's own from
# GET /v1/me/sessions), end the session every other request of the run uses: they get a run (and
# a session) of their own, after the one that ends the caller's other sessions.
ending='^/v1/(auth/logout|me/sessions/\{id\})$'
for document in "${documents[@]}"; do
  run "signed in" "$document" --exclude-path-regex "$ending" \
    -H "Authorization: Bearer $token" \
    -H "X-Service-Auth: $service_secret" || status=1
done
ending_token=$(sign_in)
run "signed in, ending sessions" "$base/openapi.json" --include-path-regex '^/v1/(auth/logout|me/sessions(/\{id\})?)$' \
  -H "Authorization: Bearer $ending_token" || status=1

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "schemathesis: the server died during the runs" >&2
  status=1
fi
if grep -q 'panicked' "$work/server.log"; then
  grep 'panicked' "$work/server.log" >&2
  status=1
fi
[ "$status" = 0 ] || { tail -n 50 "$work/server.log" >&2; die "failures above"; }
echo "schemathesis: every run passed"
