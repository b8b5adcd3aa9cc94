"""Turns scripts/bench.sh's raw records into the benchmark report.

    bench_report.py report RECORDS.jsonl OUT.json OUT.txt
    bench_report.py check WL OUTPUT.h5 TORCH_MAPS.npy NIMAGES   (prints one record)
    bench_report.py writer TEST_OUTPUT_BENCH.log                (prints one record)
    bench_report.py errors WL WORKDIR            (prints one record per comparison)

RECORDS.jsonl holds one JSON object per measurement (kind = meta, salpipe, torch,
counts, sgemm, core, mem, writer, check, error64, error). The report takes medians
over repetitions, computes maps/s, ratios, roofline fractions, memory per rank and the
writer's capacity, puts each configuration's float32 error against float64 (error64)
next to its speed, checks them against issues 6, 11, 12 and 13's targets and writes
both files. W4 (SmoothGrad, issue 12) has its own records: torch results of mode sg_batched
and sg_loop (bench_smoothgrad.py) and a check record from bench_smoothgrad.py check.
docs/performance.md explains each figure.
"""
import json
import re
import statistics
import sys

GIB = 1 << 30
TARGETS = {"vs_dnnbrain": 30.0, "vs_batched": 2.5, "sgemm_fraction": 0.70, "scaling": 1.8,
           "w3_vs_batched": 1.0, "w4_vs_batched": 1.5,
           # issue 13, all on -n 2 threads=1, compression 4, default convolution
           "i13_w2_vs_batched": 2.0, "i13_w1_vs_batched": 1.5, "i13_w2_effective": 1.0,
           "i13_w2_scaling": 1.85}
WORKLOADS = {"W1": ("AlexNet", "fc3"), "W2": ("VGG16", "fc3"), "W3": ("ResNet-50", "fc")}


# ---- check and writer: small records bench.sh appends -------------------------------


def check(wl, out, npy, nimages):
    import h5py
    import numpy as np
    rec = {"kind": "check", "wl": wl}
    with h5py.File(out, "r") as f:
        st, sal = f["status"][:], f["saliency"]
        rec["status_all_done"] = bool(len(st) == nimages and (st == 1).all())
        rec["shape"] = list(sal.shape)
        rec["nan_maps"] = int(sum(np.isnan(sal[i]).any() for i in range(sal.shape[0])))
        ours = sal[0]
    ref = np.load(npy)
    rel = [float(np.abs(ours[t, m] - ref[t, m]).max() / np.abs(ref[t, m]).max())
           for t in range(ref.shape[0]) for m in range(ref.shape[1])]
    rec["max_rel_diff_vs_torch"] = max(rel)
    print(json.dumps(rec))


def writer(log):
    text = open(log).read()
    rec = {"kind": "writer", "compress": []}
    for m in re.finditer(r"compress level (\d+): ([\d.]+) MB/s, ([\d.]+) chunks/s, ratio ([\d.]+)",
                         text):
        rec["compress"].append({"level": int(m[1]), "mb_s": float(m[2]),
                                "chunks_s": float(m[3]), "ratio": float(m[4])})
    m = re.search(r"H5Dwrite_chunk: (\d+) chunks of (\d+) bytes in ([\d.]+) s: ([\d.]+) chunks/s, "
                  r"([\d.]+) MB/s", text)
    if not m:
        raise SystemExit(f"bench_report.py: no H5Dwrite_chunk line in {log}")
    rec.update(chunks=int(m[1]), chunk_bytes=int(m[2]), chunks_s=float(m[4]), mb_s=float(m[5]))
    rec["synthetic_map"] = "synthetic map" in text
    print(json.dumps(rec))


def rel_l2(a, b):
    """||a - b|| / ||b|| of each (unit, method) map of one image's maps (T, M, C, H, W),
    computed in float64."""
    import numpy as np
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise SystemExit(f"bench_report.py errors: maps of shape {a.shape} vs {b.shape}")
    return [float(np.linalg.norm(a[t, m] - b[t, m]) / np.linalg.norm(b[t, m]))
            for t in range(b.shape[0]) for m in range(b.shape[1])]


def errors(wl, work):
    """One error64 record per float32 source of image 0's maps in WORKDIR (bench.sh's
    scratch): salpipe's outputs out/WL-n*-t*-BIND-cC-CONV.h5 against out/WL-f64.h5,
    PyTorch's dumps WL-torch-STRATEGY.npy against WL-torch-f64.npy, and the two
    float64 references against each other."""
    import glob
    import os
    import h5py
    import numpy as np

    def emit(rec, rels):
        rec.update(kind="error64", wl=wl, rel_l2=rels, rel_l2_max=max(rels))
        print(json.dumps(rec))

    with h5py.File(f"{work}/out/{wl}-f64.h5", "r") as f:
        sal64 = f["saliency"][0]
    torch64 = np.load(f"{work}/{wl}-torch-f64.npy")
    emit({"source": "references"}, rel_l2(sal64, torch64))
    for path in sorted(glob.glob(f"{work}/out/{wl}-n*.h5")):
        m = re.fullmatch(rf"{wl}-n(\d+)-t(\d+)-(\w+)-c(\d+)-(\w+)\.h5", os.path.basename(path))
        if not m:
            continue
        with h5py.File(path, "r") as f:
            ours = f["saliency"][0]
        emit({"source": "salpipe", "ranks": int(m[1]), "threads": int(m[2]), "bind": m[3],
              "compression": int(m[4]), "convolution": m[5]}, rel_l2(ours, sal64))
    for path in sorted(glob.glob(f"{work}/{wl}-torch-*.npy")):
        strategy = os.path.basename(path)[len(f"{wl}-torch-"):-4]
        if strategy != "f64":
            emit({"source": "torch", "strategy": strategy}, rel_l2(np.load(path), torch64))


