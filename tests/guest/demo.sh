#!/usr/bin/env bash
# Runs inside the guest: the demo, as root and as an unprivileged user.
set -u
bin=$(cd "$(dirname "$0")/../userspace" && pwd)
rc=0
echo "== as root"
"$bin/secretmem_demo" || rc=1
echo "== as an unprivileged user (uid 65534)"
setpriv --reuid=65534 --regid=65534 --clear-groups "$bin/secretmem_demo" || rc=1
exit $rc
