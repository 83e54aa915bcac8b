#!/usr/bin/env bash
# Make sure a MariaDB server answers on 127.0.0.1:3306 for the tests, as root without a password.
# Installs it from Debian's packages when missing, starts it when stopped. Idempotent.
set -euo pipefail

ping_tcp() { mariadb-admin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1; }

if ping_tcp; then
  exit 0
fi

if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  echo "ensure-mariadb: installing mariadb-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq mariadb-server mariadb-client >/dev/null
fi

if ! mariadb-admin ping >/dev/null 2>&1; then
  echo "ensure-mariadb: starting mariadbd" >&2
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 1 60); do
    mariadb-admin ping >/dev/null 2>&1 && break
    sleep 0.5
  done
fi

if ! ping_tcp; then
  # A fresh Debian install lets root in only through the socket: allow the tests in over TCP.
  mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;"
fi

for _ in $(seq 1 20); do
  ping_tcp && exit 0
  sleep 0.5
done
echo "ensure-mariadb: MariaDB does not answer on 127.0.0.1:3306" >&2
exit 1
