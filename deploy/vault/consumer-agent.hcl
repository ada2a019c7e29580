# Vault Agent in process-supervisor mode for the firehose consumer (Vault >= 1.14): the index's
# credentials are dynamic, issued by Vault's database secrets engine (role `skyspot-writer`,
# docs/operations.md "Secrets"), renewed while the consumer runs, and replaced by new ones (with a
# restart: the consumer reads DATABASE_URL once) before their lease ends. The consumer finishes
# its batch in flight on SIGTERM and resumes from its committed cursor, so a restart loses
# nothing. The feed generator's agent is the same with `skyspot-reader` and `python -m feedgen`.
# Partitioned consumers run one agent each: the child process inherits the agent's environment,
# so each container sets its own CONSUMER_PARTITION (0/N ... N-1/N) next to FIREHOSE_SERVICES.

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
  exit_on_retry_failure = true
}

env_template "DATABASE_URL" {
  contents             = <<-EOT
    {{- with secret "database/creds/skyspot-writer" -}}
    cockroachdb://{{ .Data.username | urlquery }}:{{ .Data.password | urlquery }}@/skyspot?host=roach1:26257&host=roach2:26257&host=roach3:26257&ssl=verify-full
    {{- end -}}
  EOT
  error_on_missing_key = true
}

exec {
  command                   = ["python", "-m", "firehose_consumer"]
  restart_on_secret_changes = "always"
  restart_stop_signal       = "SIGTERM"
}
