#!/usr/bin/python3
"""scripts/salpipe.sbatch run here, without SLURM (its fallback) and with a pretend one.

    test_sbatch.py {fallback|usr1|resubmit} --salpipe SALPIPE --model MODEL.h5
                   --data DIR --work DIR

fallback  no SLURM_* variables: the script runs `mpirun -n 2 salpipe CONFIG` (ranks
          from SALPIPE_RANKS) and exits 0 with every image done; salpipe's exit 2 for
          a bad config passes through; no arguments is a usage message and 2; a
          SALPIPE_BIN that does not exist is 2; without SALPIPE_BIN the salpipe on
          PATH is used
usr1      a 24-image job (batch 2); once the output shows finished images, SIGUSR1 to
          the script's own process (as SLURM's --signal=B:USR1 does): the script
          passes it to mpirun, salpipe drains, the script exits 4 (SALPIPE_RESUBMIT=0)
          with a partial output and a note on how to resume; then Ctrl-C (SIGINT to
          the script's process group): exit 4 the same way; running the script again
          completes the file, leaving the images done before the stops as they were
resubmit  SLURM_JOB_ID, SLURM_NTASKS, ... set, a stand-in `sbatch` on PATH that
          records its arguments and a stand-in `squeue` giving the time limit (the
          real mpirun runs locally; Open MPI's SLURM components are switched off):
          SIGUSR1 -> exit 4 and one `sbatch --dependency=singleton --job-name=...
          --ntasks=2 --time=... SCRIPT CONFIG` without --overwrite, with
          SALPIPE_RESUBMIT_COUNT=1 in its environment; then SIGUSR2 to the script
          (scancel --batch --signal=USR2) -> exit 4 and no resubmission; then SIGTERM
          to every process of the job, as scancel does -> exit 1 or 4, a readable
          partial output, no resubmission, a note on how to resume
"""
import argparse
import os
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toolcheck as tc  # noqa: E402

SBATCH = os.path.join(tc.SCRIPTS, "salpipe.sbatch")
TARGETS = [("fc3", [540, 23]), ("conv5", [3])]
# The pretend-SLURM test stops the job three times, and each stop must come while
# work is left: 48 maps per image (salpipe with AVX-512 kernels runs ~35 maps/s on
# the 2-core VM; with 12 and then 24 maps per image the resumed job's last images
# were done before Ctrl-C reached it).
TARGETS_LONG = [("fc3", [540, 23] + list(range(1, 15))), ("conv5", list(range(1, 9)))]
# The resubmit chain's second job must still have work when salpipe.sbatch passes on a
# stop request held through mpirun's first 5 s: 12 images x 64 maps (~20 s at ~35
# maps/s).
TARGETS_CHAIN = [("fc3", list(range(500, 520))), ("conv5", list(range(1, 13)))]
METHODS = ["vanilla", "guided"]


class Job:
    """The script in the background, in its own session, output to files."""

    def __init__(self, cmd, env, work, name):
        self.cmd = cmd
        self.out = open(os.path.join(work, name + ".out"), "w+")
        self.err = open(os.path.join(work, name + ".err"), "w+")
        self.t0 = time.perf_counter()
        self.p = subprocess.Popen(cmd, env=env, cwd=work, stdout=self.out, stderr=self.err,
                                  start_new_session=True)

    def tree(self):
        """The script's pid and those of all its descendants (mpirun, the ranks)."""
        parent = {}
        for d in os.listdir("/proc"):
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
        out, todo = [self.p.pid], [self.p.pid]
        while todo:
            pid = todo.pop()
            kids = [c for c, pp in parent.items() if pp == pid]
            out += kids
            todo += kids
        return out

    def wait(self, timeout=240):
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
            raise tc.Fatal(f"{' '.join(self.cmd)}: still running after {timeout} s; killed")
        self.out.seek(0)
        self.err.seek(0)
        r = tc.Result(self.cmd, rc, self.out.read(), self.err.read(),
                      time.perf_counter() - self.t0)
        self.out.close()
        self.err.close()
        return r.show()


