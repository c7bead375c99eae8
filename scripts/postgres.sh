#!/usr/bin/env bash
# Makes sure a local PostgreSQL runs for the hub's tests and prints the URL of a role that
# may create databases (the tests make one database each). Installs PostgreSQL with apt
# when it is missing. Usage: URL=$(scripts/postgres.sh)
set -euo pipefail
if ! command -v pg_lsclusters >/dev/null || [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
read -r version cluster port status _ < <(pg_lsclusters -h | head -1)
if [ "$status" != "online" ]; then
  pg_ctlcluster "$version" "$cluster" start >&2
fi
for _ in $(seq 100); do
  su postgres -c "psql -p $port -qAtc 'SELECT 1'" >/dev/null 2>&1 && break
  sleep 0.1
done
password="countersign-test"
su postgres -c "psql -p $port -qAtc \"DO \\\$\\\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'countersign') THEN
    CREATE ROLE countersign LOGIN CREATEDB PASSWORD '$password';
  END IF; END \\\$\\\$;\"" >&2
echo "postgres://countersign:$password@127.0.0.1:$port/postgres"
