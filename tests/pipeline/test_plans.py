#!/usr/bin/env python3
"""Plans that cannot fit (issue 10; docs/reliability.md, "Plans that cannot fit").

    test_plans.py limits    sizes past salpipe's limits: a units range of 4e9, a units
                            array of 2^20+1, more maps per image than 65536, a batch
                            whose buffers exceed this node's memory, a batch whose
                            results exceed an MPI message (2 ranks), a path longer than
                            4095 bytes in a list, a config over 16 MiB, a list that
                            never ends (/dev/zero). Each: exit 2
                            from --check and from a run, the message names the config
                            (or list) file, the key, the line and the limit; nothing is
                            written, and salpipe's peak memory stays small
    test_plans.py disk      an output larger than the free space of a 4 MiB tmpfs:
                            --check says DOES NOT FIT (exit 3) with the estimate and the
                            free space, a run refuses (exit 3, both numbers) and writes
                            nothing; a job that fits runs; a resume whose remaining work
                            fits runs even when the whole job would not fit any more.
                            Skipped (exit 77, with the reason) where mount is refused
    test_plans.py million   a list of 1,000,000 lines (10 demo images, the rest missing
                            files): --check and a 2-rank run work; the peak memory of
                            --check (the plan) and of each rank is printed and bounded
    (all take --salpipe, --model (AlexNet), --demo-model, --demo-images, --work)

Costs (2 quiet cores): limits ~30 s, disk ~15 s, million ~20 s (the list: 24 MB in
the work directory; the output, ~220 MB, is deleted after the checks).
"""
import os
import re
import shutil
import subprocess
import sys
import time

from common import (Job, check, env, fresh_dir, main_guard, parser, q, require,
                    salpipe)

SKIP = 77


def run_peak(cmd, timeout=300):
    """Runs cmd to the end under GNU time (scripts/setup.sh installs it); returns
    (exit code, stdout, stderr, peak RSS in KiB). Not this script's own rusage: a
    child's maxrss counts the memory it had before exec, a copy of this Python."""
    import tempfile
    with tempfile.NamedTemporaryFile("r") as t:
        try:
            p = subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", t.name] + list(cmd),
                               env=env(), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return -9, "", f"timeout after {timeout} s", 0
        text = t.read().split()
    return p.returncode, p.stdout, p.stderr, int(text[-1]) if text else 0


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def config(path, model, images, targets, output, methods=("vanilla", "guided"), run=None):
    """Writes a config: `images` is the [images] line, targets [(layer, units as
    TOML)], run a dict for [run]. Returns path."""
    lines = ["# written by test_plans.py", "[model]", f"path = {q(model)}", "[images]",
             images]
    for layer, units in targets:
        lines += ["[[targets]]", f"layer = {q(layer)}", f"units = {units}"]
    lines += ["[saliency]", "methods = [" + ", ".join(q(m) for m in methods) + "]",
              "[output]", f"path = {q(output)}"]
    if run:
        lines += ["[run]"] + [f"{k} = {v}" for k, v in run.items()]
    return write(path, "\n".join(lines) + "\n")


def line_of(path, prefix):
    """1-based number of the first line of the file starting with prefix."""
    with open(path) as f:
        for i, l in enumerate(f, 1):
            if l.startswith(prefix):
                return i
    return None


def expect_refusal(args, what, cfg, words, line=None, ranks=None, mem_mb=400,
                   check_too=True):
    """--check (alone) and a run (alone or under mpiexec -n ranks) of cfg both exit 2
    quickly, naming the file, the line and `words`; nothing is written."""
    out = os.path.join(args.work, "out.h5")
    runs = [("--check", [args.salpipe, "--check", cfg])] if check_too else []
    cmd = [args.salpipe, cfg]
    if ranks:
        cmd = [args.mpiexec, "-n", str(ranks)] + cmd
    runs.append(("run" if not ranks else f"run -n {ranks}", cmd))
    for how, c in runs:
        t0 = time.perf_counter()
        rc, o, e, kb = run_peak(c, timeout=120)
        secs = time.perf_counter() - t0
        msg = " ".join(l for l in e.splitlines() if l.startswith("salpipe:"))
        print(f"    {how}: exit {rc} in {secs:.1f} s, peak RSS {kb / 1024:.0f} MiB\n"
              f"      {msg[:600]}")
        check(rc == 2, f"{what}: {how} exits 2", f"exit {rc}")
        check(os.path.basename(cfg) in msg, f"{what}: {how} names the config file")
        if line is not None:
            check(re.search(rf":{line}:\d+:", msg), f"{what}: {how} names line {line}")
        for w in words:
            check(w in msg, f"{what}: {how} says '{w}'")
        if not ranks or how == "--check":
            check(kb < mem_mb * 1024, f"{what}: {how} peak memory under {mem_mb} MiB",
                  f"{kb / 1024:.0f} MiB")
        check(secs < 60, f"{what}: {how} answers within a minute", f"{secs:.1f} s")
    check(not os.path.exists(out), f"{what}: no output file written")


