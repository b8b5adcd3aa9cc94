#!/usr/bin/env python3
"""[output] writers = K (issue 14; docs/output-format.md, "Part files"): ranks 0..K-1
each write a part file and OUT.h5 presents every per-image dataset as a virtual
dataset over them. The demo model over 36 images (symlinks to the 20 demo images, one
missing file so /error and /status -1 are exercised), its 10 class units, vanilla,
guided, gradcam and integrated_gradients (every per-image dataset of the layout).

    test_writers.py {same|kill|refuse} --salpipe ... --mpiexec ... --demo-model ...
                    --demo-images ... --work ...

same    writers = 2 under -n 3 against writers = 1 under -n 3: every dataset read
        through OUT.h5 bit-identical, the per-image ones virtual over the two parts;
        xarray (h5netcdf) opens it with named dimensions; --check lists the writers;
        h5repack -l CONTI turns the set into one plain file with the same data
kill    (96 images) SIGKILL of the whole -n 3 job mid-run, twice (once both parts
        show 6 more images done, then 2), resumed: bit-identical, and the resume keeps
        every part's done images
refuse  a part deleted, two parts swapped, a part of another job, another writers
        count on resume: refused naming the file (exit 2); writers = 0, writers >=
        ranks, --check under -n 2 with writers = 2: exit 2 with the config's line:col
"""
import os
import shutil
import subprocess
import sys
import time

import numpy as np

from common import (Job, check, fresh_dir, main_guard, parser, peek_status, require,
                    salpipe, same_bits, write_config)

PER_IMAGE = ("saliency", "activation", "status", "error", "gradcam",
             "integrated_gradients_gap")
LABELS = ("image", "target", "target_layer", "target_unit", "method", "channel", "y", "x")
NIMAGES = 36
KILL_IMAGES = 96  # the kill mode's: long enough for two kills mid-run


def images(args, w, n=NIMAGES):
    demo = sorted(f for f in os.listdir(args.demo_images) if f.endswith(".png"))
    img = os.path.join(w, "img")
    os.makedirs(img, exist_ok=True)
    paths = []
    for i in range(n):
        p = os.path.join(img, f"{i:04d}_{demo[i % len(demo)]}")
        if i != 13:  # image 13 is missing: a failed image in part 1 of 2
            os.symlink(os.path.join(args.demo_images, demo[i % len(demo)]), p)
        paths.append(p)
    return paths


def config(args, w, name, writers, imgs, batch=4, extra=None):
    out = os.path.join(w, name, "sal.h5")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    oe = {"writers": writers} if writers is not None else {}
    oe.update(extra or {})
    cfg = write_config(os.path.join(w, f"{name}.toml"), args.demo_model, {"files": imgs},
                       [("fc2", "1-10")], out,
                       ["vanilla", "guided", "gradcam", "integrated_gradients"],
                       run={"batch": batch}, output_extra=oe)
    with open(cfg, "a") as f:
        f.write('\n[saliency.gradcam]\nlayer = "conv3_relu"\n'
                '[saliency.integrated_gradients]\nsteps = 4\n')
    return cfg, out


def read_all(path):
    import h5py
    d = {}
    with h5py.File(path, "r") as f:
        for k in PER_IMAGE + LABELS:
            ds = f[k]
            d[k] = ds.asstr()[()] if ds.dtype.kind == "O" else ds[()]
            d[k + ".virtual"] = ds.is_virtual
        d["attrs"] = {k: f.attrs[k] for k in f.attrs}
    return d


def compare(ref, d, what):
    for k in PER_IMAGE + LABELS:
        if ref[k].dtype.kind == "O" or d[k].dtype.kind == "O":
            ok = list(ref[k]) == list(d[k])
            check(ok, f"{what}: /{k} identical", f"{len(d[k])} strings")
        else:
            ok, detail = same_bits(ref[k], d[k])
            check(ok, f"{what}: /{k} bit-identical", detail)


