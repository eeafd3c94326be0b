#!/usr/bin/env bash
# Make sure the local PostgreSQL and RabbitMQ answer, starting them if they stopped.
set -euo pipefail

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
for _ in $(seq 1 60); do
  if pg_up && rabbit_up; then
    # The management UI is how ops staff watch the queues (and its HTTP API is where each
    # replica puts its queues' policies); enable it when we can.
    rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null 2>&1 || true
    # Prometheus scrapes RabbitMQ itself on :15692 (alarms, queue depths); see
    # deploy/prometheus/domainflow-alerts.yml.
    rabbitmq-plugins enable --quiet rabbitmq_prometheus >/dev/null 2>&1 || true
    exit 0
  fi
  sleep 1
done
echo "PostgreSQL or RabbitMQ did not come up" >&2
exit 1