def run_limits(args):
    w = args.work
    out = os.path.join(w, "out.h5")
    demo = args.demo_model
    img = os.path.join(args.demo_images, sorted(os.listdir(args.demo_images))[0])
    files = f"files = [{q(img)}]"

    print("== a units range of four billion")
    cfg = config(os.path.join(w, "range.toml"), demo, files, [("fc2", '"1-4000000000"')], out)
    expect_refusal(args, "range 1-4000000000", cfg,
                   ["targets[0].units", "1-4000000000", "1048576"], line=line_of(cfg, "units"))

    print("== a units array of 2^20 + 1 numbers (an 8 MB config)")
    units = "[" + ", ".join(str(i) for i in range(1, (1 << 20) + 2)) + "]"
    cfg = config(os.path.join(w, "array.toml"), demo, files, [("fc2", units)], out)
    expect_refusal(args, "units array of 1048577", cfg,
                   ["targets[0].units", "too many targets", "1048576"],
                   line=line_of(cfg, "units"), mem_mb=600)

    print("== more maps per image than 65536 (AlexNet: 38912 targets x 2 methods)")
    tables = [("flatten", '"1-9216"'), ("dropout1", '"1-9216"')] + \
        [(layer, '"1-4096"') for layer in ("fc1", "fc1_relu", "dropout2", "fc2", "fc2_relu")]
    cfg = config(os.path.join(w, "perimage.toml"), args.model, files, tables, out)
    expect_refusal(args, "maps per image", cfg, ["'targets'", "maps per image", "65536"],
                   line=line_of(cfg, 'layer = "flatten"'))

    print("== a batch whose buffers exceed this node's memory (AlexNet, batch 4096)")
    cfg = config(os.path.join(w, "batchmem.toml"), args.model, files,
                 [("fc3", '"1-1000"')], out, methods=("vanilla", "guided", "deconvnet"),
                 run={"batch": 4096})
    expect_refusal(args, "batch memory", cfg, ["run.batch", "memory", "use batch ="],
                   line=line_of(cfg, "batch"))

    print("== a batch whose results exceed one MPI message (2 ranks, 3600 AlexNet maps)")
    cfg = config(os.path.join(w, "message.toml"), args.model, files,
                 [("fc3", '"1-1000"'), ("fc2", '"1-800"')], out, run={"batch": 1})
    rc, o, e, kb = run_peak([args.salpipe, "--check", cfg])
    print("    --check alone:\n      " + "\n      ".join(o.splitlines()[-3:] + e.splitlines()))
    check(rc == 0 and "note" in o and "more than one rank" in o,
          "message: --check alone exits 0 and notes the limit for more ranks", f"exit {rc}")
    expect_refusal(args, "batch message", cfg, ["run.batch"], line=line_of(cfg, "batch"),
                   ranks=2, check_too=False)

    print("== an image path longer than 4095 bytes in a list")
    listfile = write(os.path.join(w, "long.txt"), f"{img}\n{img}\n" + "a" * 5000 + ".png\n")
    cfg = config(os.path.join(w, "longpath.toml"), demo, f"list = {q(listfile)}",
                 [("fc2", '"1-10"')], out)
    expect_refusal(args, "long path", cfg, ["images.list", "long.txt:3:", "4095"],
                   line=line_of(cfg, "list"))

    print("== a config file over 16 MiB")
    cfg = config(os.path.join(w, "huge.toml"), demo, files, [("fc2", '"1-10"')], out)
    with open(cfg, "a") as f:
        f.write(("# padding " + "x" * 1000 + "\n") * 17000)
    expect_refusal(args, "config size", cfg, ["huge.toml", "16 MiB", "images.list"])

    print("== an image list that never ends (/dev/zero: no size to check beforehand)")
    cfg = config(os.path.join(w, "devzero.toml"), demo, 'list = "/dev/zero"',
                 [("fc2", '"1-10"')], out)
    expect_refusal(args, "endless list", cfg, ["images.list", "/dev/zero", "1024 MiB"],
                   line=line_of(cfg, "list"), mem_mb=2600)