def reference(args, w, imgs, batch=4):
    cfg, out = config(args, w, "ref", None, imgs, batch=batch)
    r = salpipe(args, [cfg], 3)
    require(r.rc == 1, "writers = 1 under -n 3: exit 1 (image 13 is missing)", f"exit {r.rc}")
    d = read_all(out)
    require((d["status"] == 1).sum() == len(imgs) - 1 and d["status"][13] == -1,
            "reference: every image done but image 13, failed")
    return d


def run_same(args):
    w = fresh_dir(args.work)
    imgs = images(args, w)
    ref = reference(args, w, imgs)
    ref_out = os.path.join(w, "ref", "sal.h5")
    cfg, out = config(args, w, "w2", 2, imgs)
    r = salpipe(args, ["--check", cfg], None)
    check(r.rc == 0, "--check alone: exit 0", f"exit {r.rc}")
    check("writers   2: ranks 0..1 write" in r.out, "--check names the writers")
    check("part 1  rank 0: images 0..15 (16), batches 0..3" in r.out and
          "part 2  rank 1: images 16..35 (20), batches 4..8" in r.out,
          "--check lists each part's ranks and images")
    check("2 writers need at least 3 ranks" in r.out, "--check alone notes the ranks the run needs")
    r = salpipe(args, [cfg], 3)
    check(r.rc == 1, "writers = 2 under -n 3: exit 1 (image 13 missing)", f"exit {r.rc}")
    d = read_all(out)
    compare(ref, d, "writers = 2 vs writers = 1")
    check(all(d[k + ".virtual"] for k in PER_IMAGE), "every per-image dataset is virtual")
    check(not any(d[k + ".virtual"] for k in LABELS), "labels and coordinates are plain")
    parts = sorted(f for f in os.listdir(os.path.dirname(out)) if f.startswith("sal.part-"))
    check(parts == ["sal.part-1-of-2.h5", "sal.part-2-of-2.h5"], "two part files", f"{parts}")
    check(list(d["attrs"]["part_files"]) == parts and
          list(d["attrs"]["part_first_image"]) == [0, 16, 36] and d["attrs"]["writers"] == 2,
          "OUT.h5's attributes writers, part_files, part_first_image")
    same_attrs = {k for k in ref["attrs"] if k not in ("created", "config", "config_path")}
    check(all(np.array_equal(ref["attrs"][k], d["attrs"][k]) for k in same_attrs),
          "the other root attributes are a writers = 1 file's")
    import xarray as xr
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        check(ds.saliency.dims == ("image", "target", "method", "channel", "y", "x"),
              "xarray: /saliency's named dimensions", f"{ds.saliency.dims}")
        check(ds.gradcam.dims == ("image", "target", "y", "x") and
              ds.status.dims == ("image",), "xarray: /gradcam and /status dimensions")
        m = ds.saliency.sel({"image": imgs[30], "target": "fc2:3", "method": "guided"})
        check(np.array_equal(m.values, ref["saliency"][30, 2, 1]),
              "xarray: a map of part 2 selected by labels equals the writers = 1 map")
    flat = os.path.join(w, "flat.h5")
    cmd = ["h5repack"] + sum((["-l", f"{k}:CONTI"] for k in PER_IMAGE), []) + [out, flat]
    p = subprocess.run(cmd, capture_output=True, text=True)
    check(p.returncode == 0, "h5repack -l NAME:CONTI ... materialises the set", p.stderr)
    if p.returncode == 0:
        f = read_all(flat)
        check(not any(f[k + ".virtual"] for k in PER_IMAGE), "h5repack's copy has no VDS")
        compare(ref, f, "h5repack's plain copy vs writers = 1")
    # scripts/merge_parts.py: one compressed plain file, chunks copied as stored.
    merged = os.path.join(w, "merged.h5")
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                        "merge_parts.py")
    p = subprocess.run([sys.executable, tool, out, merged], capture_output=True, text=True)
    check(p.returncode == 0, "merge_parts.py merges the set", p.stderr)
    if p.returncode == 0:
        f = read_all(merged)
        check(not any(f[k + ".virtual"] for k in PER_IMAGE), "merge_parts' file has no VDS")
        compare(ref, f, "merge_parts' plain file vs writers = 1")
        check(not any(k in f["attrs"] for k in ("writers", "part_files", "part_first_image")),
              "merge_parts drops the attributes that name the parts")
        check(all(np.array_equal(ref["attrs"][k], f["attrs"][k]) for k in same_attrs),
              "merge_parts keeps the other root attributes")
        import h5py
        with h5py.File(merged, "r") as a, h5py.File(ref_out, "r") as b:
            check(a["saliency"].compression == b["saliency"].compression and
                  a["saliency"].chunks == b["saliency"].chunks,
                  "merge_parts keeps /saliency's chunks and compression",
                  f"{a['saliency'].chunks} {a['saliency'].compression}")
        with xr.open_dataset(merged, engine="h5netcdf") as ds:
            check(ds.saliency.dims == ("image", "target", "method", "channel", "y", "x"),
                  "xarray: merge_parts' file keeps the named dimensions")
    os.rename(os.path.join(os.path.dirname(out), "sal.part-2-of-2.h5"),
              os.path.join(w, "aside.h5"))
    p = subprocess.run([sys.executable, tool, out, os.path.join(w, "m2.h5")],
                       capture_output=True, text=True)
    check(p.returncode == 1 and "sal.part-2-of-2.h5" in p.stderr and
          not os.path.exists(os.path.join(w, "m2.h5")) and
          not os.path.exists(os.path.join(w, "m2.h5.merging")),
          "merge_parts refuses a set with a part missing, naming it, and writes nothing",
          f"exit {p.returncode}: {p.stderr.strip()}")
    os.rename(os.path.join(w, "aside.h5"),
              os.path.join(os.path.dirname(out), "sal.part-2-of-2.h5"))


