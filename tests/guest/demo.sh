#!/usr/bin/env bash
# Runs inside the guest: `secretmem status`, then the key-agent demo as root
# (the agent runs as uid 65534 and is attacked by that user and by root) and
# as an unprivileged user, then the VM demo (root: /dev/kvm is 0600).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
secretmem=$top/userspace/target/release/secretmem
rc=0
"$secretmem" status || rc=1
echo
echo "== secretmem demo, started as root"
"$secretmem" demo || rc=1
echo
echo "== secretmem demo, started as uid 65534"
setpriv --reuid=65534 --regid=65534 --clear-groups "$secretmem" demo || rc=1
echo
echo "== secretmem vm, as root"
"$secretmem" vm || rc=1
exit $rc