# ---- disk space --------------------------------------------------------------------------

def unmount_leftovers(work):
    """Unmounts tmpfs mounts a killed earlier run left below work."""
    try:
        with open("/proc/mounts") as f:
            mounts = [l.split()[1] for l in f]
    except OSError:
        return
    for m in sorted(mounts, reverse=True):
        if m.startswith(os.path.abspath(work) + "/"):
            subprocess.run(["umount", m], capture_output=True)


def mount_tmpfs(d, size):
    os.makedirs(d, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", d],
                       capture_output=True, text=True)
    return r.returncode == 0, (r.stderr or r.stdout).strip()


def demo_images(args, d, n, missing=()):
    """n distinct names (symlinks) for the demo images in d; the indices in missing
    are left out (their names dangle), so those images fail until made."""
    os.makedirs(d, exist_ok=True)
    demo = sorted(f for f in os.listdir(args.demo_images) if f.endswith(".png"))
    names = []
    for i in range(n):
        name = os.path.join(d, f"{i:05d}_{demo[i % len(demo)]}")
        if i not in missing and not os.path.lexists(name):
            os.symlink(os.path.join(args.demo_images, demo[i % len(demo)]), name)
        names.append(name)
    return names


def demo_config(args, path, images, out):
    listfile = write(path + ".txt", "\n".join(images) + "\n")
    return config(path, args.demo_model, f"list = {q(listfile)}", [("fc2", '"1-10"')], out,
                  methods=("vanilla", "guided", "deconvnet"))


def run_disk(args):
    w = args.work
    unmount_leftovers(w)
    fresh_dir(w)
    small = os.path.join(w, "small")
    ok, why = mount_tmpfs(small, "4m")
    if not ok:
        print(f"SKIP: cannot mount a 4 MiB tmpfs at {small} ({why}); the disk-space "
              "checks need a small file system")
        sys.exit(SKIP)
    try:
        disk_cases(args, small)
    finally:
        subprocess.run(["umount", small], capture_output=True)


def free_bytes(d):
    st = os.statvfs(d)
    return st.f_bavail * st.f_frsize