def run_kill(args):
    w = fresh_dir(args.work)
    imgs = images(args, w, KILL_IMAGES)
    ref = reference(args, w, imgs, batch=2)
    cfg, out = config(args, w, "kill", 2, imgs, batch=2)
    parts = [out.replace(".h5", f".part-{k}-of-2.h5") for k in (1, 2)]
    scratch = os.path.join(w, "peek.h5")

    def done_now():
        sts = [peek_status(p, scratch) if os.path.exists(p) else None for p in parts]
        return None if any(st is None for st in sts) else sum(int((st == 1).sum()) for st in sts)

    done = 0
    for attempt, more in enumerate((6, 2)):
        # SIGKILL once both parts show `more` images done beyond the last kill's.
        job = Job(args, [cfg], 3, os.path.join(w, f"kill{attempt}"))
        try:
            while job.running():
                n = done_now()
                if n is not None and n >= done + more:
                    break
                time.sleep(0.01)
            t = job.elapsed()
            running = job.running()
            pids = job.kill9()
        finally:
            job.close()
        done = done_now() or 0
        print(f"    SIGKILL {attempt} at {t:.2f} s to {pids}: {done} images done in the parts")
        check(running, f"kill {attempt}: the job was still running when killed")
    check(done > 0, "the kills left done images for the resume to keep", f"{done} done")
    r = salpipe(args, [cfg], 3)
    check(r.rc == 1, "resume after two kills: exit 1 (image 13 missing)", f"exit {r.rc}")
    check(f"resuming: {done} of {KILL_IMAGES} images already done" in r.err,
          "the resume keeps every part's done images (rank 0 gathers each part's /status)")
    compare(ref, read_all(out), "killed twice and resumed vs writers = 1")


