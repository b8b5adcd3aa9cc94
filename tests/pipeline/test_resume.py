#!/usr/bin/env python3
"""Kill and resume: the finished file is bit-identical to an uninterrupted run.

    test_resume.py {kill|signal} --salpipe ... --mpiexec ... --model ... --data ...
                   --work ... [--seed N]

Job: the twelve images of DIR/many, batch 2, targets fc3 [540, 23] and conv5 3,
methods vanilla and guided, `mpiexec -n 2`. First an uninterrupted run (the
reference file). Every interrupted run writes to its own output path and is then
completed by running the same config again; its /saliency and /activation must
equal the reference's bit for bit, /status be all 1 and /error empty.

kill: SIGKILL to the whole job (mpiexec, every rank, the process group):
  early      0.3 s after the start (setup, model load, or file creation)
  created    as soon as the output file exists (before or during its first flush)
  flushed    as soon as a copy of the output shows a flushed image (status 1)
  random     at a seeded random moment of the run's duration (a fresh attempt if the
             run ended first: the machine is shared); resumed
             without mpirun (a different rank count)
  twice      killed at a random moment, resumed, the resume killed as soon as it
             has flushed more, resumed again under `-n 3 --oversubscribe`
signal: a clean stop (exit 4) once a copy shows a flushed image; /status then has
  some images 1 and the rest 0, maps NaN where not computed; the rerun completes:
  SIGTERM    to salpipe run without mpirun
  SIGTERM    to every rank of a `-n 2` job (what SLURM does at the time limit)
  SIGUSR1    to mpiexec, which forwards it to the ranks
  and a second run (plain, and --overwrite) on an output the first run is writing is
  refused, the first run finishing undisturbed.
"""
import os
import random
import signal
import time

import numpy as np

from common import (MANY_IMAGES, Fatal, Job, check, check_same_outputs, fresh_dir,
                    main_guard, many_config, parser, peek_status, read_output, require,
                    salpipe)

NIMG = MANY_IMAGES


def make_config(args, name):
    return many_config(args, name, [("fc3", [540, 23]), ("conv5", [3])], batch=2)


def wait_flushed(job, out, scratch, more_than=0, timeout=120):
    """Polls copies of `out` until more than `more_than` images show status 1.
    Returns (status, seconds) or (None, seconds) when the job ended first."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if not job.running():
            return None, job.elapsed()
        if os.path.exists(out):
            st = peek_status(out, scratch)
            if st is not None and int((st == 1).sum()) > more_than:
                return st, job.elapsed()
        time.sleep(0.05)
    raise Fatal(f"no flushed image visible in {out} after {timeout} s")


def describe_file(out, scratch):
    if not os.path.exists(out):
        return "no output file yet"
    st = peek_status(out, scratch)
    if st is None:
        return "output file exists but does not open"
    return f"status on disk: {int((st == 1).sum())} done, {int((st == 0).sum())} not done"


def kill_at(args, cfg, out, scratch, ranks, when, label):
    """Starts the job and SIGKILLs it at `when`: seconds; 'created' (as soon as the
    output file exists); 'flushed' or ('more', n): once a copy of the output shows
    more than 0 or n images done."""
    job = Job(args, [cfg], ranks, os.path.join(args.work, label))
    try:
        if when == "flushed" or isinstance(when, tuple):
            more = when[1] if isinstance(when, tuple) else 0
            st, t = wait_flushed(job, out, scratch, more)
            if st is None:
                r = job.wait()
                r.show()
                print(f"    {label}: the job finished before a kill point was seen")
                return False
        elif when == "created":
            while job.running() and not os.path.exists(out):
                time.sleep(0.002)
        else:
            while job.running() and job.elapsed() < when:
                time.sleep(0.01)
            if not job.running():
                r = job.wait()
                r.show()
                print(f"    {label}: the job ended before {when:.2f} s")
                return False
        t = job.elapsed()
        pids = job.kill9()
        print(f"    {label}: SIGKILL at {t:.2f} s to pids {pids}; "
              f"{describe_file(out, scratch)}")
        return True
    finally:
        job.close()


def resume(args, cfg, out, ref, ranks, what):
    r = salpipe(args, [cfg], ranks)
    if not check(r.rc == 0, f"{what}: the rerun completes with exit 0", f"exit {r.rc}"):
        return
    d = read_output(out)
    check(np.all(d["status"] == 1), f"{what}: /status all 1", f"{d['status']}")
    check(all(e == "" for e in d["error"]), f"{what}: /error all empty")
    check_same_outputs(ref, d, f"{what} vs uninterrupted")


def reference_run(args):
    print("== uninterrupted reference run, mpiexec -n 2")
    cfg, out = make_config(args, "reference")
    r = salpipe(args, [cfg], 2)
    require(r.rc == 0, "reference run: exit 0", f"exit {r.rc}")
    d = read_output(out)
    require(np.all(d["status"] == 1), "reference run: /status all 1")
    check(not np.isnan(d["saliency"]).any(), "reference run: no NaN")
    return d, r.seconds


def kill_random(args, scratch, rng, seconds, attempts=4):
    """SIGKILL at a seeded random moment in [0.25, 0.9] of the run's duration. The
    machine is shared, so a run can be faster than the reference was: a run that
    ends before its moment is not a failure of salpipe, and the next attempt draws
    its moment from that faster run's duration, on a fresh output."""
    for attempt in range(1, attempts + 1):
        when = rng.uniform(0.25, 0.9) * seconds
        cfg, out = make_config(args, f"kill_random_{attempt}")
        job_t0 = time.perf_counter()
        if kill_at(args, cfg, out, scratch, 2, when, f"random-{attempt}"):
            return True, cfg, out
        seconds = min(seconds, time.perf_counter() - job_t0)
        print(f"    random: attempt {attempt} ended first; next moment drawn from "
              f"{seconds:.2f} s")
    return False, cfg, out