# ---- report ------------------------------------------------------------------------


def med(xs):
    return statistics.median(xs) if xs else None


def cfg_name(r):
    conv = r.get("convolution", "fast")
    return f"-n {r['ranks']} threads={r['threads']}" + ("" if conv == "fast" else " " + conv)


def is_default(e):
    """salpipe's defaults: compression 4 (any nonzero) and the fast convolutions."""
    return e["compression"] != 0 and e.get("convolution", "fast") == "fast"


def row(rows, ranks, threads, comp, conv="fast"):
    """The salpipe table's entry of one configuration, or None."""
    return next((e for e in rows if (e["ranks"], e["threads"], e["compression"],
                                     e.get("convolution", "fast")) ==
                 (ranks, threads, comp, conv)), None)


def merged(recs, kind, wl, key):
    """Records of one kind and workload merged by key(record): bench.sh records every
    repetition separately (round robin), the report takes medians over them."""
    out = {}
    for r in recs:
        if r["kind"] != kind or r["wl"] != wl:
            continue
        k = key(r)
        if k in out:
            for f in ("times", "reported_maps_per_s"):
                if f in r:
                    out[k][f] = out[k][f] + r[f]
        else:
            out[k] = json.loads(json.dumps(r))
    return out


def salpipe_table(recs, wl):
    """One entry per (ranks, threads, compression, convolution): the main measurement,
    or in --quick mode the faster binding probe."""
    rows = {}
    runs = merged(recs, "salpipe", wl, lambda r: (r["role"], r["ranks"], r["threads"],
                                                   r["bind"], r["compression"],
                                                   r.get("convolution", "fast")))
    for r in runs.values():
        r.setdefault("convolution", "fast")  # records from before issue 13
        key = (r["ranks"], r["threads"], r["compression"], r["convolution"])
        e = dict(r, median_s=med(r["times"]), maps_per_s=r["maps"] / med(r["times"]),
                 reported=med([x for x in r["reported_maps_per_s"] if x is not None]))
        if e["reported"]:
            e["startup_s"] = e["median_s"] - r["maps"] / e["reported"]
        old = rows.get(key)
        if (old is None or (old["role"] == "probe" and r["role"] == "main")
                or (old["role"] == r["role"] == "probe" and e["maps_per_s"] > old["maps_per_s"])):
            rows[key] = e
    return [rows[k] for k in sorted(rows, key=lambda k: (k[3] != "fast", -k[2],
                                                          -k[0] * 10 - k[1]))]


def probes(recs, wl):
    return [dict(ranks=r["ranks"], threads=r["threads"], bind=r["bind"],
                 maps_per_s=r["maps"] / med(r["times"]))
            for r in recs if r["kind"] == "salpipe" and r["wl"] == wl and r["role"] == "probe"]


def torch_table(recs, wl):
    torch = {}
    for r in recs:
        if r["kind"] != "torch" or r["wl"] != wl:
            continue
        t = r["result"]
        k = "dnnbrain" if t["mode"] == "dnnbrain" else "batched_" + t["strategy"]
        if k in torch:
            torch[k]["times"] += t["times"]
        else:
            torch[k] = dict(t)
    for t in torch.values():
        t["median_s"] = med(t["times"])
        t["maps_per_s"] = t["maps"] / t["median_s"]
    return torch


def attach_errors(recs, wl, w):
    """Each salpipe row's and each batched PyTorch strategy's largest relative L2 error
    of image 0's maps against float64 (error64 records), as e["err64"]; the float64
    references' distance from each other as w["err64_references"]."""
    errs = [r for r in recs if r["kind"] == "error64" and r["wl"] == wl]
    ref = next((r for r in errs if r["source"] == "references"), None)
    w["err64_references"] = ref["rel_l2_max"] if ref else None
    for e in w["salpipe"]:
        same = [r for r in errs if r["source"] == "salpipe" and
                (r["ranks"], r["threads"], r["compression"], r["convolution"]) ==
                (e["ranks"], e["threads"], e["compression"], e["convolution"])]
        mine = [r for r in same if r["bind"] == e["bind"]] or same
        e["err64"] = mine[0]["rel_l2_max"] if mine else None
        e["err64_maps"] = mine[0]["rel_l2"] if mine else None
    for k, t in w["torch"].items():
        r = next((r for r in errs if r["source"] == "torch" and k == "batched_" + r["strategy"]),
                 None)
        t["err64"] = r["rel_l2_max"] if r else None
        t["err64_maps"] = r["rel_l2"] if r else None