def disk_cases(args, small):
    w = args.work
    imgs = demo_images(args, os.path.join(w, "img"), 60)
    out = os.path.join(small, "sub", "big.h5")  # sub/ does not exist yet
    cfg = demo_config(args, os.path.join(w, "big.toml"), imgs, out)
    print(f"== 60 images x 30 maps (~5 MB) into a 4 MiB tmpfs ({free_bytes(small)} bytes free)")
    r = salpipe(args, ["--check", cfg])
    line = next((l for l in r.out.splitlines() if l.startswith("disk")), "")
    check(r.rc == 3, "--check exits 3", f"exit {r.rc}")
    check("DOES NOT FIT" in line, "--check's disk line says DOES NOT FIT", line)
    nums = re.findall(r"([\d.]+) (MB|kB)", line)
    check(len(nums) >= 3, "--check states the estimate and the free space", line)
    check(small in line, "--check names the output's file system", small)
    r = salpipe(args, [cfg])
    check(r.rc == 3, "the run refuses: exit 3", f"exit {r.rc}")
    check(re.search(r"about [\d.]+ MB", r.err) and re.search(r"has [\d.]+ [kM]B free", r.err),
          "the message has both numbers (estimate and free space)")
    check(not os.path.exists(out) and not os.path.exists(os.path.dirname(out)),
          "nothing written: no output, no directory")
    r = salpipe(args, ["--overwrite", cfg])
    check(r.rc == 3, "--overwrite refuses too: exit 3", f"exit {r.rc}")

    print("== a job that fits (20 images, ~1.7 MB)")
    cfg20 = demo_config(args, os.path.join(w, "fits.toml"), imgs[:20],
                        os.path.join(small, "fits.h5"))
    r = salpipe(args, ["--check", cfg20])
    line = next((l for l in r.out.splitlines() if l.startswith("disk")), "")
    check(r.rc == 0 and line.endswith(": fits"), "--check: fits, exit 0", line)
    est = float(re.search(r"about ([\d.]+) MB", line).group(1)) * 1e6
    r = salpipe(args, ["--quiet", cfg20])
    check(r.rc == 0, "the run completes", f"exit {r.rc}")
    size = os.path.getsize(os.path.join(small, "fits.h5"))
    check(0.8 * size <= est <= 1.25 * size, "the estimate is within 25% of the file's size",
          f"estimate {est:.0f}, file {size} bytes")
    os.unlink(os.path.join(small, "fits.h5"))

    print("== a resume whose remaining work fits, when the whole job would not any more")
    imgs40 = demo_images(args, os.path.join(w, "img40"), 40, missing=set(range(35, 40)))
    out40 = os.path.join(small, "resume.h5")
    cfg40 = demo_config(args, os.path.join(w, "resume.toml"), imgs40, out40)
    r = salpipe(args, ["--quiet", cfg40])
    check(r.rc == 1, "first run: 35 done, 5 missing images failed (exit 1)", f"exit {r.rc}")
    demo_images(args, os.path.join(w, "img40"), 40)  # the 5 images appear
    free = free_bytes(small)
    ballast = os.path.join(small, "ballast")
    with open(ballast, "wb") as f:
        f.write(b"\0" * max(0, free - 700_000))
    print(f"    ballast of {os.path.getsize(ballast)} bytes: {free_bytes(small)} bytes free")
    fresh = demo_config(args, os.path.join(w, "fresh.toml"), imgs40,
                        os.path.join(small, "fresh.h5"))
    r = salpipe(args, ["--check", fresh])
    check(r.rc == 3, "the same job into a new file no longer fits: --check exits 3",
          f"exit {r.rc}")
    r = salpipe(args, ["--check", cfg40])
    line = next((l for l in r.out.splitlines() if l.startswith("disk")), "")
    check(r.rc == 0 and "35 of 40 images done" in r.out, "--check of the resume: 35 of 40 "
          "done, exit 0", line)
    r = salpipe(args, ["--quiet", cfg40])
    check(r.rc == 0, "the resume runs to the end (exit 0)", f"exit {r.rc}")
    import h5py
    with h5py.File(out40, "r") as f:
        check(int((f["status"][()] == 1).sum()) == 40, "all 40 images done")


# ---- a million-line list -----------------------------------------------------------------