def run_refuse(args):
    w = fresh_dir(args.work)
    imgs = images(args, w)
    cfg, out = config(args, w, "r", 2, imgs)
    r = salpipe(args, [cfg], 3)
    require(r.rc == 1, "writers = 2 run: exit 1", f"exit {r.rc}")
    d = os.path.dirname(out)
    p1, p2 = (os.path.join(d, f"sal.part-{k}-of-2.h5") for k in (1, 2))
    keep = os.path.join(w, "keep.h5")
    shutil.copyfile(p2, keep)
    r = salpipe(args, [cfg], 3)
    check(r.rc == 1 and "resuming: 35 of 36 images already done" in r.err,
          "a finished job resumed: every part's done images kept", f"exit {r.rc}")

    os.remove(p2)
    r = salpipe(args, [cfg], 3)
    check(r.rc == 2 and f"{p2}: part 2 of 2 of {out} (images 16..35) is missing" in r.err,
          "a deleted part: exit 2, named", f"exit {r.rc}")
    shutil.copyfile(keep, p2)

    tmp = os.path.join(w, "swap.h5")
    os.rename(p1, tmp)
    os.rename(p2, p1)
    os.rename(tmp, p2)
    r = salpipe(args, [cfg], 3)
    check(r.rc == 2 and (f"{p1}: was made with another image list" in r.err or
                         f"{p2}: was made with another image list" in r.err),
          "swapped parts: exit 2, the part named", f"exit {r.rc}")
    os.rename(p1, tmp)
    os.rename(p2, p1)
    os.rename(tmp, p2)

    # Another job's part 2: the same images and writers, other targets.
    ocfg, oout = config(args, w, "other", 2, imgs)
    with open(ocfg) as f:
        text = f.read().replace('units = "1-10"', 'units = "1-9"')
    with open(ocfg, "w") as f:
        f.write(text)
    r = salpipe(args, [ocfg], 3)
    require(r.rc == 1, "another job: exit 1", f"exit {r.rc}")
    shutil.copyfile(oout.replace(".h5", ".part-2-of-2.h5"), p2)
    r = salpipe(args, [cfg], 3)
    check(r.rc == 2 and f"{p2}: was made with another target list" in r.err,
          "another job's part: exit 2, named", f"exit {r.rc}")
    shutil.copyfile(keep, p2)

    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(text.replace("writers = 2", "writers = 3"))
    r = salpipe(args, [cfg], 4)
    check(r.rc == 2 and f"{out}: was made with [output] writers = 2" in r.err,
          "a resume with writers = 3: exit 2, named", f"exit {r.rc}")
    with open(cfg, "w") as f:
        f.write(text)
    r = salpipe(args, [cfg], 3)
    check(r.rc == 1, "the restored set resumes: exit 1", f"exit {r.rc}")

    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("writers"))
    for k, ranks, check_only, why in ((0, 3, False, "expected an integer from 1"),
                                      (3, 3, False, "3 writers need at least 4 ranks"),
                                      (2, 2, True, "2 writers need at least 3 ranks"),
                                      (2, None, False, "2 writers need at least 3 ranks"),
                                      (10, 11, True, "10 writers need at least 10 batches")):
        bad = os.path.join(w, f"bad{k}_{ranks}.toml")
        with open(bad, "w") as f:
            f.write(text.replace("writers = 2", f"writers = {k}"))
        r = salpipe(args, (["--check"] if check_only else []) + [bad], ranks)
        where = f"{bad}:{line}:11: key 'output.writers'"
        check(r.rc == 2 and where in r.err and why in r.err,
              f"writers = {k} on {ranks or 1} rank(s){' --check' if check_only else ''}: "
              f"exit 2 at {line}:11, '{why}'", f"exit {r.rc}")


def main():
    p = parser(__doc__)
    p.add_argument("mode", choices=["same", "kill", "refuse"])
    p.add_argument("--demo-model", required=True)
    p.add_argument("--demo-images", required=True)
    args = p.parse_args()
    {"same": run_same, "kill": run_kill, "refuse": run_refuse}[args.mode](args)


if __name__ == "__main__":
    main_guard(main)
