#!/usr/bin/env bash
# One-shot (the `roach-init` service), safe to re-run: initializes the three-node cluster once,
# applies the licence key when one is given, and creates the index database with two users:
#   skyspot_writer  the firehose consumer: owns the schema (it runs the Alembic migrations)
#   skyspot_reader  the feed generator: SELECT only, and every read-only transaction is a
#                   follower read (AS OF SYSTEM TIME follower_read_timestamp()), so any replica
#                   serves it and feed reads never contend with the consumer's writes.
set -euo pipefail

CERTS=(--certs-dir=/certs)
SQL_HOST=roach1:26257

: "${COCKROACH_WRITER_PASSWORD:?set COCKROACH_WRITER_PASSWORD}"
: "${COCKROACH_READER_PASSWORD:?set COCKROACH_READER_PASSWORD}"
# The passwords are spliced into SQL and into DATABASE_URL: only URL- and SQL-safe characters.
for password in "$COCKROACH_WRITER_PASSWORD" "$COCKROACH_READER_PASSWORD"; do
  if ! [[ "$password" =~ ^[A-Za-z0-9_-]{16,}$ ]]; then
    echo "database passwords must be 16+ characters of A-Z a-z 0-9 _ -" >&2
    exit 64
  fi
done

if ! output="$(cockroach init "${CERTS[@]}" --host=roach1:26357 2>&1)"; then
  if ! grep -q "already been initialized" <<<"$output"; then
    echo "$output" >&2
    exit 1
  fi
fi
echo "cluster initialized"

until cockroach sql "${CERTS[@]}" --host="$SQL_HOST" -e "SELECT 1" >/dev/null 2>&1; do
  sleep 1
done

if [ -n "${COCKROACH_LICENSE_KEY:-}" ]; then
  : "${COCKROACH_ORGANIZATION:?set COCKROACH_ORGANIZATION with COCKROACH_LICENSE_KEY}"
  cockroach sql "${CERTS[@]}" --host="$SQL_HOST" <<SQL
SET CLUSTER SETTING cluster.organization = '${COCKROACH_ORGANIZATION//\'/\'\'}';
SET CLUSTER SETTING enterprise.license = '${COCKROACH_LICENSE_KEY//\'/\'\'}';
SQL
  echo "licence key applied"
fi

cockroach sql "${CERTS[@]}" --host="$SQL_HOST" <<SQL
CREATE DATABASE IF NOT EXISTS skyspot;
CREATE USER IF NOT EXISTS skyspot_writer;
CREATE USER IF NOT EXISTS skyspot_reader;
ALTER USER skyspot_writer WITH PASSWORD '${COCKROACH_WRITER_PASSWORD}';
ALTER USER skyspot_reader WITH PASSWORD '${COCKROACH_READER_PASSWORD}';
GRANT CONNECT, CREATE ON DATABASE skyspot TO skyspot_writer;
GRANT CONNECT ON DATABASE skyspot TO skyspot_reader;
ALTER ROLE skyspot_reader SET default_transaction_use_follower_reads = on;
SQL
cockroach sql "${CERTS[@]}" --host="$SQL_HOST" --database=skyspot <<SQL
GRANT ALL ON SCHEMA public TO skyspot_writer;
GRANT USAGE ON SCHEMA public TO skyspot_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE skyspot_writer IN SCHEMA public
  GRANT SELECT ON TABLES TO skyspot_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO skyspot_reader;
SQL
echo "database skyspot and its users are ready"
