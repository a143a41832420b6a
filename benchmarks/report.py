#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turns the JSON lines of secretmem_bench (one file per target, each from
its own guest boot) into a table on stdout, results.json and a PNG chart.

usage: report.py --out DIR --variant VARIANT --accel ACCEL FILE.jsonl...

results.json, one object:

  schema         1
  kernel         the guest's `uname -r`
  variant        "release" or "debug" (the guest kernel's build variant)
  accel          "tcg" or "kvm": under TCG only ratios within one run mean anything
  guest          {"cpus": N, "mem_total_kib": N}
  reps           runs per size; first_touch_mib_s and teardown_ms are the best of them
  method         how the numbers were taken, in one sentence
  host_load      per target: the host's 1-minute load average before and after its
                 guest ran (the guests share the host's CPUs with whatever else runs)
  results        one object per target and size:
    target             "secretmemfd", "secretmemfd-nopool" (the same module with its page
                       pool off, pool_batch=0), "secretmemfd-uncached", "secretmemfd-helpers"
                       (the module built for kernels nobody patched,
                       SECRETMEM_BACKEND=mce-helpers, on the same kernel), "memfd_secret",
                       "memfd", "anon"
    size_bytes         mapping size
    first_touch_mib_s  size / time of writing one byte per 4 KiB page after mmap, best run
    teardown_ms        munmap + close of the touched mapping, best run
    l2_splits          direct_map_level2_splits added over all runs of this size
    l3_splits          direct_map_level3_splits added over all runs of this size
    tlb_flushes        the module's tlb_flushes added per run (0 for other targets)
    vs_memfd_secret    {"first_touch": x, "teardown": x}: speed against memfd_secret at
                       this size, above 1 is faster; null where memfd_secret has no number
    runs               per run: first_touch_ms, teardown_ms, l2_splits, l3_splits, tlb_flushes
    skipped            present, with the reason, when the size did not run; the
                       measurements are null then
  latency        one object per target: create + size + mmap + touch + munmap + close
                 of one 4 KiB secret (anon: mmap + touch + munmap)
    target, size_bytes (4096), iterations
    p50_us, p99_us, mean_us, max_us
    l2_splits, l3_splits, tlb_flushes   added over all iterations, the 100 unmeasured
                                        warm-up ones included (secretmemfd targets: those
                                        of all ways of creating over their number)
    vs_memfd_secret    {"p50": x, "p99": x}: speed against memfd_secret, above 1 is faster
    via                how secretmemfd targets created the file: "syscall" (the library's
                       first choice) or "ioctl" if the module serves no system call;
                       "" for the other targets (absent in older files)
    steps_p50_us       {"create", "ftruncate", "mmap", "touch", "munmap", "close"}: the
                       p50 of each step on its own; they need not add up to p50_us
                       (absent in older files)
  latency_via    secretmemfd targets only: the same latency for the other ways of
                 creating, taking turns with the one in "latency" secret by secret:
                 "ioctl" (open the device, ioctl, close it, as <secretmemfd.h> does)
                 and "ioctl-held" (the ioctl on a device descriptor opened once).
                 Same fields; vs_memfd_secret compares with memfd_secret as above.
"""

import argparse
import json
import os
import sys

TARGETS = ["secretmemfd", "secretmemfd-nopool", "secretmemfd-uncached", "secretmemfd-helpers", "memfd_secret", "memfd",
           "anon"]
REFERENCE = "memfd_secret"
STEPS = ["create", "ftruncate", "mmap", "touch", "munmap", "close"]
NOTE = ("TCG emulates the CPU: absolute numbers are not hardware numbers, "
        "only ratios within one run mean anything.")
METHOD = ("Each target ran in a freshly booted guest: first the 4 KiB latency, "
          "then the sizes from the smallest up, so the splits of a size add to "
          "what the smaller ones already split.")


def size_name(size):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} B"


def ratio(num, den):
    if num is None or den is None or den == 0:
        return None
    return round(num / den, 3)


def fmt_ratio(x):
    return "   -  " if x is None else f"{x:5.2f}x"


def load(paths):
    system, sizes, latency, latency_via, host_load = {}, {}, {}, {}, {}
    for path in paths:
        # bench.sh leaves the host's load average before and after the boot beside it.
        try:
            with open(os.path.join(os.path.dirname(path), "host-load")) as f:
                host_load[os.path.basename(os.path.dirname(path))] = [float(x) for x in f.read().split()]
        except (OSError, ValueError):
            pass
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                kind = rec.pop("kind")
                if kind == "system":
                    system = rec
                elif kind == "size":
                    sizes[(rec["target"], rec["size_bytes"])] = rec
                elif kind == "skipped":
                    sizes[(rec["target"], rec["size_bytes"])] = {
                        "target": rec["target"], "size_bytes": rec["size_bytes"],
                        "first_touch_mib_s": None, "teardown_ms": None,
                        "l2_splits": None, "l3_splits": None, "tlb_flushes": None,
                        "runs": [], "skipped": rec["reason"]}
                elif kind == "latency":
                    latency[rec["target"]] = rec
                elif kind == "latency_via":
                    latency_via[(rec["target"], rec["via"])] = rec
    return system, sizes, latency, latency_via, host_load


def order(targets):
    return sorted(targets, key=lambda t: TARGETS.index(t) if t in TARGETS else len(TARGETS))


def build(args, system, sizes, latency, latency_via, host_load):
    results = []
    for size in sorted({s for _, s in sizes}):
        ref = sizes.get((REFERENCE, size), {})
        for target in order({t for t, s in sizes if s == size}):
            rec = sizes[(target, size)]
            rec["vs_memfd_secret"] = {
                "first_touch": ratio(rec["first_touch_mib_s"], ref.get("first_touch_mib_s")),
                "teardown": ratio(ref.get("teardown_ms"), rec["teardown_ms"]),
            }
            results.append(rec)
    ref = latency.get(REFERENCE, {})
    lat, via = [], []
    for target in order(latency):
        rec = latency[target]
        rec["vs_memfd_secret"] = {
            "p50": ratio(ref.get("p50_us"), rec["p50_us"]),
            "p99": ratio(ref.get("p99_us"), rec["p99_us"]),
        }
        lat.append(rec)
        for key in sorted(k for k in latency_via if k[0] == target):
            rec = latency_via[key]
            rec["vs_memfd_secret"] = {
                "p50": ratio(ref.get("p50_us"), rec["p50_us"]),
                "p99": ratio(ref.get("p99_us"), rec["p99_us"]),
            }
            via.append(rec)
    return {
        "schema": 1,
        "kernel": system.get("kernel"),
        "variant": args.variant,
        "accel": args.accel,
        "guest": {"cpus": system.get("cpus"), "mem_total_kib": system.get("mem_total_kib")},
        "reps": system.get("reps"),
        "note": NOTE,
        "method": METHOD,
        "host_load": host_load,
        "results": results,
        "latency": lat,
        "latency_via": via,
    }


def num(x, width, prec):
    return f"{'-':>{width}}" if x is None else f"{x:{width}.{prec}f}"


def print_table(report, out):
    w = out.write
    g = report["guest"]
    w(f"secretmem bench: {report['variant']} kernel {report['kernel']}, "
      f"{report['accel'].upper()}, {g['cpus']} vCPUs, {round((g['mem_total_kib'] or 0) / 1048576, 1)} GiB "
      f"guest, best of {report['reps']}, each target in a freshly booted guest\n")
    w(f"{NOTE}\nratio: speed against memfd_secret, above 1.00x is faster. "
      "Splits: added over all runs of a size; TLB flushes: the module's, per run.\n")
    if report["host_load"]:
        w("Host load average before/after each boot (the boots share the host): " +
          ", ".join(f"{t} {a:.1f}/{b:.1f}" for t, (a, b) in
                    ((t, report["host_load"][t]) for t in order(report["host_load"]))) + "\n")
    w("\n")
    w(f"{'size':<8} {'target':<21} {'touch MiB/s':>11} {'ratio':>6} {'teardown ms':>11} "
      f"{'ratio':>6} {'L2 splits':>9} {'L3 splits':>9} {'TLB flushes':>11}\n")
    last = None
    for r in report["results"]:
        size = size_name(r["size_bytes"])
        if last is not None and size != last:
            w("\n")
        last = size
        if "skipped" in r:
            w(f"{size:<8} {r['target']:<21} skipped: {r['skipped']}\n")
            continue
        v = r["vs_memfd_secret"]
        w(f"{size:<8} {r['target']:<21} {num(r['first_touch_mib_s'], 11, 1)} "
          f"{fmt_ratio(v['first_touch'])} {num(r['teardown_ms'], 11, 3)} {fmt_ratio(v['teardown'])} "
          f"{r['l2_splits']:>9} {r['l3_splits']:>9} {r['tlb_flushes']:>11}\n")
    if report["latency"]:
        n = report["latency"][0]["iterations"]
        w(f"\n4 KiB secret: create + size + mmap + touch + munmap + close, {n} times "
          "(anon: mmap + touch + munmap)\n")
        w(f"{'target':<34} {'p50 us':>9} {'ratio':>6} {'p99 us':>9} {'ratio':>6} "
          f"{'L2 splits':>9} {'TLB flushes':>11}\n")
        # Each target's other ways of creating follow its own line.
        rows = []
        for r in report["latency"]:
            rows.append((r, r["target"] + (f" ({r['via']})" if r.get("via") else "")))
            rows += [(v, f"{v['target']} ({v['via']})") for v in report.get("latency_via", [])
                     if v["target"] == r["target"]]
        for r, name in rows:
            v = r["vs_memfd_secret"]
            w(f"{name:<34} {r['p50_us']:9.1f} {fmt_ratio(v['p50'])} {r['p99_us']:9.1f} "
              f"{fmt_ratio(v['p99'])} {r['l2_splits']:>9} {r['tlb_flushes']:>11}\n")
        w("\np50 of each step on its own, us\n")
        w(f"{'target':<34}" + "".join(f" {s:>9}" for s in STEPS) + "\n")
        for r, name in rows:
            steps = r.get("steps_p50_us") or {}
            w(f"{name:<34}" + "".join(f" {num(steps.get(s), 9, 1)}" for s in STEPS) + "\n")


STYLE = {
    "secretmemfd": dict(color="#d62728", marker="o", lw=2.6),
    "secretmemfd-uncached": dict(color="#ff7f0e", marker="s", lw=2.0),
    "secretmemfd-helpers": dict(color="#9467bd", marker="P", lw=2.0),
    "secretmemfd-nopool": dict(color="#8c564b", marker="<", lw=1.5, ls="--"),
    "memfd_secret": dict(color="#000000", marker="D", lw=2.6),
    "memfd": dict(color="#1f77b4", marker="^", lw=1.6, ls="--"),
    "anon": dict(color="#7f7f7f", marker="v", lw=1.6, ls="--"),
}


def spread(values, gap):
    """Moves sorted-by-value label positions apart by at least @gap, in place order."""
    idx = sorted(range(len(values)), key=lambda i: values[i])
    pos = list(values)
    for k in range(1, len(idx)):
        a, b = idx[k - 1], idx[k]
        pos[b] = max(pos[b], pos[a] + gap)
    return pos


def draw_chart(report, path):
    import math

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

    results = report["results"]
    sizes = sorted({r["size_bytes"] for r in results})
    targets = order({r["target"] for r in results})
    fig, axes = plt.subplots(1, 2, figsize=(14, 6))
    panels = (
        (axes[0], "First touch: one byte written per 4 KiB page after mmap",
         "MiB/s touched (higher is better)", lambda r: r["first_touch_mib_s"],
         lambda r: r["vs_memfd_secret"]["first_touch"]),
        (axes[1], "Teardown: munmap + close of the touched mapping",
         "MiB/s torn down (higher is better)",
         lambda r: r["size_bytes"] / 1048576 / (r["teardown_ms"] / 1e3) if r["teardown_ms"] else None,
         lambda r: r["vs_memfd_secret"]["teardown"]),
    )
    for ax, title, ylabel, value, vs in panels:
        ends = []
        for target in targets:
            pts = [r for r in results
                   if r["target"] == target and "skipped" not in r and value(r)]
            if not pts:
                continue
            style = STYLE.get(target, {})
            ax.plot([r["size_bytes"] for r in pts], [value(r) for r in pts], label=target,
                    markersize=6, **style)
            last = pts[-1]
            x = vs(last)
            text = f"{value(last):.0f}" + ("" if x is None or target == REFERENCE else f"  {x:.2f}x")
            if last["size_bytes"] != sizes[-1]:
                text += f" at {size_name(last['size_bytes'])}"
            ends.append((last["size_bytes"], value(last), text, style.get("color")))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: size_name(int(round(x)))))
        ax.tick_params(axis="x", labelsize=8.5)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: ""))
        ax.set_xlim(sizes[0] / 1.6, sizes[-1] * 9)
        ax.set_xlabel("mapping size (log scale)")
        ax.set_ylabel(ylabel + ", log scale")
        ax.set_title(title, fontsize=11)
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", axis="y", alpha=0.12)
        # Labels at the end of each line: value at the largest size and speed
        # against memfd_secret, pushed apart so that none hides another.
        lo, hi = (math.log10(v) for v in ax.get_ylim())
        logs = spread([math.log10(y) for _, y, _, _ in ends], (hi - lo) * 0.045)
        for (xe, ye, text, color), ly in zip(ends, logs):
            ax.annotate(text, (xe, ye), xytext=(sizes[-1] * 1.35, 10 ** ly), va="center",
                        fontsize=8.5, color=color, fontweight="bold",
                        arrowprops=None if xe == sizes[-1] else
                        dict(arrowstyle="-", color=color, lw=0.6, ls=":"))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=10,
               frameon=False)
    g = report["guest"]
    fig.suptitle(f"Secret memory against memfd_secret, memfd and anonymous memory: "
                 f"{report['variant']} kernel {report['kernel']}, {report['accel'].upper()} guest, "
                 f"{g['cpus']} vCPUs, best of {report['reps']}, each target in a fresh boot\n"
                 f"Labels: value at the largest size and speed against memfd_secret. {NOTE}",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--accel", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    report = build(args, *load(args.files))
    if not report["results"]:
        sys.exit("report.py: no results in " + " ".join(args.files))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    with open(os.path.join(args.out, "table.txt"), "w") as f:
        print_table(report, f)
    print_table(report, sys.stdout)
    draw_chart(report, os.path.join(args.out, "first-touch.png"))


if __name__ == "__main__":
    main()
