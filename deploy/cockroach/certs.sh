#!/usr/bin/env bash
# One-shot (the `roach-certs` service): the cluster's certificate authority, one node certificate
# valid for roach1..roach3, the `root` client certificate, and the CA certificate again as
# root.crt for the applications, which verify the server (sslmode verify-full) and log in with
# passwords. The CA key lives only in the roach-ca volume, never beside the node certificates.
# Re-running it changes nothing: every file that exists is kept.
set -euo pipefail

CA_DIR=/ca             # ca.key (mounted only here)
CERTS_DIR=/certs       # ca.crt, node.*, client.root.* (mounted read-only into the nodes)
CLIENT_CA_DIR=/client-ca  # root.crt (mounted into the applications' ~/.postgresql)

if [ ! -f "$CERTS_DIR/ca.crt" ]; then
  cockroach cert create-ca --certs-dir="$CERTS_DIR" --ca-key="$CA_DIR/ca.key"
fi
if [ ! -f "$CERTS_DIR/node.crt" ]; then
  cockroach cert create-node roach1 roach2 roach3 localhost 127.0.0.1 \
    --certs-dir="$CERTS_DIR" --ca-key="$CA_DIR/ca.key"
fi
if [ ! -f "$CERTS_DIR/client.root.crt" ]; then
  cockroach cert create-client root --certs-dir="$CERTS_DIR" --ca-key="$CA_DIR/ca.key"
fi
install -m 0644 "$CERTS_DIR/ca.crt" "$CLIENT_CA_DIR/root.crt"
echo "CockroachDB certificates are in place"
