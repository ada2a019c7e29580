"""The feed generator's SQL (read-only on the check-in index)."""