def wait_for_progress(job, output, scratch, more_than, timeout=180):
    """Polls a copy of the output until more than `more_than` images are done; the
    status seen then. Fatal when the job ends first (too short to be stopped)."""
    end = time.time() + timeout
    while time.time() < end:
        if job.p.poll() is not None:
            raise tc.Fatal("the job ended before it could be signalled")
        st = tc.peek_status(output, scratch) if os.path.exists(output) else None
        if st is not None and (st == 1).sum() > more_than:
            print(f"    {int((st == 1).sum())} images done at "
                  f"{time.perf_counter() - job.t0:.1f} s: signalling")
            return st
        time.sleep(0.2)
    raise tc.Fatal(f"no progress past {more_than} images within {timeout} s")


def many_config(args, name, targets=TARGETS):
    cfg = os.path.join(args.work, name + ".toml")
    img = os.path.join(args.data, "img")
    return tc.write_config(cfg, args.model, ("dir", img, "img_*"), targets, METHODS,
                           name + ".h5", batch=2), os.path.join(args.work, name + ".h5")


def check_complete(path, what):
    d = tc.read_output(path)
    tc.check(np.all(d["status"] == 1), f"{what}: /status all 1", str(d["status"]))
    s = d["saliency"]
    tc.check(np.isfinite(s).all(), f"{what}: no NaN in /saliency", str(s.shape))
    tc.check(all(np.abs(s[i, t, m]).max() > 0 for i in range(s.shape[0])
                 for t in range(s.shape[1]) for m in range(s.shape[2])),
             f"{what}: no all-zero map")
    return d


def check_partial(path, what):
    d = tc.read_output(path)
    st = d["status"]
    done, todo = int((st == 1).sum()), int((st == 0).sum())
    tc.check(done > 0 and todo > 0 and done + todo == len(st),
             f"{what}: partial output, some images done, the rest not done",
             f"{done} done, {todo} not done: {st}")
    tc.check(np.isfinite(d["saliency"][st == 1]).all() and
             np.isnan(d["saliency"][st == 0]).all(),
             f"{what}: done images have maps, the others NaN")
    return d


def base_env(args, extra=None):
    e = {"SALPIPE_BIN": args.salpipe, "SALPIPE_RANKS": "2"}
    e.update(extra or {})
    return tc.child_env(e)


def test_fallback(args):
    cfg = tc.write_config(os.path.join(args.work, "small.toml"), args.model,
                          [os.path.join(args.data, "img", n) for n in ("img_00.jpg",
                                                                       "img_01.png")],
                          [("fc3", [540]), ("conv5", [3])], METHODS, "small.h5")
    r = tc.run([SBATCH, cfg], env=base_env(args), cwd=args.work)
    tc.check(r.rc == 0, "exit 0", f"exit {r.rc}")
    tc.check("no SLURM" in r.err and f"running: mpirun -n 2 {args.salpipe} {cfg}" in r.err,
             "without SLURM: mpirun -n 2 salpipe CONFIG")
    tc.check("done: every image computed" in r.err, "the log ends saying all is done")
    check_complete(os.path.join(args.work, "small.h5"), "fallback run")

    bad = os.path.join(args.work, "bad.toml")
    with open(cfg) as f, open(bad, "w") as g:
        g.write(f.read().replace('"conv5"', '"conv99"'))
    r = tc.run([SBATCH, bad], env=base_env(args), cwd=args.work)
    tc.check(r.rc == 2 and "conv99" in r.err, "a config error: salpipe's exit 2 passes through",
             f"exit {r.rc}")
    r = tc.run([SBATCH], env=base_env(args), cwd=args.work)
    tc.check(r.rc == 2 and "sbatch" in r.err, "no arguments: usage and exit 2", f"exit {r.rc}")
    r = tc.run([SBATCH, cfg], env=base_env(args, {"SALPIPE_BIN": "/nonexistent/salpipe"}),
               cwd=args.work)
    tc.check(r.rc == 2 and "cannot find the salpipe executable" in r.err,
             "SALPIPE_BIN pointing nowhere: exit 2 saying so", f"exit {r.rc}")

    bindir = tc.fresh_dir(os.path.join(args.work, "bin"))
    os.symlink(args.salpipe, os.path.join(bindir, "salpipe"))
    env = base_env(args, {"PATH": bindir + os.pathsep + os.environ.get("PATH", "")})
    del env["SALPIPE_BIN"]
    r = tc.run([SBATCH, "--check", cfg], env=env, cwd=args.work)
    tc.check(r.rc == 0 and f"{bindir}/salpipe --check" in r.err,
             "without SALPIPE_BIN: the salpipe on PATH", f"exit {r.rc}")


