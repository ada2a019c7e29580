#!/bin/sh
# One-shot (the `minio-init` service), safe to re-run: creates the PDS's blob bucket with
# versioning on (overwritten or deleted blobs stay recoverable for 30 days, see
# docs/operations.md) and a PDS user that may touch only that bucket.
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${BLOB_BUCKET:?}"
: "${BLOB_ACCESS_KEY_ID:?}" "${BLOB_SECRET_ACCESS_KEY:?}"

mc alias set skyspot http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "skyspot/$BLOB_BUCKET"
mc version enable "skyspot/$BLOB_BUCKET"
# Replaces the bucket's lifecycle rules as a whole (so re-running adds nothing): old versions of
# overwritten or deleted blobs expire after 30 days, abandoned multipart uploads after one.
mc ilm import "skyspot/$BLOB_BUCKET" </deploy/minio/lifecycle.json

policy="$(mktemp)"
sed "s/@BUCKET@/$BLOB_BUCKET/g" /deploy/minio/pds-policy.json >"$policy"
mc admin policy create skyspot skyspot-pds "$policy"
mc admin user add skyspot "$BLOB_ACCESS_KEY_ID" "$BLOB_SECRET_ACCESS_KEY"
# Attaching an attached policy is an error; the user's policies are checked first.
if ! mc admin user info skyspot "$BLOB_ACCESS_KEY_ID" | grep -q skyspot-pds; then
  mc admin policy attach skyspot skyspot-pds --user "$BLOB_ACCESS_KEY_ID"
fi
echo "bucket $BLOB_BUCKET and its PDS user are ready"
