#!/usr/bin/env bash
# Make sure the local PostgreSQL and RabbitMQ answer, starting them if they stopped.
set -euo pipefail

# `make test` runs two workers, each starting whole stacks (four services, two api replicas,
# each with its pool) beside the integration tests' own: together they use close to the 100
# connections PostgreSQL allows out of the box, and a test refused one ("too many clients")
# fails for a reason that is not its own. Raise the limit on a local server (a restart).
PG_MAX_CONNECTIONS="${DOMAINFLOW_PG_MAX_CONNECTIONS:-300}"

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if ! pg_up; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! rabbit_up; then
  echo "starting RabbitMQ" >&2
  rabbitmq-server -detached || true
fi
raise_pg_connections() {
  local now
  now="$(psql -h 127.0.0.1 -U postgres -tAc 'SHOW max_connections' 2>/dev/null || echo 0)"
  if [ "${now:-0}" -ge "$PG_MAX_CONNECTIONS" ] || ! command -v pg_ctlcluster >/dev/null; then
    return 0
  fi
  echo "raising PostgreSQL's max_connections from $now to $PG_MAX_CONNECTIONS (restart)" >&2
  psql -h 127.0.0.1 -U postgres -qc "ALTER SYSTEM SET max_connections = $PG_MAX_CONNECTIONS" || return 0
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main restart || return 0
  for _ in $(seq 1 60); do
    pg_up && return 0
    sleep 1
  done
  echo "PostgreSQL did not come back after its restart" >&2
  exit 1
}

for _ in $(seq 1 60); do
  if pg_up && rabbit_up; then
    # The management UI is how ops staff watch the queues (and its HTTP API is where each
    # replica puts its queues' policies); enable it when we can.
    rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null 2>&1 || true
    # Prometheus scrapes RabbitMQ itself on :15692 (alarms, queue depths); see
    # deploy/prometheus/domainflow-alerts.yml.
    rabbitmq-plugins enable --quiet rabbitmq_prometheus >/dev/null 2>&1 || true
    raise_pg_connections
    exit 0
  fi
  sleep 1
done
echo "PostgreSQL or RabbitMQ did not come up" >&2
exit 1
