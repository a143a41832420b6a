#!/usr/bin/env bash
# Installs what `make bench` needs beyond scripts/setup-tools.sh: matplotlib
# (pip, for the python3 on PATH) to draw the chart. Idempotent.
set -euo pipefail
. "$(dirname "$0")/common.sh"

command -v python3 >/dev/null || die "python3 not found"
if ! python3 -c 'import matplotlib' 2>/dev/null; then
	PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q matplotlib || die "pip install matplotlib failed"
	python3 -c 'import matplotlib' 2>/dev/null || die "matplotlib still missing after pip install"
fi
exit 0