def w4_workload(recs):
    """W4: salpipe's SmoothGrad rows, PyTorch's batched SmoothGrad and its loop, ratios."""
    rows = salpipe_table(recs, "W4")
    if not rows:
        return None
    torch = {}
    for r in recs:
        if r["kind"] == "torch" and r["wl"] == "W4":
            t = r["result"]
            if t["mode"] in torch:
                torch[t["mode"]]["times"] += t["times"]
            else:
                torch[t["mode"]] = dict(t)
    for k, t in torch.items():
        t["median_s"] = med(t["times"])
        t["maps_per_s"] = t["maps"] / t["median_s"]
        t["label"] = (f"PyTorch SmoothGrad\nbatched {t['batch']}" if k == "sg_batched"
                      else "PyTorch SmoothGrad\nloop (Captum-style)")
    b, lp = torch.get("sg_batched"), torch.get("sg_loop")
    for e in rows:
        e["config"] = cfg_name(e)
        e["vs_batched"] = e["maps_per_s"] / b["maps_per_s"] if b else None
        e["vs_loop"] = e["maps_per_s"] / lp["maps_per_s"] if lp else None
    default = [e for e in rows if is_default(e)]
    fastest = [e for e in rows if e["compression"] != 0 and e["convolution"] == "fastest"]
    return {"salpipe": rows, "binding_probes": [], "torch": torch,
            "best": max(default or rows, key=lambda e: e["maps_per_s"]),
            "best_fastest": max(fastest, key=lambda e: e["maps_per_s"]) if fastest else None,
            "checks": [r for r in recs if r["kind"] == "check" and r["wl"] == "W4"]}


def w4_text(w):
    s0, L = w["salpipe"][0], [""]
    L.append(f"== W4: seeded random AlexNet, {s0['images']} images, fc3 unit 540, SmoothGrad of "
             f"the guided map, 50 copies per image = {s0['maps']} maps")
    L.append(f"{'configuration':62s} {'wall s':>7s} {'maps/s':>7s} {'/batch':>7s} {'/loop':>7s}")
    for e in w["salpipe"]:
        name = (f"salpipe {e['config']} batch {e['batch']} --bind-to {e['bind']} "
                f"compr {e['compression']}")
        L.append(f"{name:62s} {e['median_s']:7.2f} {e['maps_per_s']:7.3f} "
                 f"{opt(e['vs_batched'], '6.2f', 'x')} {opt(e['vs_loop'], '6.2f', 'x')}")
    for k, t in sorted(w["torch"].items()):
        name = ("PyTorch SmoothGrad, 50 copies as one batch" if k == "sg_batched"
                else "PyTorch SmoothGrad, Captum-style loop (batch 1)")
        L.append(f"{name:60s} {t['median_s']:7.2f} {t['maps_per_s']:7.3f}   "
                 f"[{t['maps']} maps, {t['images']} images, torch {t['threads']} threads, "
                 f"{len(t['times'])} reps]")
    for b, what in ((w["best"], "best salpipe"),
                    (w.get("best_fastest"), 'best salpipe with convolution = "fastest"')):
        if b:
            L.append(f"{what}: {b['config']}: {b['maps_per_s']:.3f} maps/s = "
                     f"{opt(b['vs_batched'], '.2f', 'x')} the batched PyTorch, "
                     f"{opt(b['vs_loop'], '.2f', 'x')} the loop")
    for r in w["checks"]:
        d = r["max_rel_diff_vs_torch"]
        L.append(f"check: all images done {r['status_all_done']}, image 0 vs PyTorch with "
                 f"salpipe's noise ({r['samples']} copies): max |diff| / max |map| = {d:.1e} "
                 + ("(same maps: float32 near-ties of the noisy copies)" if d < 1e-2
                    else "(SUSPICIOUS: not the same maps)"))
    return L


