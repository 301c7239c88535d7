#!/usr/bin/env bash
# Install what the cluster profile's test runs, from Debian's packages, when it is missing:
# PostgreSQL (Airflow's and MLflow's databases), Redis (Celery's broker) and OpenSSH's server
# (the SFTP DVC remote). Only the packages: the test starts the servers itself, on loopback,
# in a temporary directory, and stops them by PID. Needs root and apt-get.
set -euo pipefail
missing=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "missing ${missing[*]} and no apt-get" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "missing ${missing[*]}: install them as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || {
  apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}
