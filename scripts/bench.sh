#!/usr/bin/env bash
# Benchmarks secret memory in the guest: for each target, a freshly booted
# guest (scripts/vm-run.sh, so every target starts from the same direct map)
# runs benchmarks/secretmem_bench; benchmarks/report.py then prints the table
# and writes results.json and first-touch.png to $SECRETMEM_BENCH_OUT
# (./out/bench). The kernel variant is $SECRETMEM_KERNEL, as for the module.
set -euo pipefail
. "$(dirname "$0")/common.sh"

out=$(realpath -m "${SECRETMEM_BENCH_OUT:-$SECRETMEM_TOP/out/bench}")
variant=${SECRETMEM_KERNEL:-debug}
# secretmem_bench options, e.g. "-r 1 -n 1000 -s 16K,64M" for a quick look.
read -ra opts <<<"${SECRETMEM_BENCH_OPTS:-}"
# Uncached secret memory costs a memory-type change per page (PAT bookkeeping
# and a cache flush): under TCG about 12 MiB/s to touch and 10 s to tear down
# 256 MiB, growing faster than the size; three runs at 1 GiB would take some
# 7 minutes, so it stops at 256 MiB.
uncached_max=${SECRETMEM_BENCH_UNCACHED_MAX:-256M}
targets=(memfd_secret secretmemfd secretmemfd-nopool secretmemfd-uncached secretmemfd-helpers memfd anon)

make -s -C "$SECRETMEM_TOP/benchmarks" || die "building benchmarks/secretmem_bench failed"
# secretmemfd-helpers: the module as a kernel nobody patched gets it
# (SECRETMEM_BACKEND=mce-helpers, Documentation/support-matrix.rst), on this
# same kernel, built from a copy of the sources in build/helpers.
kdir=$(kernel_dir)
helpers=$SECRETMEM_TOP/build/helpers
mkdir -p "$helpers"
(cd "$SECRETMEM_TOP" && rsync -a Kbuild ./*.rs secretmem_shim.c secretmem_shim.h include "$helpers/") ||
	die "copying the module's sources to $helpers failed"
make -s -C "$kdir" M="$helpers" LLVM=1 SECRETMEM_BACKEND=mce-helpers modules >"$out.helpers-build.log" 2>&1 ||
	die "building the mce-helpers module failed (see $out.helpers-build.log)"
rm -rf "$out"
mkdir -p "$out"
begin=$(date +%s)
for target in "${targets[@]}"; do
	params=() cap=() module=$SECRETMEM_TOP/secretmemfd.ko run=("$target")
	[ "$target" = secretmemfd-uncached ] && cap=(-m "$uncached_max")
	# What the page pool buys: the same module with it off.
	[ "$target" = secretmemfd-nopool ] && params=(--param pool_batch=0) run=(-l "$target" secretmemfd)
	if [ "$target" = secretmemfd-helpers ]; then
		# A page per change and per all-CPU flush: as slow as uncached to tear down.
		cap=(-m "$uncached_max") module=$helpers/secretmemfd.ko run=(-l "$target" secretmemfd)
	fi
	start=$(date +%s)
	load_before=$(cut -d' ' -f1 /proc/loadavg)
	if ! SECRETMEM_OUT=$out/$target SECRETMEM_MODULE=$module "$SECRETMEM_TOP/scripts/vm-run.sh" \
		"$SECRETMEM_TOP/benchmarks/guest.sh" "${params[@]}" "${opts[@]}" "${cap[@]}" "${run[@]}" \
		>"$out/$target.log" 2>&1; then
		tail -n 20 "$out/$target.log" >&2
		die "$target: the guest run failed (see $out/$target.log and $out/$target/)"
	fi
	# The guests share the host: its load tells how comparable the boots were.
	echo "$load_before $(cut -d' ' -f1 /proc/loadavg)" >"$out/$target/host-load"
	echo "bench: $target done in $(($(date +%s) - start)) s" >&2
done

accel=$(cat "$SECRETMEM_CACHE/kvm-probe" 2>/dev/null || echo unknown)
files=()
for target in "${targets[@]}"; do files+=("$out/$target/bench.jsonl"); done
python3 "$SECRETMEM_TOP/benchmarks/report.py" --out "$out" --variant "$variant" --accel "$accel" \
	"${files[@]}" || die "report.py failed"
echo "bench: $(($(date +%s) - begin)) s; results in $out/results.json, chart $out/first-touch.png" >&2
