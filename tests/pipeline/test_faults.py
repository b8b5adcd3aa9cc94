#!/usr/bin/env python3
"""Faults of a running job (issue 10): a rank killed, a second job, another writer.

    test_faults.py {worker_kill|rank0_kill|concurrent_job|held_open}
                   --salpipe ... --mpiexec ... --model ... --data ... --work ...

Job: the twelve images of DIR/many, batch 1, targets fc3 540 and conv5 3, methods
vanilla and guided (AlexNet). Each case first makes an uninterrupted reference file
(`mpiexec -n 2`); whatever the fault, the file finished afterwards must equal it bit
for bit in /saliency, /activation and /status.

worker_kill   `mpiexec -n 3`, SIGKILL to rank 1 once a copy of the output shows a
              flushed image. Twice: under plain mpiexec (which ends the job itself)
              and under `mpiexec --enable-recovery` (which leaves the others running,
              as srun without --kill-on-bad-exit does; salpipe must end the job).
              Each time: the job ends within DEADLINE s, exit status not 0, salpipe's
              message names rank 1, its pid, the output and how to resume, no process
              is left; the same command then resumes to the reference's bits.
rank0_kill    the same with rank 0 (the writer) killed.
concurrent_job  a second job (`-n 2`, then `--overwrite`) on the output a first
              `-n 2` job is writing (stopped with SIGSTOP meanwhile, so it surely
              holds the file): exit 3 within DEADLINE s, message naming the file and
              the first job's pid and host; the file not touched (same bytes, same
              inode); h5py cannot open it for writing either. The first job then
              finishes with the reference's bits and its lock file is gone.
held_open     an output (partly done) held open for writing by another process:
              h5py.File(path, 'a') with HDF5's file locking (flock), then with
              locking off (found through /proc): plain and --overwrite runs exit 3
              naming the file, the file's bytes unchanged; once the holder is gone
              the run resumes to the reference's bits.

Cost here (2 cores shared): worker_kill and rank0_kill about 60-90 s each (a
reference, two killed runs, two resumes), concurrent_job and held_open about 30 s.
"""
import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np

from common import (MANY_IMAGES, Fatal, Job, check, check_same_outputs, fresh_dir,
                    main_guard, many_config, parser, peek_status, read_output, require,
                    same_bits, salpipe, wait_gone)

NIMG = MANY_IMAGES
DEADLINE = 20.0  # s from the kill (or the start of a refused run) to the job's end
# mpiexec --enable-recovery acts neither on a death nor on MPI_Abort: each rank ends
# itself once it sees the death, a worker computing a batch only when that is done.
DEADLINE_RECOVERY = 60.0


def make_config(args, name):
    return many_config(args, name, [("fc3", [540]), ("conv5", [3])], batch=1)


def reference_run(args):
    print("== uninterrupted reference run, mpiexec -n 2")
    cfg, out = make_config(args, "reference")
    r = salpipe(args, [cfg, "--quiet"], 2)
    require(r.rc == 0, "reference run: exit 0", f"exit {r.rc}")
    d = read_output(out)
    require(np.all(d["status"] == 1), "reference run: /status all 1")
    return d


def check_same_as_reference(ref, out, what):
    d = read_output(out)
    check_same_outputs(ref, d, what)
    ok, detail = same_bits(ref["status"], d["status"])
    check(ok, f"{what}: /status bit-identical", detail)


