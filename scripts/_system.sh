# Sourced by scripts/test: install the system packages the tests need, only when missing.
# Needs root (or passwordless sudo) and apt-get; elsewhere it says what to install and goes on,
# and the tests that need the package skip with that reason.

have_postgres_server() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null
}

apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "!! cannot install $* (not root): install it to run the tests that need it" >&2
      return 0
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    echo "!! no apt-get: install $* to run the tests that need it" >&2
    return 0
  fi
  echo "== installing system packages: $*"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

ensure_system_packages() {
  # PostgreSQL server binaries: the index test suite runs against a throw-away cluster.
  have_postgres_server || apt_install postgresql
}
