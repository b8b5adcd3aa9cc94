#!/usr/bin/env python3
"""The figures of issue 14 from scripts/bench_scale.sh's records.jsonl: per-rank
rates, writer capacity, the keep-up sweep, parallel HDF5 against part files, and the
model table "network and rank count -> writers needed" (docs/cluster.md).

    /usr/bin/python3 bench/bench_scale_report.py build/scale/records.jsonl

The model: R ranks of one model make R x r maps/s (r: one rank's measured rate),
R x r x s bytes/s of compressed chunks (s: the mean chunk of that model's real
output). One writer stores at most C maps/s (its measured storing rate on this
machine's disk) and receives at most B bytes/s (its node's network link), so
K = max(ceil(R r / C), ceil(R r s / B)) writers keep up. The network efficiency
(0.8 of the link's rate) is an assumption, not a measurement.
"""
import json
import math
import statistics
import sys
from collections import defaultdict

LINKS = [("10 GbE", 1.25e9), ("25 GbE", 3.125e9), ("100 Gb/s (EDR IB, 100 GbE)", 12.5e9),
         ("200 Gb/s (HDR IB)", 25e9)]
EFFICIENCY = 0.8
RANKS = [64, 128, 256, 512, 1024]


def med(v):
    return statistics.median(v) if v else float("nan")