def test_usr1(args):
    cfg, out = many_config(args, "many", TARGETS_LONG)
    scratch = os.path.join(args.work, "peek.h5")
    env = base_env(args, {"SALPIPE_RESUBMIT": "0"})
    job = Job([SBATCH, cfg, "--overwrite"], env, args.work, "stopped")
    wait_for_progress(job, out, scratch, 0)
    os.kill(job.p.pid, signal.SIGUSR1)
    r = job.wait()
    tc.check(r.rc == 4, "SIGUSR1 to the script: exit 4 (stopped)", f"exit {r.rc}")
    tc.check("got SIGUSR1" in r.err, "the script says it got SIGUSR1")
    tc.check("Forwarding signal 10" in r.err, "mpirun was given SIGUSR1")
    tc.check(f"to resume, run the same command again: {SBATCH} {cfg}" in r.err and
             "--overwrite" not in r.err.split("to resume")[-1],
             "it says how to resume, without --overwrite")
    d1 = check_partial(out, "after the stop")

    # Ctrl-C in a terminal: SIGINT to the foreground process group, the script's.
    # mpirun runs in a session of its own, so only the script gets it and the stop
    # is as clean as with SIGUSR1.
    job = Job([SBATCH, cfg], env, args.work, "ctrl_c")
    wait_for_progress(job, out, scratch, int((d1["status"] == 1).sum()))
    os.killpg(job.p.pid, signal.SIGINT)
    r = job.wait()
    tc.check(r.rc == 4, "Ctrl-C (SIGINT to the script's process group): exit 4",
             f"exit {r.rc}")
    tc.check("got SIGINT" in r.err and "to resume, run the same command again" in r.err,
             "the script says it got SIGINT and how to resume")
    d1 = check_partial(out, "after Ctrl-C")

    r = tc.run([SBATCH, cfg], env=env, cwd=args.work)
    tc.check(r.rc == 0, "run again: exit 0", f"exit {r.rc}")
    tc.check("resuming" in r.err, "salpipe resumed the file")
    d2 = check_complete(out, "resumed")
    done = d1["status"] == 1
    tc.check(np.array_equal(d1["saliency"][done].view(np.uint32),
                            d2["saliency"][done].view(np.uint32)),
             "images done before the stops are bit for bit as they were")


def fake_slurm(args):
    fakebin = tc.fresh_dir(os.path.join(args.work, "fakebin"))
    log = os.path.join(args.work, "sbatch.log")
    with open(os.path.join(fakebin, "sbatch"), "w") as f:
        f.write("#!/bin/sh\n"
                f"for a in \"$@\"; do printf '%s\\n' \"$a\"; done > {log}\n"
                f"echo \"SALPIPE_RESUBMIT_COUNT=$SALPIPE_RESUBMIT_COUNT\" >> {log}\n"
                "echo 'Submitted batch job 4243'\n")
    with open(os.path.join(fakebin, "squeue"), "w") as f:
        f.write("#!/bin/sh\necho 1-02:00:00\n")     # squeue -h -j ID -o %l
    for tool in ("sbatch", "squeue"):
        os.chmod(os.path.join(fakebin, tool), 0o755)
    env = base_env(args, {
        "PATH": fakebin + os.pathsep + os.environ.get("PATH", ""),
        "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "2", "SLURM_JOB_NAME": "salpipe-test",
        "SLURM_JOB_PARTITION": "debug", "SLURM_SUBMIT_DIR": args.work,
        "SLURM_MEM_PER_CPU": "3000",
        # Not a real allocation: keep Open MPI from asking SLURM for one.
        "OMPI_MCA_ras": "^slurm", "OMPI_MCA_plm": "^slurm"})
    del env["SALPIPE_RANKS"]
    return env, log


