#!/usr/bin/env python3
"""The maps do not depend on `[run] threads`: bit-identical for 1, 2 and 3 threads.

    test_threads.py {float32|float64} --salpipe ... --mpiexec ... --model ... --data ...
                    --work ...

Job: six images of DIR/many, batch 2, targets fc3 [540, 23] and conv4 3 (the
targets where threads 1 and 2 used to differ, by up to 2e-11), methods vanilla and
guided, in the given precision. Runs without mpirun with threads = 1, 2 and 3; then
a `mpiexec -n 2` job with threads = 2, SIGKILLed as soon as a copy of its output
shows a flushed image, resumed without mpirun with threads = 3. /saliency and
/activation of every file must equal the threads = 1 file bit for bit.

Before the fix (OpenBLAS's own threads splitting each product by thread count)
every comparison failed, in both precisions. Cost: about 30 s (float32) and 60 s
(float64) on 2 cores with other work running; several minutes under heavy load.
"""
import os
import time

import numpy as np

from common import (Job, check, check_same_outputs, fresh_dir, main_guard, parser, peek_status,
                    read_output, require, salpipe, write_config)

NIMG = 6


def make_config(args, name, threads):
    many = os.path.join(args.data, "many")
    images = sorted(os.path.join(many, n) for n in os.listdir(many))[:NIMG]
    require(len(images) == NIMG, f"{NIMG} images in {many}", f"{len(images)}")
    out = os.path.join(args.work, f"{name}.h5")
    cfg = write_config(os.path.join(args.work, f"{name}.toml"), args.model,
                       {"files": images}, [("fc3", [540, 23]), ("conv4", [3])], out,
                       ["vanilla", "guided"],
                       run={"batch": 2, "threads": threads, "precision": args.precision},
                       output_extra={"compression": 1})
    return cfg, out


def finished(args, cfg, out, ranks, what):
    """Runs cfg to the end; its output, or None (reported) when it failed."""
    r = salpipe(args, [cfg, "--quiet"], ranks)
    if not check(r.rc == 0, f"{what}: exit 0", f"exit {r.rc}"):
        return None
    d = read_output(out)
    check(np.all(d["status"] == 1), f"{what}: /status all 1", f"{d['status']}")
    check(not np.isnan(d["saliency"]).any(), f"{what}: no NaN in /saliency")
    return d


def killed_then_resumed(args, ref):
    print("\n== threads = 2 under mpiexec -n 2, SIGKILL at the first flush; "
          "resumed alone with threads = 3")
    cfg, out = make_config(args, "resumed", 2)
    scratch = os.path.join(args.work, "peek.h5")
    job = Job(args, [cfg, "--quiet"], 2, os.path.join(args.work, "killed"))
    try:
        st = None
        while job.running() and job.elapsed() < 120:
            if os.path.exists(out):
                st = peek_status(out, scratch)
                if st is not None and (st == 1).any():
                    break
            time.sleep(0.05)
        killed = job.running()
        if killed:
            job.kill9()
        else:
            job.wait().show()
    finally:
        job.close()
    done = int((st == 1).sum()) if st is not None else 0
    check(killed and 0 < done < NIMG, "the threads = 2 job was killed mid-run",
          f"{done} of {NIMG} images done on disk")
    # the resume takes the rest with another thread count (same config otherwise)
    with open(cfg) as f:
        text = f.read().replace("threads = 2", "threads = 3")
    with open(cfg, "w") as f:
        f.write(text)
    d = finished(args, cfg, out, None, "resumed with threads = 3")
    if d is not None:
        check_same_outputs(ref, d, "killed (threads 2), resumed (threads 3) vs threads 1")


def run(args):
    print(f"== {args.precision}: threads = 1, 2, 3 without mpirun")
    outs = {}
    for t in (1, 2, 3):
        cfg, out = make_config(args, f"t{t}", t)
        outs[t] = finished(args, cfg, out, None, f"threads = {t}")
    require(outs[1] is not None, "the threads = 1 run finished")
    dtype = np.float64 if args.precision == "float64" else np.float32
    check(outs[1]["saliency"].dtype == dtype, f"/saliency is {args.precision}",
          f"{outs[1]['saliency'].dtype}")
    for t in (2, 3):
        if outs[t] is not None:
            diff = np.abs(outs[t]["saliency"].astype(np.float64) -
                          outs[1]["saliency"].astype(np.float64)).max()
            print(f"    threads {t} vs 1: max |difference| of /saliency {diff:.3g}")
            check_same_outputs(outs[1], outs[t], f"threads {t} vs threads 1")
    killed_then_resumed(args, outs[1])


def main():
    ap = parser(__doc__)
    ap.add_argument("precision", choices=["float32", "float64"])
    args = ap.parse_args()
    fresh_dir(args.work)
    run(args)


if __name__ == "__main__":
    main_guard(main)