def report(records, out_json, out_txt):
    recs = []
    for n, line in enumerate(open(records), 1):
        try:
            recs.append(json.loads(line)) if line.strip() else None
        except json.JSONDecodeError as e:  # a tool printed something unexpected
            recs.append({"kind": "error", "section": f"{records}:{n}",
                         "message": f"unreadable record ({e}): {line.strip()[:200]}"})
    meta = next((r for r in recs if r["kind"] == "meta"), {})
    meta.update(next((r for r in recs if r["kind"] == "meta_end"), {}))
    errors = [r for r in recs if r["kind"] == "error"]
    sgemm = {}
    for r in recs:
        if r["kind"] == "sgemm" and r["gflops"]:
            sgemm[(r["procs"], r["threads"])] = sum(r["gflops"])
    writer_rec = next((r for r in recs if r["kind"] == "writer"), None)
    kernels = [r.get("kernels") for r in recs if r["kind"] == "sgemm" and r.get("kernels")]
    res = {"meta": meta, "sgemm_gflops": {f"{p}x{t}": v for (p, t), v in sgemm.items()},
           "sgemm_kernels": kernels[0] if kernels else None,
           "workloads": {}, "errors": errors}

    for wl in WORKLOADS:
        w = {"salpipe": salpipe_table(recs, wl), "binding_probes": probes(recs, wl)}
        if not w["salpipe"]:
            continue
        torch = torch_table(recs, wl)
        w["torch"] = torch
        batched = [v for k, v in torch.items() if k.startswith("batched_")]
        best_b = max(batched, key=lambda t: t["maps_per_s"]) if batched else None
        w["torch_best_batched"] = best_b["strategy"] if best_b else None
        dnn = torch.get("dnnbrain")
        counts = next((r for r in recs if r["kind"] == "counts" and r["wl"] == wl), None)
        flops = None
        if counts:
            flops = counts["flops"] * w["salpipe"][0]["images"] / counts["batch"]
            w["counts"] = dict(counts, flops_workload=flops)
        for e in w["salpipe"]:
            e["config"] = cfg_name(e)
            e["vs_dnnbrain"] = e["maps_per_s"] / dnn["maps_per_s"] if dnn else None
            e["vs_batched"] = e["maps_per_s"] / best_b["maps_per_s"] if best_b else None
            peak = sgemm.get((e["ranks"], 1) if e["ranks"] > 1 else (1, e["threads"]))
            if flops and peak:
                e["gflops"] = flops / e["median_s"] * 1e-9
                e["sgemm_gflops"] = peak
                e["sgemm_fraction"] = e["gflops"] / peak
        default = [e for e in w["salpipe"] if is_default(e)]
        w["best"] = max(default, key=lambda e: e["maps_per_s"]) if default else None
        w["best_any"] = max(w["salpipe"], key=lambda e: e["maps_per_s"])
        attach_errors(recs, wl, w)
        scal, steady = {}, {}
        for comp in sorted({e["compression"] for e in w["salpipe"]}, reverse=True):
            n2, n1 = row(w["salpipe"], 2, 1, comp), row(w["salpipe"], 1, 1, comp)
            if n1 and n2:
                scal[str(comp)] = n2["maps_per_s"] / n1["maps_per_s"]
                if n1.get("reported") and n2.get("reported"):
                    steady[str(comp)] = n2["reported"] / n1["reported"]
        w["scaling_n2_over_n1t1"] = scal
        w["scaling_steady"] = steady
        n2, n1 = row(w["salpipe"], 2, 1, 4, "direct"), row(w["salpipe"], 1, 1, 4, "direct")
        w["scaling_direct"] = n2["maps_per_s"] / n1["maps_per_s"] if n1 and n2 else None
        core = []
        for r in recs:
            if r["kind"] == "core" and r["wl"] == wl and counts:
                gf = counts["flops"] * r["batch"] / counts["batch"] / (r["median_ms"] * 1e-3) * 1e-9
                peak = sgemm.get((1, r["threads"]))
                core.append(dict(r, gflops=gf, sgemm_gflops=peak,
                                 sgemm_fraction=gf / peak if peak else None,
                                 maps_per_s=r["batch"] * 4 / (r["median_ms"] * 1e-3)))
        w["core_only"] = core
        w["checks"] = [r for r in recs if r["kind"] == "check" and r["wl"] == wl]
        res["workloads"][wl] = w
    w4 = w4_workload(recs)
    if w4:
        res["workloads"]["W4"] = w4

    mem = {}
    for r in recs:
        if r["kind"] == "mem" and r.get("wl", "W1") == "W1":
            mem[str(r["ranks"])] = sorted(r["per_rank"], key=lambda x: x["rank"])
    res["memory"] = mem
    r152 = next((r for r in recs if r["kind"] == "mem" and r.get("wl") == "R152"), None)
    if r152:
        c = next((r for r in recs if r["kind"] == "counts" and r["wl"] == "R152"), {})
        res["memory_r152"] = dict(r152, per_rank=sorted(r152["per_rank"],
                                                        key=lambda x: x["rank"]),
                                  params_bytes=c.get("params_bytes"),
                                  workspace_bytes=c.get("workspace_bytes"))
    w1 = res["workloads"].get("W1", {})
    params = w1.get("counts", {}).get("params_bytes")
    res["memory_weights_bytes"] = params
    res["memory_workspace_bytes"] = w1.get("counts", {}).get("workspace_bytes")

    if writer_rec:
        wr = dict(writer_rec)
        n2, n1 = row(w1.get("salpipe", []), 2, 1, 4), row(w1.get("salpipe", []), 1, 1, 4)
        per_rank = n2["maps_per_s"] / 2 if n2 else (n1["maps_per_s"] if n1 else None)
        if per_rank:
            wr["per_rank_maps_per_s"] = per_rank
            wr["ranks_fed"] = wr["chunks_s"] / per_rank
        res["writer"] = wr

    res["targets"] = targets(res)
    json.dump(res, open(out_json, "w"), indent=1)
    open(out_txt, "w").write(text_report(res))


# Each target and the workload that measures it.
TARGET_NAMES = {"W1 salpipe / DNNBrain loop": "W1", "W1 salpipe / batched PyTorch": "W1",
                "W1 fraction of sgemm rate (end to end)": "W1",
                "-n 2 / -n 1 threads=1 (W1)": "W1", "W1 peak memory per rank (batch 8)": "W1",
                "weights shared between ranks of a node": "W1",
                "writer capacity measured": "W1",
                "W3 salpipe / batched PyTorch (issue 11)": "W3",
                "W4 SmoothGrad salpipe / batched PyTorch (issue 12)": "W4",
                "ResNet-152 peak memory per rank (batch 8, issue 11)": "R152",
                "W2 -n 2 / best batched PyTorch (issue 13)": "W2",
                "W1 -n 2 / best batched PyTorch (issue 13)": "W1",
                "W2 -n 2 effective rate / sgemm (issue 13)": "W2",
                "W2 -n 2 / -n 1 threads=1 (issue 13)": "W2"}


