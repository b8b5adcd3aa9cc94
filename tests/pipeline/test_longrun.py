#!/usr/bin/env python3
"""A long run (issue 10; docs/reliability.md, "A long run"): the demo model over N
images (distinct names: symlinks to the 20 demo images) with its 10 class targets and
3 methods, under mpiexec -n RANKS. The resident memory (VmRSS) of every rank is
sampled from /proc over the whole run; after the warm-up (the first half of the run)
no rank may grow by 1% (at least 1.5 MiB: one step of the C library's heap on a
~50 MiB rank was 0.5 MiB, +1.03%, once in CI) or more over its size at the end of
the warm-up. The finished
file must hold every image.

    test_longrun.py [--images 4000] [--ranks 2] [--interval 0.5]
                    --salpipe ... --demo-model ... --demo-images ... --work ...

Costs: 4000 images (120,000 maps) take ~50-100 s on 2 cores; scripts/longrun.sh runs
20,000 for the figures of docs/reliability.md.
"""
import os
import time

from common import Job, check, fresh_dir, main_guard, parser, q, require

WARMUP = 0.5      # share of the run before the growth is measured
MAX_GROWTH = 0.01
MIN_ALLOWANCE_KB = 1536  # a single heap step is not a leak; a steady leak passes it


def vmrss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rank_of(pid):
    """The MPI rank of a salpipe process, from Open MPI's environment."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for kv in f.read().split(b"\0"):
                if kv.startswith(b"OMPI_COMM_WORLD_RANK="):
                    return int(kv.split(b"=")[1])
    except (OSError, ValueError):
        pass
    return None


def run(args):
    w = fresh_dir(args.work)
    demo = sorted(f for f in os.listdir(args.demo_images) if f.endswith(".png"))
    img = os.path.join(w, "img")
    os.makedirs(img)
    for i in range(args.images):
        os.symlink(os.path.join(args.demo_images, demo[i % len(demo)]),
                   os.path.join(img, f"{i:06d}_{demo[i % len(demo)]}"))
    out = os.path.join(w, "long.h5")
    cfg = os.path.join(w, "long.toml")
    with open(cfg, "w") as f:
        f.write(f"[model]\npath = {q(args.demo_model)}\n[images]\ndir = {q(img)}\n"
                "[[targets]]\nlayer = \"fc2\"\nunits = \"1-10\"\n"
                "[saliency]\nmethods = [\"vanilla\", \"guided\", \"deconvnet\"]\n"
                f"[output]\npath = {q(out)}\n[run]\nbatch = 8\n")
    print(f"== {args.images} images x 10 targets x 3 methods = {args.images * 30} maps, "
          f"{args.ranks} ranks, VmRSS sampled every {args.interval} s")
    job = Job(args, ["--quiet", cfg], ranks=args.ranks, log_prefix=os.path.join(w, "run"))
    samples = []  # (seconds, {rank: KiB})
    ranks = {}
    while job.running():
        row = {}
        for pid in job.salpipe_pids():
            if pid not in ranks:
                ranks[pid] = rank_of(pid)
            kb = vmrss(pid)
            if kb and ranks[pid] is not None:
                row[ranks[pid]] = kb
        if len(row) == args.ranks:
            samples.append((job.elapsed(), row))
        time.sleep(args.interval)
    r = job.wait(timeout=3600)
    require(r.rc == 0, "the run exits 0", f"exit {r.rc}: {r.err[-400:]}")
    require(len(samples) >= 10, "at least 10 samples of every rank", f"{len(samples)}")

    t_end = samples[-1][0]
    print(f"\n    RSS curve (MiB), every {max(1, len(samples) // 20)}th sample:")
    print("      seconds  " + "  ".join(f"rank {k}" for k in range(args.ranks)))
    step = max(1, len(samples) // 20)
    for t, row in samples[::step] + [samples[-1]]:
        print(f"      {t:7.1f}  " + "  ".join(f"{row[k] / 1024:6.1f}" for k in range(args.ranks)))
    warm = [s for s in samples if s[0] <= WARMUP * t_end][-1]
    after = [s for s in samples if s[0] > warm[0]]
    print(f"\n    warm-up: the first {WARMUP:.0%} of the run ({warm[0]:.1f} of {t_end:.1f} s)")
    for k in range(args.ranks):
        base = warm[1][k]
        peak = max(s[1][k] for s in after)
        last = samples[-1][1][k]
        growth = (peak - base) / base
        check(peak - base < max(MAX_GROWTH * base, MIN_ALLOWANCE_KB),
              f"rank {k}: RSS grows by less than 1% (at least 1.5 MiB) after the warm-up",
              f"{base / 1024:.1f} MiB at {warm[0]:.0f} s, peak {peak / 1024:.1f} MiB after, "
              f"last {last / 1024:.1f} MiB: {growth:+.2%}")

    import h5py
    with h5py.File(out, "r") as f:
        st = f["status"][()]
        check(st.shape == (args.images,) and (st == 1).all(), "every image is done",
              f"{int((st == 1).sum())} of {args.images}")


def main():
    ap = parser(__doc__)
    ap.add_argument("--demo-model", required=True)
    ap.add_argument("--demo-images", required=True)
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--interval", type=float, default=0.5)
    args = ap.parse_args()
    args.demo_model = os.path.abspath(args.demo_model)
    args.demo_images = os.path.abspath(args.demo_images)
    main_guard(lambda: run(args))


if __name__ == "__main__":
    main()