def run_kill(args):
    ref, seconds = reference_run(args)
    scratch = os.path.join(args.work, "peek.h5")
    rng = random.Random(args.seed)
    print(f"    random kill times drawn with seed {args.seed}")

    trials = [("early", 0.3, 2), ("created", "created", 2), ("flushed", "flushed", 2),
              ("random", None, None)]
    for label, when, resume_ranks in trials:
        print(f"\n== SIGKILL {label}")
        if label == "random":
            killed, cfg, out = kill_random(args, scratch, rng, seconds)
        else:
            cfg, out = make_config(args, f"kill_{label}")
            killed = kill_at(args, cfg, out, scratch, 2, when, label)
        check(killed, f"{label}: the job was killed mid-run")
        how = "alone" if resume_ranks is None else f"-n {resume_ranks}"
        resume(args, cfg, out, ref, resume_ranks, f"kill {label}, resumed {how}")

    print("\n== SIGKILL twice")
    cfg, out = make_config(args, "kill_twice")
    when = rng.uniform(0.2, 0.6) * seconds
    if kill_at(args, cfg, out, scratch, 2, when, "twice-1"):
        st = peek_status(out, scratch)
        before = int((st == 1).sum()) if st is not None else 0
        kill_at(args, cfg, out, scratch, 2, ("more", before), "twice-2")
    resume(args, cfg, out, ref, 3, "killed twice, resumed -n 3")


def stop_with(args, ref, label, ranks, send):
    print(f"\n== {label}")
    cfg, out = make_config(args, label.replace(" ", "_").lower())
    scratch = os.path.join(args.work, "peek.h5")
    job = Job(args, [cfg, "--quiet"], ranks, os.path.join(args.work, label.split()[0]))
    try:
        st, t = wait_flushed(job, out, scratch)
        if st is None:
            job.wait().show()
            check(False, f"{label}: the job was still running at the first flush")
            return
        pids = send(job)
        print(f"    {label}: sent at {t:.2f} s to pid(s) {pids}")
        r = job.wait(timeout=120)
        r.show()
    finally:
        job.close()
    check(r.rc == 4, f"{label}: clean stop, exit 4", f"exit {r.rc}")
    d = read_output(out)
    done = d["status"] == 1
    check(0 < done.sum() < NIMG and np.all((d["status"] == 0) | done),
          f"{label}: /status partly 1, the rest 0", f"{d['status']}")
    sal = d["saliency"]
    check(not np.isnan(sal[done]).any(), f"{label}: done images' maps have no NaN")
    check(np.isnan(sal[~done]).all(), f"{label}: maps not computed are NaN")
    check_same_outputs({k: ref[k][done] for k in ("saliency", "activation")},
                       {k: d[k][done] for k in ("saliency", "activation")},
                       f"{label}: images done before the stop")
    resume(args, cfg, out, ref, ranks, f"{label}, resumed")


def second_writer(args, ref):
    """A second run on an output another run is writing is refused, and the first
    run is not disturbed."""
    print("\n== a second run on the same output while the first one writes it")
    cfg, out = make_config(args, "second_writer")
    scratch = os.path.join(args.work, "peek.h5")
    job = Job(args, [cfg, "--quiet"], None, os.path.join(args.work, "first"))
    try:
        st, t = wait_flushed(job, out, scratch)
        if st is None:
            job.wait().show()
            check(False, "second writer: the first run was still running")
            return
        # Stopped, the first run holds the file for as long as the attempts take.
        job.signal_leader(signal.SIGSTOP)
        print(f"    first run stopped (SIGSTOP) at {t:.2f} s, after its first flush")
        for extra in ([], ["--overwrite"]):
            r = salpipe(args, extra + [cfg, "--quiet"])
            check(r.rc in (2, 3) and os.path.basename(out) in r.err,
                  f"second run {' '.join(extra)}: refused (exit 2 or 3), output named",
                  f"exit {r.rc}")
        job.signal_leader(signal.SIGCONT)
        r = job.wait()
        r.show()
    finally:
        job.close()
    check(r.rc == 0, "the first run completes, exit 0", f"exit {r.rc}")
    d = read_output(out)
    check(np.all(d["status"] == 1), "first run: /status all 1")
    check_same_outputs(ref, d, "first run vs uninterrupted")


def run_signal(args):
    ref, _ = reference_run(args)
    second_writer(args, ref)
    stop_with(args, ref, "SIGTERM alone", None,
              lambda job: job.signal_leader(signal.SIGTERM))
    stop_with(args, ref, "SIGTERM every rank", 2,
              lambda job: job.signal_ranks(signal.SIGTERM))
    stop_with(args, ref, "SIGUSR1 mpiexec", 2,
              lambda job: job.signal_leader(signal.SIGUSR1))


def main():
    ap = parser(__doc__)
    ap.add_argument("mode", choices=("kill", "signal"))
    ap.add_argument("--seed", type=int, default=None,
                    help="seed of the random kill times (default: from the clock)")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int(time.time()) % 100000
    fresh_dir(args.work)
    if args.mode == "kill":
        run_kill(args)
    else:
        run_signal(args)


if __name__ == "__main__":
    main_guard(main)