def targets(res):
    """Issues 6, 11, 12 and 13's targets, each met, not met, or not measured (met
    None); the targets of workloads a run left out (--only) are not listed."""
    t = measured_targets(res)
    seen = {x["target"] for x in t}
    ran = set(res["meta"].get("workloads", "W1 W2 W3 R152").split())
    return t + [{"target": n, "value": None, "goal": "", "met": None, "note": "not measured"}
                for n, wl in TARGET_NAMES.items() if n not in seen and wl in ran]


def measured_targets(res):
    w1, t = res["workloads"].get("W1"), []

    def add(name, value, goal, met, note=""):
        t.append({"target": name, "value": value, "goal": goal, "met": met, "note": note})

    b = w1.get("best") if w1 else None
    if not b:
        w1 = {"salpipe": [], "scaling_n2_over_n1t1": {}, "core_only": []}
        b = {}

    if b.get("vs_dnnbrain"):
        add("W1 salpipe / DNNBrain loop", b["vs_dnnbrain"], ">= 30x",
            b["vs_dnnbrain"] >= TARGETS["vs_dnnbrain"], b["config"])
    if b.get("vs_batched"):
        add("W1 salpipe / batched PyTorch", b["vs_batched"], ">= 2.5x",
            b["vs_batched"] >= TARGETS["vs_batched"], b["config"])
    if b.get("sgemm_fraction"):
        fr = [e for e in w1["salpipe"] if is_default(e) and e.get("sgemm_fraction")]
        top = max(fr, key=lambda e: e["sgemm_fraction"])
        core = max((c["sgemm_fraction"] or 0 for c in w1["core_only"]), default=0)
        add("W1 fraction of sgemm rate (end to end)", b["sgemm_fraction"], ">= 70%",
            b["sgemm_fraction"] >= TARGETS["sgemm_fraction"],
            f"{b['config']}; highest: {100 * top['sgemm_fraction']:.0f}% ({top['config']}), "
            f"core alone {100 * core:.0f}%")
    s = w1["scaling_n2_over_n1t1"].get("4")
    if s:
        st = w1.get("scaling_steady", {}).get("4")
        add("-n 2 / -n 1 threads=1 (W1)", s, ">= 1.8x", s >= TARGETS["scaling"],
            f"steady rates without start-up: {st:.2f}x" if st else "")
    params, mem = res.get("memory_weights_bytes"), res.get("memory", {})
    if params and mem:
        worst = max(r["vmhwm_kb"] * 1024 for rs in mem.values() for r in rs)
        add("W1 peak memory per rank (batch 8)", worst, "<= weights + 1 GiB",
            worst <= params + GIB, f"weights {params / 1e6:.0f} MB")
        two = mem.get("2")
        if two:
            shared = min(r["peak_shmem_kb"] * 1024 for r in two) >= 0.9 * params
            add("weights shared between ranks of a node", shared, "one copy per node", shared,
                "MPI-3 window seen in RssShmem of every rank" if shared
                else "each rank holds its own copy")
    wr = res.get("writer")
    if wr:
        add("writer capacity measured", wr["chunks_s"], "chunks/s stated", True,
            f"one writer feeds ~{wr['ranks_fed']:.0f} AlexNet ranks" if wr.get("ranks_fed")
            else "ranks per writer unknown: no W1 salpipe rate")
    b3 = (res["workloads"].get("W3") or {}).get("best")
    if b3 and b3.get("vs_batched"):
        add("W3 salpipe / batched PyTorch (issue 11)", b3["vs_batched"], ">= 1x",
            b3["vs_batched"] >= TARGETS["w3_vs_batched"], b3["config"])
    b4 = (res["workloads"].get("W4") or {}).get("best")
    if b4 and b4.get("vs_batched"):
        add("W4 SmoothGrad salpipe / batched PyTorch (issue 12)", b4["vs_batched"], ">= 1.5x",
            b4["vs_batched"] >= TARGETS["w4_vs_batched"], b4["config"])
    b4f = (res["workloads"].get("W4") or {}).get("best_fastest")
    if b4f and b4f.get("vs_batched"):
        add('W4 SmoothGrad salpipe / batched PyTorch, convolution = "fastest" (issue 12)',
            b4f["vs_batched"], ">= 1.5x", b4f["vs_batched"] >= TARGETS["w4_vs_batched"],
            b4f["config"])
    m152 = res.get("memory_r152")
    if m152 and m152.get("params_bytes"):
        worst = max(r["vmhwm_kb"] * 1024 for r in m152["per_rank"])
        add("ResNet-152 peak memory per rank (batch 8, issue 11)", worst,
            "<= weights + 2 GiB", worst <= m152["params_bytes"] + 2 * GIB,
            f"weights {m152['params_bytes'] / 1e6:.0f} MB")
    issue13_targets(res, add)
    return t