def main():
    rs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    # Per-rank rates.
    rates, wall = defaultdict(list), defaultdict(list)
    for r in rs:
        if r.get("stage") == "rates" and r.get("maps_per_cpu_s"):
            rates[r["model"]].append(r["maps_per_cpu_s"])
            wall[r["model"]].append(r["maps_per_s"] or float("nan"))
    print("== per-rank rates (salpipe alone, threads=1, compression 4): maps per CPU second "
          "between N and 2N images; wall: progress line of the 2N run")
    for m, v in rates.items():
        print(f"  {m:9s} median {med(v):7.2f} maps/CPU s (n={len(v)}, {min(v):.2f}..{max(v):.2f});"
              f" wall median {med(wall[m]):.2f} maps/s")

    # Writer capacity: writer lines of the capacity stage, per (K, P).
    cap = defaultdict(lambda: defaultdict(list))
    summ = defaultdict(list)
    for r in rs:
        if r.get("stage") != "capacity":
            continue
        if "summary" in r:
            summ[(r["writers"], r["producers"])].append(r)
    # writer lines precede their summary; pair them by order
    cur = []
    for r in rs:
        if r.get("stage") != "capacity":
            continue
        if "writer" in r:
            cur.append(r)
        elif "summary" in r:
            key = (r["writers"], r["producers"])
            for w in cur:
                cap[key]["mps"].append(w["maps_per_s"])
                cap[key]["busy"].append(w["maps_per_busy_s"])
                cap[key]["MBs"].append(w["MB_per_s"])
                if "maps_per_store_cpu_and_flush_s" in w:
                    cap[key]["cpu"].append(w["maps_per_store_cpu_and_flush_s"])
            cap[key]["agg"].append(r["achieved"])
            cap[key]["load"].append(r["load"])
            cur = []
    print("\n== writer capacity (as fast as taken; AlexNet chunks; medians over writers x reps)")
    print("  K  P  maps/s/writer  MB/s/writer  storing-only maps/s/writer  "
          "per CPU s + flush  all writers maps/s  load")
    chunk = {}
    for key in sorted(cap):
        c = cap[key]
        print(f"  {key[0]}  {key[1]}  {med(c['mps']):13.0f}  {med(c['MBs']):11.0f}  "
              f"{med(c['busy']):26.0f}  {med(c['cpu']):17.0f}  {med(c['agg']):18.0f}  "
              f"{med(c['load']):.1f}")
    for r in rs:
        if "summary" in r and r.get("chunk_source"):
            name = r["chunk_source"].rsplit("/", 1)[-1].replace(".h5", "").replace("-big", "")
            chunk[name] = r["chunk_bytes"]
    print("  mean chunk bytes: " + ", ".join(f"{k} {v:.0f}" for k, v in chunk.items()))
    c1 = cap.get((1, 4)) or cap.get((1, 2))
    # C: maps per (CPU second storing + wall second flushing), K = 1, all P: a
    # writer with a core of its own; the contention of this shared host left out.
    C = med([x for k, c in cap.items() if k[0] == 1 for x in c["cpu"]])
    Cw = med(c1["mps"]) if c1 else float("nan")

    # Sweep.
    print("\n== keep-up sweep: 8 producers stand for RANKS ranks; keep = slowest producer's "
          "stored/offered")
    sw = defaultdict(list)
    for r in rs:
        if str(r.get("stage", "")).startswith("sweep") and "summary" in r:
            sw[(r["stage"][6:], r["producers"] * r["ranks_each"], r["writers"])].append(r)
    for key in sorted(sw):
        v = sw[key]
        keep = med([x["keeps_up"] for x in v])
        print(f"  {key[0]:9s} {key[1]:5d} ranks  K={key[2]}  offered {v[0]['offered']:7.0f} "
              f"maps/s  stored {med([x['achieved'] for x in v]):7.0f}  keep {keep:.2f}  "
              f"{'keeps up' if keep >= 0.95 else 'FALLS BEHIND'}")

    # Parallel HDF5.
    ph = defaultdict(list)
    rb = defaultdict(list)
    for r in rs:
        if r.get("stage") != "phdf5":
            continue
        if "maps_per_s" in r:
            ph[(r["mode"], r["ranks"])].append(r)
        elif "read_back_bad_maps" in r:
            rb[(r["mode"], r["ranks"])].append(r["read_back_bad_maps"])
    print("\n== parallel HDF5 vs part files (AlexNet maps, 256 per rank, batches of 8)")
    for key in sorted(ph):
        v = ph[key]
        bad = rb.get(key, [])
        print(f"  {key[0]:19s} K={key[1]}  {med([x['maps_per_s'] for x in v]):7.0f} maps/s  "
              f"(n={len(v)}, failed {sum(x['failed'] for x in v)}, maps read back wrong: "
              f"{max(bad) if bad else '-'})")

    # The model.
    print(f"\n== model: one writer stores C = {C:.0f} maps/s (CPU storing + flush time; "
          f"{Cw:.0f} wall with the transfer on this loaded host); link efficiency {EFFICIENCY}")
    for m, v in rates.items():
        r1 = med(v)
        s = chunk.get(m, 519000)
        print(f"  {m}: {r1:.2f} maps/s per rank, {s / 1e3:.0f} kB per chunk, "
              f"{r1 * s / 1e6:.1f} MB/s per rank")
        for R in RANKS:
            maps = R * r1
            byts = maps * s
            kc = math.ceil(maps / C)
            row = [f"{R:5d} ranks: {maps:8.0f} maps/s {byts / 1e9:6.2f} GB/s; disk K>={kc}"]
            for name, bw in LINKS:
                k = max(kc, math.ceil(byts / (bw * EFFICIENCY)))
                row.append(f"{name.split(' ')[0]} K={k} ({byts / k / 1e9:.2f} GB/s each)")
            print("    " + "; ".join(row))
    markdown(rates, chunk, C)


def markdown(rates, chunk, C):
    """docs/cluster.md's table: one row per model and rank count. K is what the
    measured writer needs; the link columns are the writers each link alone would
    need (a writer whose storage keeps up with its link)."""
    links = LINKS[:3]
    print("\n| model | ranks | maps/s | GB/s into the writers | K | GB/s into each writer | "
          + " | ".join(f"K for {n.split(' (')[0]} alone" for n, _ in links) + " |")
    print("|---" * (6 + len(links)) + "|")
    for m, v in rates.items():
        r1 = med(v)
        s = chunk.get(m, 519000)
        for R in RANKS:
            maps = R * r1
            byts = maps * s
            kn = [math.ceil(byts / (bw * EFFICIENCY)) for _, bw in links]
            k = max([math.ceil(maps / C)] + kn)
            print(f"| {m} | {R} | {maps:,.0f} | {byts / 1e9:.2f} | **{k}** | {byts / k / 1e9:.2f} | "
                  + " | ".join(str(x) for x in kn) + " |")


if __name__ == "__main__":
    main()
