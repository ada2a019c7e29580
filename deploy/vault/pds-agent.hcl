# Vault Agent in process-supervisor mode for the PDS (Vault >= 1.14): it logs in with AppRole,
# reads the PDS's secrets from the KV v2 store, starts `python -m pds` with them as environment
# variables (the PDS reads its settings only from the environment), and restarts it when a secret
# changes. Nothing secret is written to disk. docs/operations.md ("Secrets") shows how to store
# the secrets and create the role; mount this file and the AppRole files into the container and
# run `vault agent -config=/etc/vault/pds-agent.hcl` as its command.

vault {
  address = "https://vault.example.com:8200"
}

auto_auth {
  method "approle" {
    config = {
      role_id_file_path                   = "/etc/vault/role-id"
      secret_id_file_path                 = "/etc/vault/secret-id"
      remove_secret_id_file_after_reading = true
    }
  }
}

template_config {
  static_secret_render_interval = "5m"
  exit_on_retry_failure         = true
}

env_template "PDS_JWT_SECRET" {
  contents             = "{{ with secret \"kv/data/skyspot/pds\" }}{{ .Data.data.jwt_secret }}{{ end }}"
  error_on_missing_key = true
}

env_template "PDS_ADMIN_PASSWORD" {
  contents             = "{{ with secret \"kv/data/skyspot/pds\" }}{{ .Data.data.admin_password }}{{ end }}"
  error_on_missing_key = true
}

env_template "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX" {
  contents             = "{{ with secret \"kv/data/skyspot/pds\" }}{{ .Data.data.plc_rotation_key_hex }}{{ end }}"
  error_on_missing_key = true
}

env_template "PDS_BLOBSTORE_S3_ACCESS_KEY_ID" {
  contents             = "{{ with secret \"kv/data/skyspot/blobs\" }}{{ .Data.data.access_key_id }}{{ end }}"
  error_on_missing_key = true
}

env_template "PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY" {
  contents             = "{{ with secret \"kv/data/skyspot/blobs\" }}{{ .Data.data.secret_access_key }}{{ end }}"
  error_on_missing_key = true
}

exec {
  command                   = ["python", "-m", "pds"]
  restart_on_secret_changes = "always"
  restart_stop_signal       = "SIGTERM"
}