def issue13_targets(res, add):
    """Issue 13's targets: -n 2 threads=1 at compression 4 with the default (fast)
    convolutions, end to end, against the best batched PyTorch strategy of the run."""
    wls = res["workloads"]
    for wl, key, goal in (("W2", "i13_w2_vs_batched", 2.0), ("W1", "i13_w1_vs_batched", 1.5)):
        w = wls.get(wl) or {}
        for conv, what in (("fast", ""), ("fastest", ', convolution = "fastest"')):
            e = row(w.get("salpipe", []), 2, 1, 4, conv)
            if e and e.get("vs_batched"):
                b = w["torch"]["batched_" + w["torch_best_batched"]]
                add(f"{wl} -n 2 / best batched PyTorch{what} (issue 13)", e["vs_batched"],
                    f">= {goal:.1f}x", e["vs_batched"] >= TARGETS[key],
                    f"{fmt_rate(e['maps_per_s'])} vs {fmt_rate(b['maps_per_s'])} maps/s "
                    f"(PyTorch {w['torch_best_batched']})")
    w2 = wls.get("W2") or {}
    e = row(w2.get("salpipe", []), 2, 1, 4)
    if e and e.get("sgemm_fraction"):
        add("W2 -n 2 effective rate / sgemm (issue 13)", e["sgemm_fraction"], ">= 100%",
            e["sgemm_fraction"] >= TARGETS["i13_w2_effective"],
            f"{e['gflops']:.1f} GFLOP/s of direct-convolution operations vs sgemm "
            f"{e['sgemm_gflops']:.1f} (2 procs x 1 thread)")
    s = (w2.get("scaling_n2_over_n1t1") or {}).get("4")
    if s:
        st = w2.get("scaling_steady", {}).get("4")
        add("W2 -n 2 / -n 1 threads=1 (issue 13)", s, ">= 1.85x",
            s >= TARGETS["i13_w2_scaling"],
            f"steady rates without start-up: {st:.2f}x" if st else "")


def opt(x, spec, suffix=""):
    """x formatted with spec and suffix, or '-' (same width) when it was not measured."""
    if x is None:
        width = re.match(r"\d*", spec)[0]
        return f"{'-':>{int(width) + len(suffix)}s}" if width else "-"
    return f"{x:{spec}}{suffix}"


def fmt_rate(x):
    return "-" if x is None else (f"{x:.3g}" if x < 10 else f"{x:.1f}")