def vm(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for l in f:
                if l.startswith(key):
                    return int(l.split()[1])
    except OSError:
        pass
    return None


def run_million(args):
    w = args.work
    n = 1_000_000
    demo = sorted(f for f in os.listdir(args.demo_images) if f.endswith(".png"))
    os.symlink(args.demo_images, os.path.join(w, "demo"))
    listfile = os.path.join(w, "million.txt")
    existing = set(range(0, n, n // 10))
    with open(listfile, "w") as f:
        for i in range(n):
            f.write(f"demo/{demo[i % len(demo)]}\n" if i in existing
                    else f"missing/img_{i:07d}.png\n")
    print(f"== a list of {n} lines ({os.path.getsize(listfile)} bytes), "
          f"{len(existing)} existing images")
    out = os.path.join(w, "million.h5")
    # One map per image: the whole job's estimate (2.8 GB) must fit the disk, though
    # only 10 images are computed.
    if free_bytes(w) < 4e9:
        print(f"SKIP: {w} has {free_bytes(w) / 1e9:.1f} GB free; the million-image job's "
              "output is estimated at 2.8 GB and salpipe refuses to start without room")
        sys.exit(SKIP)
    cfg = config(os.path.join(w, "million.toml"), args.demo_model, f"list = {q(listfile)}",
                 [("fc2", "[1]")], out, methods=("vanilla",))
    # the cost of MPI and the model alone, for comparison
    one = config(os.path.join(w, "one.toml"), args.demo_model,
                 f"files = [{q(os.path.join(args.demo_images, demo[0]))}]",
                 [("fc2", "[1]")], out, methods=("vanilla",))
    rc, o, e, base_kb = run_peak([args.salpipe, "--check", one])
    t0 = time.perf_counter()
    rc, o, e, kb = run_peak([args.salpipe, "--check", cfg])
    secs = time.perf_counter() - t0
    print("    " + "\n    ".join(o.splitlines()[-6:]))
    print(f"    --check: exit {rc} in {secs:.1f} s, peak RSS {kb / 1024:.1f} MiB "
          f"({base_kb / 1024:.1f} MiB with one image: the plan takes "
          f"{(kb - base_kb) / 1024:.1f} MiB, {(kb - base_kb) * 1024 / n:.0f} bytes per path)")
    check(rc == 0, "--check exits 0", f"exit {rc}")
    check(f"images    {n} from list, {n - len(existing)} missing" in o,
          "--check counts the images and the missing ones")
    check(kb < 200 * 1024, "--check's peak memory is under 200 MiB", f"{kb / 1024:.1f} MiB")

    print("== the run on 2 ranks (the missing images fail fast, 10 are computed)")
    job = Job(args, ["--quiet", cfg], ranks=2, log_prefix=os.path.join(w, "run"))
    peak = {}
    while job.running():
        for pid in job.salpipe_pids():
            hwm = vm(pid, "VmHWM")
            if hwm:
                peak[pid] = max(peak.get(pid, 0), hwm)
        time.sleep(0.2)
    r = job.wait(timeout=600)
    print(f"    exit {r.rc} after {r.seconds:.1f} s; peak RSS per rank (MiB): "
          + ", ".join(f"{v / 1024:.0f}" for v in sorted(peak.values(), reverse=True)))
    check(r.rc == 1, "the run exits 1 (failed images recorded)", f"exit {r.rc}")
    check(len(peak) == 2, "both ranks were sampled", f"{len(peak)}")
    # Rank 0 holds the plan and the failed images' pending /error strings (HDF5's
    # global heap); the other rank holds the plan it received.
    top = sorted(peak.values(), reverse=True)
    check(top and top[0] < 1024 * 1024, "rank 0's peak memory is under 1 GiB",
          f"{top[0] / 1024 if top else 0:.0f} MiB")
    check(len(top) == 2 and top[1] < 300 * 1024, "the other rank's peak is under 300 MiB",
          f"{top[1] / 1024 if len(top) == 2 else 0:.0f} MiB")
    import h5py
    import numpy as np
    with h5py.File(out, "r") as f:
        st = f["status"][()]
        check(st.shape == (n,), "/status has a million entries", f"{st.shape}")
        done = np.flatnonzero(st == 1)
        check(set(done.tolist()) == existing, "exactly the 10 existing images are done",
              f"{done.tolist()}")
        check(int((st == -1).sum()) == n - len(existing), "every missing image failed")
        check(f["image"].shape == (n,) and f["image"][n - 1].decode() ==
              f"missing/img_{n - 1:07d}.png", "/image holds the million names as listed")
        for name in ("status", "error", "activation"):
            c = f[name].chunks
            check(c is not None and c[0] <= 1024, f"/{name} is chunked by at most 1024 images",
                  f"chunks {c}")
        maps = f["saliency"][sorted(existing)[1]]
        check(np.isfinite(maps).all() and np.abs(maps).max() > 0,
              "a computed image's maps are finite and not all zero")
    for big in (out, listfile):  # ~240 MB of the build directory
        os.unlink(big)


def main():
    ap = parser(__doc__)
    ap.add_argument("mode", choices=["limits", "disk", "million"])
    ap.add_argument("--demo-model", required=True)
    ap.add_argument("--demo-images", required=True)
    args = ap.parse_args()
    args.demo_model = os.path.abspath(args.demo_model)
    args.demo_images = os.path.abspath(args.demo_images)
    if args.mode == "disk":
        main_guard(lambda: run_disk(args))
    fresh_dir(args.work)
    main_guard(lambda: {"limits": run_limits, "million": run_million}[args.mode](args))


if __name__ == "__main__":
    main()
