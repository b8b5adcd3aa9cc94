#!/usr/bin/env python3
"""Draws maps/s per configuration from scripts/bench.sh's JSON, workloads side by side.

    /usr/bin/python3 scripts/bench_plot.py [bench/results/latest.json] [docs/img/performance.png]

Bars: every salpipe configuration measured (hatched: compression 0, green: direct
convolutions, purple: convolution = "fastest"), DNNBrain's PyTorch loop and the three batched PyTorch strategies (W4: the SmoothGrad loop and the batched
SmoothGrad), on a log scale; the value is printed on each bar. Dashed lines on W1:
issue 6's targets (30x DNNBrain's loop, 2.5x the best batched PyTorch); on W1 and W2
issue 13's (1.5x and 2.0x the best batched PyTorch, for -n 2).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def bars(w):
    out = []
    for e in w["salpipe"]:
        conv = e.get("convolution", "fast")
        colour = {"direct": "#2ca02c", "fastest": "#9467bd"}.get(
            conv, "#1f77b4" if e["compression"] else "#6baed6")
        out.append((f"salpipe -n {e['ranks']} t={e['threads']}\ncompr {e['compression']}"
                    + ("" if conv == "fast" else " " + conv), e["maps_per_s"], colour,
                    "" if e["compression"] else "//"))
    for k, t in sorted(w.get("torch", {}).items()):
        label = t.get("label") or ("PyTorch\nDNNBrain loop" if k == "dnnbrain"
                                   else f"PyTorch batched\n{t['strategy']}")
        out.append((label, t["maps_per_s"], "#d62728" if k in ("dnnbrain", "sg_loop") else "#ff7f0e", ""))
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest.json"
    dst = sys.argv[2] if len(sys.argv) > 2 else "docs/img/performance.png"
    res = json.load(open(src))
    wls = list(res["workloads"].items())
    if not wls:
        sys.exit(f"bench_plot.py: no salpipe measurement in {src}, nothing to plot")
    fig, axes = plt.subplots(1, len(wls), figsize=(6.5 * len(wls), 5.2), squeeze=False)
    for ax, (wl, w) in zip(axes[0], wls):
        data = bars(w)
        xs = range(len(data))
        ax.bar(xs, [d[1] for d in data], color=[d[2] for d in data],
               hatch=None, edgecolor="black", linewidth=0.5)
        for x, d in zip(xs, data):
            if d[3]:
                ax.patches[x].set_hatch(d[3])
            ax.text(x, d[1] * 1.08, f"{d[1]:.3g}", ha="center", va="bottom", fontsize=8)
        ax.set_yscale("log")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([d[0] for d in data], rotation=60, ha="right", fontsize=8)
        arch = {"W1": "AlexNet", "W2": "VGG16", "W3": "ResNet-50",
                "W4": "AlexNet SmoothGrad"}.get(wl, wl)
        s0 = w["salpipe"][0]
        ax.set_title(f"{wl}: {arch}, {s0['images']} images, {s0['maps']} maps")
        ax.set_ylabel("maps/s (higher is better, log scale)")
        ax.grid(axis="y", which="both", alpha=0.3)
        # issue 6's throughput targets (for W1): 30x DNNBrain's loop, 2.5x batched PyTorch;
        # issue 13's for -n 2: W1 1.5x, W2 2.0x the best batched PyTorch
        tt = w.get("torch", {}) if wl in ("W1", "W2") else {}
        goals = []
        if "dnnbrain" in tt and wl == "W1":
            goals.append((30 * tt["dnnbrain"]["maps_per_s"], "30x DNNBrain loop", "#d62728"))
        best = max((t["maps_per_s"] for k, t in tt.items() if k.startswith("batched")), default=0)
        if best and wl == "W1":
            goals.append((2.5 * best, "2.5x batched PyTorch", "#ff7f0e"))
        if best:
            x = {"W1": 1.5, "W2": 2.0}[wl]
            goals.append((x * best, f"{x:.1f}x best batched PyTorch (-n 2, issue 13)",
                          "#9467bd"))
        goals.sort()
        for i, (y, label, color) in enumerate(goals):
            ax.axhline(y, color=color, linestyle="--", linewidth=1)
            ax.text(len(data) - 0.5, y * (1.05 if i else 0.95), f"target: {label}", color=color,
                    ha="right", va="bottom" if i else "top", fontsize=8)
        top = max([d[1] for d in data] + [g[0] for g in goals])
        ax.set_ylim(min(d[1] for d in data) / 2, top * 3)
    m = res["meta"]
    load = m.get("load_start", "?").split()[0]
    note = "" if float(load) < 0.5 else f" — TRIAL numbers, machine loaded (load {load})"
    fig.suptitle(f"salpipe vs PyTorch, {m.get('nproc', '?')} cores, {m.get('date', '?')[:10]}, "
                 f"commit {m.get('commit', '?')}{note}", fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