def text_report(res):
    m, L = res["meta"], []
    quiet = all(float(x) < 0.5 for x in m.get("load_start", "9").split()[:1])
    L.append(f"salpipe benchmark, {m.get('date', '?')} on {m.get('host', '?')}: {m.get('cpu', '?')}, "
             f"{m.get('nproc', '?')} cores, {m.get('mem_gb', '?')} GB")
    L.append(f"commit {m.get('commit', '?')}"
             + (f" + {m['dirty_files']} modified files" if m.get("dirty_files") else "")
             + f"; {'QUICK smoke run' if m.get('quick') else 'full run'}, "
               f"median of {m.get('reps', '?')} repetition(s); {m.get('salpipe', '')}, "
               f"{m.get('mpirun', '')}")
    L.append(f"load average at start {m.get('load_start', '?')}, at end {m.get('load_end', '?')}"
             + ("" if quiet else "  <- machine NOT quiet: trial numbers only"))
    sg = res["sgemm_gflops"]
    kern = res.get("sgemm_kernels")
    L.append("OpenBLAS sgemm 2048^3" + (f" ({kern} kernels, as salpipe runs them)" if kern else "")
             + ": " + ", ".join(
        f"{k.replace('1x1', '1 thread').replace('1x2', '2 threads').replace('2x1', '2 procs x 1 thread')}"
        f" {v:.1f} GFLOP/s" for k, v in sorted(sg.items())))
    for wl, w in res["workloads"].items():
        if wl == "W4":
            continue  # its own section, below
        s0 = w["salpipe"][0]
        arch, layer = WORKLOADS[wl]
        L.append("")
        L.append(f"== {wl}: seeded random {arch}, {s0['images']} images, {layer} units 540 and "
                 f"23, vanilla + guided = {s0['maps']} maps")
        L.append(f"{'configuration':62s} {'wall s':>7s} {'maps/s':>7s} {'/DNNBr':>7s} "
                 f"{'/batch':>7s} {'GFLOP/s':>8s} {'%sgemm':>7s} {'err f64':>8s}")
        for e in w["salpipe"]:
            name = (f"salpipe {e['config']} batch {e['batch']} --bind-to {e['bind']} "
                    f"compr {e['compression']}")
            L.append(f"{name:60s} {e['median_s']:7.2f} {fmt_rate(e['maps_per_s']):>7s} "
                     f"{opt(e['vs_dnnbrain'], '6.1f', 'x')} {opt(e['vs_batched'], '6.2f', 'x')} "
                     f"{opt(e.get('gflops'), '8.1f')} "
                     f"{opt(e.get('sgemm_fraction') and 100 * e['sgemm_fraction'], '6.0f', '%')} "
                     f"{opt(e.get('err64'), '8.1e')}")
        for k, t in sorted(w.get("torch", {}).items()):
            name = ("PyTorch DNNBrain loop (1 image/unit/method per pass)" if k == "dnnbrain"
                    else f"PyTorch batched {t['batch']}, {t['strategy']}"
                    + (" (best batched)" if t["strategy"] == w["torch_best_batched"] else ""))
            L.append(f"{name:60s} {t['median_s']:7.2f} {fmt_rate(t['maps_per_s']):>7s} "
                     f"{'':34s}{opt(t.get('err64'), '8.1e')}   "
                     f"[{t['maps']} maps, {t['images']} images, torch {t['threads']} threads, "
                     f"{len(t['times'])} reps]")
        if w["torch_best_batched"]:
            tb = w["torch"]["batched_" + w["torch_best_batched"]]
            L.append(f"best batched PyTorch: {tb['strategy']}, {fmt_rate(tb['maps_per_s'])} "
                     "maps/s (every /batch ratio divides by it)")
        if any(e.get("err64") is not None for e in w["salpipe"]):
            refd = w.get("err64_references")
            L.append("err f64: image 0's float32 maps against float64 maps of that image "
                     "(salpipe's against salpipe precision = \"float64\", PyTorch's against "
                     "PyTorch float64), relative L2 ||a - b|| / ||b||, the largest of its "
                     f"{len(w['salpipe'][0].get('err64_maps') or [])} maps; the two float64 "
                     f"references differ by {opt(refd, '.1e')}"
                     + (" (SUSPICIOUS: not the same maps)" if refd and refd > 1e-3 else "")
                     + ("; SUSPICIOUS (> 0.2): " + ", ".join(
                         [e["config"] for e in w["salpipe"] if (e.get("err64") or 0) > 0.2]
                         + [k for k, t in w["torch"].items() if (t.get("err64") or 0) > 0.2])
                        if any((x.get("err64") or 0) > 0.2
                               for x in w["salpipe"] + list(w["torch"].values())) else ""))
        b = w.get("best")
        if b:
            L.append(f"best salpipe (compression {b['compression']}): {b['config']} "
                     f"--bind-to {b['bind']}: {fmt_rate(b['maps_per_s'])} maps/s = "
                     f"{opt(b['vs_dnnbrain'], '.1f', 'x')} DNNBrain's loop, "
                     f"{opt(b['vs_batched'], '.2f', 'x')} batched PyTorch")
        ba = w["best_any"]
        if ba is not b:
            L.append(f"best salpipe overall: {ba['config']} compression {ba['compression']}: "
                     f"{fmt_rate(ba['maps_per_s'])} maps/s = {opt(ba['vs_dnnbrain'], '.1f', 'x')} "
                     f"DNNBrain, {opt(ba['vs_batched'], '.2f', 'x')} batched PyTorch")
        L.append("salpipe's own rate (its progress line: from the plan to the last map, "
                 "so without start-up) and the rest of the wall time (MPI start, model load, "
                 "output file open/close):")
        L.append("  " + ", ".join(
            f"{e['config']} c{e['compression']} {fmt_rate(e['reported'])} maps/s +"
            f"{e['startup_s']:.1f} s" for e in w["salpipe"] if e.get("reported")))
        for comp, v in w["scaling_n2_over_n1t1"].items():
            st = w.get("scaling_steady", {}).get(comp)
            L.append(f"scaling: -n 2 threads=1 / -n 1 threads=1 = {v:.2f}x (compression {comp})"
                     + (f"; steady rates (progress lines, no start-up): {st:.2f}x" if st else ""))
        if w.get("scaling_direct"):
            L.append(f"scaling with direct convolutions: {w['scaling_direct']:.2f}x "
                     "(compression 4)")
        for n, t_ in ((2, 1), (1, 1)):
            f, d = row(w["salpipe"], n, t_, 4), row(w["salpipe"], n, t_, 4, "direct")
            if f and d:
                L.append(f"fast / direct convolutions, -n {n} threads={t_} compression 4: "
                         f"{f['maps_per_s'] / d['maps_per_s']:.2f}x the maps/s")
            ff = row(w["salpipe"], n, t_, 4, "fastest")
            if f and ff:
                L.append(f"fastest / fast convolutions, -n {n} threads={t_} compression 4: "
                         f"{ff['maps_per_s'] / f['maps_per_s']:.2f}x the maps/s")
        if w["binding_probes"]:
            L.append("binding probes (1 rep): " + ", ".join(
                f"-n {p['ranks']} threads={p['threads']} --bind-to {p['bind']} "
                f"{fmt_rate(p['maps_per_s'])}" for p in w["binding_probes"]))
        c = w.get("counts")
        if c:
            L.append(f"roofline: salpipe's kernels count {c['flops'] / 1e9:.2f} GFLOP per batch of "
                     f"{c['batch']}, {c['flops_workload'] / 1e9:.1f} GFLOP for {wl} (as direct "
                     "convolutions do them: for the fast rows an effective rate); end to end "
                     "(wall time of the whole command) vs sgemm at the same thread count:")
            for e in w["salpipe"]:
                if e.get("sgemm_fraction") is not None:
                    L.append(f"  {e['config']} compr {e['compression']}: {e['gflops']:.1f} GFLOP/s"
                             f" = {100 * e['sgemm_fraction']:.0f}% of {e['sgemm_gflops']:.1f}")
        for r in w["core_only"]:
            L.append(f"  core only (bench_core, batch {r['batch']}, {r['threads']} thread(s), no "
                     f"I/O): {r['median_ms']:.0f} ms/batch = {r['maps_per_s']:.1f} maps/s, "
                     f"{r['gflops']:.1f} GFLOP/s = "
                     + (f"{100 * r['sgemm_fraction']:.0f}% of sgemm {r['sgemm_gflops']:.1f}"
                        if r["sgemm_fraction"] else "? (no sgemm figure)"))
        for r in w["checks"]:
            d = r["max_rel_diff_vs_torch"]
            L.append(f"check: all images done {r['status_all_done']}, shape {r['shape']}, "
                     f"{r['nan_maps']} images with NaN; image 0 vs batched PyTorch: max |diff| / "
                     f"max |map| = {d:.1e} "
                     + ("(float32 near-ties, see docs/saliency.md)" if 1e-4 < d < 0.2 else
                        "(SUSPICIOUS: not the same maps)" if d >= 0.2 else "(same maps)"))
    if "W4" in res["workloads"]:
        L += w4_text(res["workloads"]["W4"])
    L.append("")
    params = res.get("memory_weights_bytes")
    if params:
        L.append(f"== memory (W1, batch 8): AlexNet weights {params / 1e6:.1f} MB in float32 "
                 f"(sal_model_params_bytes); engine workspace "
                 f"{(res['memory_workspace_bytes'] or 0) / 1e6:.1f} MB")
    for n, ranks in sorted(res["memory"].items()):
        for r in ranks:
            L.append(f"  -n {n} rank {r['rank']}: peak RSS (VmHWM) {r['vmhwm_kb'] / 1024:6.0f} MiB;"
                     f" peaks of its private {r['peak_anon_kb'] / 1024:5.0f} MiB, shared memory "
                     f"{r['peak_shmem_kb'] / 1024:5.0f} MiB")
        if ranks:
            node = sum(r["peak_anon_kb"] for r in ranks) + max(r["peak_shmem_kb"] for r in ranks)
            L.append(f"  -n {n} node total (private of every rank + one shared copy) "
                     f"~{node / 1024:.0f} MiB")
    m152 = res.get("memory_r152")
    if m152:
        L.append("")
        pb, wb = m152.get("params_bytes"), m152.get("workspace_bytes")
        L.append(f"== memory (ResNet-152, batch 8, {m152['images']} images, -n 2 threads=1, "
                 f"{m152['seconds']:.1f} s): weights "
                 + (f"{pb / 1e6:.1f} MB" if pb else "?") + ", engine workspace "
                 + (f"{wb / 1e6:.1f} MB" if wb else "?") + " (batch 8)")
        for r in m152["per_rank"]:
            L.append(f"  -n 2 rank {r['rank']}: peak RSS (VmHWM) {r['vmhwm_kb'] / 1024:6.0f} MiB;"
                     f" peaks of its private {r['peak_anon_kb'] / 1024:5.0f} MiB, shared memory "
                     f"{r['peak_shmem_kb'] / 1024:5.0f} MiB"
                     + (f"; weights + {(r['vmhwm_kb'] * 1024 - pb) / GIB:.2f} GiB" if pb else ""))
    wr = res.get("writer")
    if wr:
        L.append("")
        L.append("== rank 0's writing capacity (tests/test_output bench, "
                 + ("synthetic map)" if wr["synthetic_map"] else "a real W1 map)"))
        for c in wr["compress"]:
            L.append(f"  shuffle+deflate level {c['level']} on one core: {c['chunks_s']:.1f} "
                     f"maps/s, {c['mb_s']:.1f} MB/s in, ratio {c['ratio']:.3f}")
        L.append(f"  H5Dwrite_chunk of compressed chunks ({wr['chunk_bytes']} bytes) with flushes: "
                 f"{wr['chunks_s']:.0f} chunks/s, {wr['mb_s']:.0f} MB/s")
        if wr.get("ranks_fed"):
            L.append(f"  one AlexNet worker rank makes {wr['per_rank_maps_per_s']:.2f} maps/s "
                     f"(W1 -n 2 threads=1 compression 4, per rank): one writer can feed "
                     f"~{wr['ranks_fed']:.0f} worker ranks")
    L.append("")
    L.append("== targets (issue 6: W1, default compression; issue 11: W3, ResNet-152; "
             "issue 12: W4; issue 13: W1 and W2 -n 2 threads=1, compression 4, default "
             "convolution)")
    for t in res["targets"]:
        v = t["value"]
        if t["met"] is None:
            L.append(f"  N/A     {t['target']}: not measured (see the failures below)")
            continue
        if isinstance(v, bool):
            vs = "yes" if v else "no"
        elif "memory" in t["target"]:
            vs = f"{v / 2**20:.0f} MiB"
        elif "fraction" in t["target"] or "effective" in t["target"]:
            vs = f"{100 * v:.0f}%"
        elif "writer" in t["target"]:
            vs = f"{v:.0f} chunks/s"
        else:
            vs = f"{v:.2f}x"
        L.append(f"  {'MET    ' if t['met'] else 'NOT MET'} {t['target']}: {vs} (goal {t['goal']})"
                 + (f" [{t['note']}]" if t["note"] else ""))
    if res["errors"]:
        L.append("")
        L.append("== measurements that FAILED")
        for e in res["errors"]:
            L.append(f"  {e['section']}: {e['message']}")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "check" and len(args) == 4:
        check(args[0], args[1], args[2], int(args[3]))
    elif cmd == "writer" and len(args) == 1:
        writer(args[0])
    elif cmd == "errors" and len(args) == 2:
        errors(*args)
    elif cmd == "report" and len(args) == 3:
        report(*args)
    else:
        sys.exit(__doc__)
