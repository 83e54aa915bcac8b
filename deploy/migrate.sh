#!/usr/bin/env bash
# Create or upgrade the Dagster instance's tables in MySQL / MariaDB. Run it once on a new
# deployment and after every Dagster upgrade, with the webserver and the daemon stopped: newer
# Dagster versions need their migrations (backfills and asset checks break without them).
#
#   DAGSTER_HOME=/srv/sales-platform/dagster_home DAGSTER_MYSQL_HOST=… DAGSTER_MYSQL_PORT=3306 \
#   DAGSTER_MYSQL_USER=… DAGSTER_MYSQL_PASSWORD=… DAGSTER_MYSQL_DB=dagster deploy/migrate.sh
#
# Installs deploy/dagster.prod.yaml as $DAGSTER_HOME/dagster.yaml when there is none yet; an
# existing one is kept (it may carry local changes) and a difference is reported.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
: "${DAGSTER_HOME:?set DAGSTER_HOME to the folder that holds (or will hold) dagster.yaml}"
for name in DAGSTER_MYSQL_HOST DAGSTER_MYSQL_PORT DAGSTER_MYSQL_USER DAGSTER_MYSQL_PASSWORD \
  DAGSTER_MYSQL_DB; do
  # Set but possibly empty: a test server may have no password; a missing one is a mistake.
  if [ -z "${!name+set}" ]; then
    echo "migrate: $name is not set" >&2
    exit 2
  fi
done

mkdir -p "$DAGSTER_HOME"
config="$DAGSTER_HOME/dagster.yaml"
if [ ! -e "$config" ]; then
  cp "$here/dagster.prod.yaml" "$config"
  echo "migrate: installed $config from deploy/dagster.prod.yaml"
elif ! cmp -s "$here/dagster.prod.yaml" "$config"; then
  echo "migrate: $config differs from deploy/dagster.prod.yaml (kept as it is)" >&2
fi

# The project's virtualenv when there is one, else whatever `dagster` is on PATH.
dagster="$here/../.venv/bin/dagster"
[ -x "$dagster" ] || dagster="$(command -v dagster)"
exec "$dagster" instance migrate
