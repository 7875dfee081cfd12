#!/usr/bin/env bash
# Runs the test suite against a Debian/Ubuntu PostgreSQL cluster (as production runs on an
# external server) instead of the embedded one. Starts the cluster if it is stopped and creates
# a throwaway superuser for the tests. Usage: scripts/test-external-postgres.sh [VERSION]
set -euo pipefail
source "$(dirname "$0")/use-node.sh"
version="${1:-15}"
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
  echo "no PostgreSQL $version cluster here (pg_ctlcluster); skipping the external-server run" >&2
  exit 0
fi
pg_ctlcluster "$version" main start 2>/dev/null || true
port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')"
su postgres -c "psql -q -p $port -c \"DO \\\$\\\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tusbox_test') THEN
    CREATE ROLE tusbox_test LOGIN SUPERUSER PASSWORD 'tusbox_test';
  END IF; END \\\$\\\$;\""
echo "running the tests against PostgreSQL $version on 127.0.0.1:$port" >&2
TEST_DATABASE_URL="postgres://tusbox_test:tusbox_test@127.0.0.1:$port/postgres" npx vitest run