def wait_flushed(job, out, scratch, timeout=180):
    """Polls copies of `out` until an image shows status 1; the status, or None when
    the job ended first."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if not job.running():
            return None
        if os.path.exists(out):
            st = peek_status(out, scratch)
            if st is not None and int((st == 1).sum()) > 0:
                return st
        time.sleep(0.05)
    raise Fatal(f"no flushed image visible in {out} after {timeout} s")


def rank_pids(job):
    """{rank: pid} of the job's salpipe processes (Open MPI's OMPI_COMM_WORLD_RANK)."""
    ranks = {}
    for pid in job.salpipe_pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                for var in f.read().split(b"\0"):
                    if var.startswith(b"OMPI_COMM_WORLD_RANK="):
                        ranks[int(var.split(b"=", 1)[1])] = pid
        except OSError:
            pass
    return ranks


def file_id(path):
    st = os.stat(path)
    with open(path, "rb") as f:
        return st.st_ino, hashlib.sha256(f.read()).hexdigest()


# ---- a rank killed ---------------------------------------------------------------------

def kill_rank(args, ref, victim, recovery):
    launcher = "mpiexec --enable-recovery" if recovery else "mpiexec"
    label = f"rank{victim}_{'recovery' if recovery else 'plain'}"
    print(f"\n== SIGKILL to rank {victim} of `{launcher} -n 3`")
    cfg, out = make_config(args, label)
    scratch = os.path.join(args.work, "peek.h5")
    # Open MPI takes its options from the environment too (MCA parameters).
    if recovery:
        os.environ["OMPI_MCA_orte_enable_recovery"] = "1"
    job = Job(args, [cfg], 3, os.path.join(args.work, label))
    os.environ.pop("OMPI_MCA_orte_enable_recovery", None)
    try:
        st = wait_flushed(job, out, scratch)
        if st is None:
            job.wait().show()
            check(False, f"{label}: the job was still running after its first flush")
            return
        ranks = rank_pids(job)
        require(sorted(ranks) == [0, 1, 2], f"{label}: ranks 0, 1, 2 found",
                f"{ranks}")
        t_kill = time.perf_counter()
        os.kill(ranks[victim], signal.SIGKILL)
        print(f"    SIGKILL to rank {victim} (pid {ranks[victim]}) with "
              f"{int((st == 1).sum())} of {NIMG} images flushed")
        r = job.wait(timeout=120)
        ended = time.perf_counter() - t_kill
        r.show()
    finally:
        job.close()
    limit = DEADLINE_RECOVERY if recovery else DEADLINE
    check(ended < limit, f"{label}: the job ended {ended:.1f} s after the kill "
          f"(under {limit:.0f} s: no hang)")
    check(wait_gone(list(ranks.values()), 10.0), f"{label}: no salpipe process left")
    if recovery:
        # mpiexec --enable-recovery exits 0 whatever its ranks do (measured with
        # Open MPI 4.1.4); salpipe's own code shows in MPI_Abort's message, which
        # Open MPI sometimes fails to relay under this option (its show_help: "Data
        # unpack would read past end of buffer"), and in salpipe's own line.
        check("with errorcode 4" in r.err or
              "ends the job with MPI_Abort, exit code 4" in r.err,
              f"{label}: salpipe ended the job with MPI_Abort, code 4")
    else:
        check(r.rc != 0, f"{label}: exit status not 0", f"exit {r.rc}")
    who = f"rank {victim} (pid {ranks[victim]} on "
    check(who in r.err and "died" in r.err, f"{label}: salpipe says '{who}...) died'")
    check("run the same command again to resume" in r.err,
          f"{label}: salpipe says how to resume")
    if victim != 0:
        check(out in r.err, f"{label}: salpipe names the output file")
    st = peek_status(out, scratch)
    check(st is not None, f"{label}: the output opens after the kill",
          f"{'-' if st is None else int((st == 1).sum())} of {NIMG} images done")
    print(f"    {launcher}: job ended {ended:.2f} s after the kill, exit {r.rc}")
    rr = salpipe(args, [cfg], 3)
    check(rr.rc == 0, f"{label}: the same command resumes, exit 0", f"exit {rr.rc}")
    check("resuming" in rr.err, f"{label}: the rerun resumed (did not start over)")
    if rr.rc == 0:
        check_same_as_reference(ref, out, f"{label}, resumed")


def run_kill(args, victim):
    ref = reference_run(args)
    kill_rank(args, ref, victim, recovery=False)
    kill_rank(args, ref, victim, recovery=True)


# ---- a second job, another writer ------------------------------------------------------

def try_h5py_write(path):
    """Whether another process can open path for writing with h5py (HDF5's locking)."""
    code = ("import h5py, sys\ntry:\n    h5py.File(sys.argv[1], 'a').close()\n"
            "except OSError as e:\n    print(e); sys.exit(7)\n")
    p = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout.strip() + p.stderr.strip()


def run_concurrent(args):
    ref = reference_run(args)
    print("\n== a second job on the output a first job is writing")
    cfg, out = make_config(args, "concurrent")
    scratch = os.path.join(args.work, "peek.h5")
    first = Job(args, [cfg, "--quiet"], 2, os.path.join(args.work, "first"))
    try:
        if wait_flushed(first, out, scratch) is None:
            first.wait().show()
            check(False, "the first job was still running after its first flush")
            return
        ranks = rank_pids(first)
        # Stopped, the first job surely holds the file while the others try.
        first.signal_ranks(signal.SIGSTOP)
        print(f"    first job (ranks {ranks}) stopped with SIGSTOP after its first flush")
        before = file_id(out)
        host = os.uname().nodename
        for extra in ([], ["--overwrite"]):
            what = "second job" + (" --overwrite" if extra else "")
            t0 = time.perf_counter()
            r = salpipe(args, extra + [cfg], 2, timeout=120)
            took = time.perf_counter() - t0
            check(r.rc == 3, f"{what}: refused with exit 3", f"exit {r.rc}")
            check(took < DEADLINE, f"{what}: refused at once ({took:.1f} s)")
            check(out in r.err and "another salpipe run is writing this file" in r.err,
                  f"{what}: message names the file and another salpipe job")
            check(f"pid {ranks.get(0)} on host {host}" in r.err,
                  f"{what}: message gives the first job's pid and host")
            check(file_id(out) == before, f"{what}: the output is untouched (same inode, "
                  "same bytes)")
        rc, msg = try_h5py_write(out)
        check(rc == 7, "h5py cannot open the running job's output for writing", msg[:100])
        check(file_id(out) == before, "h5py: the output is untouched")
        first.signal_ranks(signal.SIGCONT)
        r = first.wait(timeout=300)
        r.show()
    finally:
        first.close()
    check(r.rc == 0, "the first job finishes, exit 0", f"exit {r.rc}")
    check_same_as_reference(ref, out, "first job")
    check(not os.path.exists(out + ".lock"), "the first job removed its lock file")
    r = salpipe(args, [cfg, "--quiet"])
    check(r.rc == 0, "a run after the first job ended is not refused", f"exit {r.rc}")


def holder(path, locking):
    """A process holding path open for writing with h5py until its stdin closes."""
    code = ("import h5py, sys\nf = h5py.File(sys.argv[1], 'a', locking=sys.argv[2] == '1')\n"
            "print('open', flush=True)\nsys.stdin.read()\nf.close()\n")
    p = subprocess.Popen([sys.executable, "-c", code, path, "1" if locking else "0"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    require(line == "open", f"h5py holds {os.path.basename(path)} open for writing "
            f"(locking {'on' if locking else 'off'})", line)
    return p


def run_held_open(args):
    ref = reference_run(args)
    print("\n== an output held open for writing by another program")
    cfg, out = make_config(args, "held")
    scratch = os.path.join(args.work, "peek.h5")
    job = Job(args, [cfg, "--quiet"], None, os.path.join(args.work, "partial"))
    try:
        if wait_flushed(job, out, scratch) is None:
            job.wait().show()
            check(False, "the partial run was still running after its first flush")
            return
        job.kill9()
    finally:
        job.close()
    print("    a run killed after its first flush left a partly done output")
    for locking in (True, False):
        how = "HDF5 locking on" if locking else "HDF5 locking off"
        h = holder(out, locking)
        try:
            before = file_id(out)
            for extra in ([], ["--overwrite"]):
                what = f"{how}: run" + (" --overwrite" if extra else "")
                t0 = time.perf_counter()
                r = salpipe(args, extra + [cfg], timeout=120)
                took = time.perf_counter() - t0
                check(r.rc == 3, f"{what}: refused with exit 3 ({took:.1f} s)",
                      f"exit {r.rc}")
                check(out in r.err and "open for writing" in r.err,
                      f"{what}: message names the file and the other writer")
                if not locking:
                    check(f"process {h.pid} " in r.err, f"{what}: message gives its pid")
                check(file_id(out) == before, f"{what}: the output is untouched")
        finally:
            h.stdin.close()
            h.wait(timeout=60)
    r = salpipe(args, [cfg], 2)
    check(r.rc == 0, "once the holder closed it, the run resumes, exit 0", f"exit {r.rc}")
    if r.rc == 0:
        check("resuming" in r.err, "the run resumed (did not start over)")
        check_same_as_reference(ref, out, "resumed after the holder closed")


def main():
    ap = parser(__doc__)
    ap.add_argument("case", choices=("worker_kill", "rank0_kill", "concurrent_job",
                                     "held_open"))
    args = ap.parse_args()
    fresh_dir(args.work)
    if args.case == "worker_kill":
        run_kill(args, 1)
    elif args.case == "rank0_kill":
        run_kill(args, 0)
    elif args.case == "concurrent_job":
        run_concurrent(args)
    else:
        run_held_open(args)


if __name__ == "__main__":
    main_guard(main)