def test_resubmit(args):
    cfg, out = many_config(args, "chain", TARGETS_CHAIN)
    scratch = os.path.join(args.work, "peek.h5")
    env, log = fake_slurm(args)

    job = Job([SBATCH, cfg, "--overwrite"], env, args.work, "usr1")
    wait_for_progress(job, out, scratch, 0)
    os.kill(job.p.pid, signal.SIGUSR1)
    r = job.wait()
    tc.check(r.rc == 4, "pretend SLURM, SIGUSR1: exit 4", f"exit {r.rc}")
    tc.check(f"running: mpirun -n 2 {args.salpipe}" in r.err, "ranks from SLURM_NTASKS")
    tc.require(os.path.exists(log), "sbatch was called")
    with open(log) as f:
        argv = f.read().splitlines()
    print(f"    sbatch got: {argv}")
    want = ["--dependency=singleton", "--job-name=salpipe-test", "--ntasks=2",
            "--partition=debug", "--mem-per-cpu=3000", "--time=1-02:00:00"]
    tc.check(all(w in argv for w in want), "sbatch --dependency=singleton, the job's "
             "name, tasks, partition, memory and time limit (from squeue)", " ".join(want))
    tc.check(argv[-3:-1] == [SBATCH, cfg], "sbatch resubmits this script with the config")
    tc.check("--overwrite" not in argv, "the resubmitted job resumes (no --overwrite)")
    tc.check(argv[-1:] == ["SALPIPE_RESUBMIT_COUNT=1"], "the chain is counted")
    st1 = check_partial(out, "after the stop")["status"]

    os.remove(log)
    job = Job([SBATCH, cfg], env, args.work, "usr2")
    wait_for_progress(job, out, scratch, int((st1 == 1).sum()))
    os.kill(job.p.pid, signal.SIGUSR2)
    r = job.wait()
    tc.check(r.rc == 4, "pretend SLURM, SIGUSR2 to the script: drained, exit 4",
             f"exit {r.rc}")
    tc.check(not os.path.exists(log) and "not resubmitted (stopped by SIGUSR2)" in r.err,
             "after SIGUSR2 the job is not resubmitted, and says so")
    st2 = tc.read_output(out)["status"]
    tc.check((st2 == 1).sum() > (st1 == 1).sum(), "the second job resumed and added images",
             f"{int((st1 == 1).sum())} -> {int((st2 == 1).sum())} done")

    # scancel: SIGTERM to every process of the job at once. mpirun may then kill the
    # ranks before they have drained; the file keeps what was flushed either way.
    # A fresh start, without an old file whose progress the poll could mistake.
    os.remove(out)
    job = Job([SBATCH, cfg], env, args.work, "scancel")
    wait_for_progress(job, out, scratch, 0)
    for pid in job.tree():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    r = job.wait()
    tc.check(r.rc in (1, 4), "scancel-like SIGTERM to the script, mpirun and the ranks: "
             "exit 1 (mpirun's code for SIGTERM) or 4", f"exit {r.rc}")
    tc.check("stopped by SIGTERM" in r.err and not os.path.exists(log) and
             f"to resume: sbatch {SBATCH} {cfg}\n" in r.err,
             "it says it was stopped by SIGTERM, does not resubmit, and says how to resume")
    check_partial(out, "after scancel")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("fallback", "usr1", "resubmit"))
    for k in ("salpipe", "model", "data", "work"):
        ap.add_argument("--" + k, required=True)
    args = ap.parse_args()
    for k in ("salpipe", "model", "data", "work"):
        setattr(args, k, os.path.abspath(getattr(args, k)))
    tc.fresh_dir(args.work)
    print(f"== salpipe.sbatch {args.mode}")
    tc.run_main(lambda: globals()["test_" + args.mode](args))


if __name__ == "__main__":
    main()
