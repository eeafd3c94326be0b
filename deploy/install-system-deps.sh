#!/usr/bin/env bash
# Install the Debian packages the sandboxes and tests use, when they are missing:
# Unbound and dnsdist (the DNS-over-HTTPS sandbox), Postfix with its pgsql map (postmap -q),
# openssl (the sandbox's certificates), wrk (make bench). Needs root; a no-op when all are present.
set -euo pipefail

need=()
command -v unbound >/dev/null 2>&1 || [ -x /usr/sbin/unbound ] || need+=(unbound)
command -v dnsdist >/dev/null 2>&1 || need+=(dnsdist)
[ -x /usr/sbin/postmap ] || need+=(postfix)
dpkg -s postfix-pgsql >/dev/null 2>&1 || need+=(postfix-pgsql)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v wrk >/dev/null 2>&1 || need+=(wrk)  # make bench: the read path under load

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root: apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packages may start daemons of their own; the sandbox runs its own instances.
for daemon in unbound dnsdist postfix; do
  pkill -x "$daemon" 2>/dev/null || true
done
