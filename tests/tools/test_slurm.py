#!/usr/bin/python3
"""scripts/salpipe.sbatch under a real SLURM, started by this test on this machine.

    test_slurm.py --salpipe SALPIPE --work DIR

Starts munged (its own key and socket), slurmctld and slurmd (Debian's SLURM; one
node, this machine at 127.0.0.1, 2 CPUs, proctrack/linuxproc and task/none, so no
cgroups; free loopback ports; state and spool in a temporary directory), runs the
job script in it as a user would, and stops every daemon and job at the end, also
on failure. Exits 77 (CTest's SKIP_RETURN_CODE) saying why when SLURM cannot run
here: not root, a SLURM or munge program missing, or a daemon that does not start.

The work: the demo model (models/fashion_mnist_cnn.h5) on copies (symlinks) of the
demo images, 10 targets x 3 methods per image, 2 ranks. Jobs are submitted from a
repository-like directory (scripts/salpipe.sbatch next to build/pipeline/salpipe)
without SALPIPE_BIN or salpipe on PATH, so every job must find salpipe from where
the script lives. Finished files are compared byte for byte (/saliency,
/activation, /status) with a plain `mpirun -n 2 salpipe` run of the same config.

scancel     600 images; `scancel JOBID` once a fifth are done: the job ends
            CANCELLED, the script says it was stopped by SIGTERM and does not
            resubmit, the file is a readable partial output; `sbatch` of the same
            config then resumes it, and the finished file is the plain run's. The
            plain run's speed sizes the time-limit case (~35 s of work).
at start    without SLURM: SIGUSR1 to the script the moment it has started mpirun
            (a rank would die of it before MPI_Init is done): a clean stop, exit 4.
early       --time=1 with the script's own --signal=B:USR1@300: SLURM signals at its
            first time-limit check, which the test makes fall ~2 s after the job's
            start; a clean stop, exit 4, not resubmitted (SALPIPE_RESUBMIT=0).
time limit  --time=1 (SLURM's minimum), --signal=B:USR1@20. slurmctld checks time
            limits every 30 s (its debug2 log says "Testing job time limits") and
            signals at the first check less than 30 s before the warning time, so
            the test submits 15 s after a check: the signal comes ~15 s into the
            job. The script drains, exits 4 and resubmits itself
            (--dependency=singleton) until a job finishes. Checked: every job but
            the last signalled, drained, exited 4 and resubmitted without
            --overwrite; tasks and time limit passed on; no two jobs of the chain at
            once; later jobs resumed; the last exited 0; the file is the plain run's.

Cost: ~2.5-3.5 minutes on 2 cores (two plain runs, two waits of up to 30 s for
slurmctld's clock, the jobs); the outputs (~0.1 MB per image) are deleted when every
check passed.
"""
import argparse
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toolcheck as tc  # noqa: E402

SKIP = 77
SBATCH = os.path.join(tc.SCRIPTS, "salpipe.sbatch")
MODEL = os.path.join(tc.REPO, "models", "fashion_mnist_cnn.h5")
DEMO = os.path.join(tc.REPO, "data", "demo")
TARGETS = [("fc2", list(range(1, 11)))]
METHODS = ["vanilla", "guided", "deconvnet"]
MAPS_PER_IMAGE = 10 * 3
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel",
            "sinfo")
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
         "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
TICK = "Testing job time limits"      # slurmctld's debug2 line at each time-limit check
_spawned = set()                       # pids of our daemons (subprocess reaps them)


class Skip(Exception):
    """SLURM cannot run here; the reason is printed and the test exits 77."""


class Stopped(Exception):
    """SIGTERM (CTest's timeout) or SIGINT: clean up and fail."""


def fatal(what):
    """A failed check that ends the test."""
    tc.require(False, what)


def libc():
    return ctypes.CDLL(None, use_errno=True)


def descendants():
    """Pids of every live process below this one. This process is a subreaper, so
    orphans of the daemons and jobs (slurmstepd, ranks whose mpirun ended) come
    here; those that have exited are reaped on the way."""
    parent, zombie = {}, set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parent[int(d)] = int(fields[1])
                if fields[0] == "Z":
                    zombie.add(int(d))
            except (OSError, ValueError, IndexError):
                pass
    for pid in zombie:
        if parent[pid] == os.getpid() and pid not in _spawned:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
    out, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        kids = [c for c, p in parent.items() if p == pid]
        out += [k for k in kids if k not in zombie]
        todo += kids
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return f"      ({path}: none)"
    return "\n".join("      " + s for s in lines[-n:])


class Cluster:
    """munged + slurmctld + slurmd of our own. Daemons run in the foreground as our
    children, with SIGTERM as their parent-death signal."""

    def __init__(self, tmp, logs):
        self.tmp, self.logs = tmp, logs
        self.node = socket.gethostname().split(".")[0]
        self.conf = os.path.join(tmp, "slurm.conf")
        self.sock = os.path.join(tmp, "munge", "munge.socket")
        self.procs = {}
        self.env = tc.child_env({"SLURM_CONF": self.conf})

    def spawn(self, name, cmd):
        log = open(os.path.join(self.logs, name + ".out"), "w")

        def child():
            libc().prctl(1, signal.SIGTERM)        # PR_SET_PDEATHSIG

        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env, preexec_fn=child,
                                            start_new_session=True)
        _spawned.add(self.procs[name].pid)
        log.close()

    def alive(self, name):
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def poll(self, what, fn, name, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if fn():
                return
            if not self.alive(name):
                raise Skip(f"{name} exited with {self.procs[name].returncode} while "
                           f"waiting for {what}:\n"
                           + tail(os.path.join(self.logs, name + ".out")) + "\n"
                           + tail(os.path.join(self.logs, name + ".log")))
            time.sleep(0.2)
        raise Skip(f"no {what} within {timeout} s:\n"
                   + tail(os.path.join(self.logs, name + ".out")) + "\n"
                   + tail(os.path.join(self.logs, name + ".log")))

    def start(self):
        mdir = os.path.dirname(self.sock)
        os.makedirs(mdir)
        for d in (self.tmp, mdir):   # munged wants the socket's directories searchable
            os.chmod(d, 0o755)
        key = os.path.join(self.tmp, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        self.spawn("munged", ["munged", "-F", "--socket=" + self.sock, "--key-file=" + key,
                              "--log-file=" + os.path.join(self.logs, "munged.log"),
                              "--pid-file=" + os.path.join(self.tmp, "munged.pid"),
                              "--seed-file=" + os.path.join(self.tmp, "munged.seed")])
        self.poll("munge socket", lambda: os.path.exists(self.sock), "munged", 15)

        for d in ("state", "spool"):
            os.makedirs(os.path.join(self.tmp, d))
        ctld_port, d_port = free_port(), free_port()
        while d_port == ctld_port:
            d_port = free_port()
        t = self.tmp
        conf = f"""\
# Generated by tests/tools/test_slurm.py: one node, this machine, no cgroups.
ClusterName=salpipetest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.sock}
StateSaveLocation={t}/state
SlurmdSpoolDir={t}/spool
SlurmctldPidFile={t}/slurmctld.pid
SlurmdPidFile={t}/slurmd.pid
SlurmctldLogFile={self.logs}/slurmctld.log
SlurmdLogFile={self.logs}/slurmd.log
# debug2 logs each time-limit check ("{TICK}"), which the test times from.
SlurmctldDebug=debug2
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=10
MinJobAge=600
NodeName={self.node} NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""
        with open(self.conf, "w") as f:
            f.write(conf)
        self.spawn("slurmctld", ["slurmctld", "-D", "-f", self.conf])
        self.poll("answer from slurmctld",
                  lambda: self.run(["scontrol", "ping"], check=False).returncode == 0,
                  "slurmctld", 30)
        self.spawn("slurmd", ["slurmd", "-D", "-f", self.conf, "-N", self.node])
        self.poll(f"idle node {self.node}",
                  lambda: self.run(["sinfo", "-h", "-o", "%T", "-n", self.node],
                                   check=False).stdout.strip() == "idle", "slurmd", 40)
        print(f"    SLURM up: slurmctld on 127.0.0.1:{ctld_port}, slurmd on :{d_port}, "
              f"node {self.node}, munge socket {self.sock}")

    def run(self, cmd, check=True, env=None, cwd=None, timeout=30):
        p = subprocess.run(cmd, env=env or self.env, cwd=cwd, capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            fatal(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
        return p

    def job(self, jobid):
        """scontrol's fields of a job (KEY=VALUE words)."""
        out = self.run(["scontrol", "-o", "show", "job", str(jobid)]).stdout
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def wait_job(self, jobid, timeout, idle=False):
        """Waits until the job has ended; with idle, also until no salpipe, mpirun or
        slurmstepd is left (before another job may open the same output)."""
        end = time.time() + timeout
        while time.time() < end:
            j = self.job(jobid)
            if j.get("JobState") in ENDED and not (idle and any(
                    comm(p) in ("salpipe", "mpirun", "slurmstepd") for p in descendants())):
                return j
            time.sleep(0.5)
        left = sorted(set(comm(p) for p in descendants()))
        fatal(f"job {jobid} still not over after {timeout} s "
              f"(JobState={self.job(jobid).get('JobState')}, processes {left})")

    def last_tick(self):
        """Epoch time of slurmctld's last time-limit check (its log, local time);
        waits up to 35 s for the first one. None if none appears."""
        log = os.path.join(self.logs, "slurmctld.log")
        end = time.time() + 35
        while True:
            with open(log, errors="replace") as f:
                ticks = re.findall(r"^\[([0-9T:-]+)(?:\.\d+)?\].*" + TICK, f.read(), re.M)
            if ticks:
                return time.mktime(time.strptime(ticks[-1], "%Y-%m-%dT%H:%M:%S"))
            if time.time() > end:
                return None
            time.sleep(0.2)

    def stop(self):
        """Cancels every job, stops the daemons, then kills whatever is left below us."""
        if self.alive("slurmctld"):
            try:
                self.run(["scancel", "--user=root"], check=False)
                end = time.time() + 25
                while (time.time() < end and
                       self.run(["squeue", "-h"], check=False).stdout.strip()):
                    time.sleep(0.5)
            except (subprocess.SubprocessError, OSError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        left = descendants()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if left:
            print(f"    killed {len(left)} leftover processes: "
                  f"{sorted(set(comm(p) for p in left))}")
        print("    SLURM stopped")


# ---- the work ----------------------------------------------------------------------

def image_dir(path, n):
    """n distinct names for the demo images, as symlinks."""
    demo = sorted(os.path.join(DEMO, f) for f in os.listdir(DEMO) if f.endswith(".png"))
    tc.fresh_dir(path)
    for i in range(n):
        os.symlink(demo[i % len(demo)], os.path.join(path, f"im{i:05d}.png"))
    return path


def config(path, images, output):
    return tc.write_config(path, MODEL, ("dir", images, "*.png"), TARGETS, METHODS,
                           output, batch=8)


def plain_run(args, cfg):
    """The uninterrupted run: mpirun -n 2 salpipe, no SLURM. Its wall time."""
    r = tc.run(["mpirun", "-n", "2", args.salpipe, cfg, "--overwrite", "--quiet"],
               timeout=400)
    tc.require(r.rc == 0, f"plain run of {os.path.basename(cfg)}: exit 0", f"exit {r.rc}")
    return r.seconds


def compare(path, ref, what):
    import h5py
    with h5py.File(path, "r") as f, h5py.File(ref, "r") as g:
        for name in ("saliency", "activation", "status"):
            a, b = f[name][()], g[name][()]
            same = a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
            detail = f"{a.dtype}{a.shape}"
            if not same and a.shape == b.shape:
                av = a.reshape(len(a), -1).view(np.uint8)
                bv = b.reshape(len(b), -1).view(np.uint8)
                detail += f", {int((av != bv).any(axis=1).sum())} images differ"
            tc.check(same, f"{what}: /{name} bit for bit as the plain run's", detail)


def compare_done(path, ref, what):
    """A partial output: the images done are bit for bit the plain run's."""
    import h5py
    with h5py.File(path, "r") as f, h5py.File(ref, "r") as g:
        done = f["status"][()] == 1
        same = all(f[k][()][done].tobytes() == g[k][()][done].tobytes()
                   for k in ("saliency", "activation"))
    tc.check(same, f"{what}: the {int(done.sum())} images done are bit for bit "
             "the plain run's")


def status(path):
    import h5py
    with h5py.File(path, "r") as f:
        return f["status"][()]


def job_log(case_dir, jobid):
    try:
        with open(os.path.join(case_dir, f"salpipe-{jobid}.out"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def show_log(text, jobid):
    lines = [s for s in text.splitlines() if s.strip() and not s.startswith("-----")]
    if len(lines) > 24:
        lines = lines[:8] + ["..."] + lines[-14:]
    print(f"    --- salpipe-{jobid}.out:\n" + "\n".join("      " + s for s in lines))


def submit_env(cl):
    """The submitting shell's environment: our SLURM, no SALPIPE_BIN and no salpipe on
    PATH (the jobs must find it from the script's location), the warning time for
    the resubmitted jobs."""
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not os.access(os.path.join(d, "salpipe"), os.X_OK)]
    return tc.child_env({"SLURM_CONF": cl.conf, "PATH": os.pathsep.join(path),
                         "SALPIPE_SBATCH_ARGS": "--signal=B:USR1@20"},
                        drop=("SALPIPE_BIN", "SALPIPE_RANKS", "SALPIPE_RESUBMIT"))


def sbatch(cl, argv, cwd, extra_env=None):
    env = submit_env(cl)
    env.update(extra_env or {})
    r = cl.run(["sbatch", "--parsable"] + argv, env=env, cwd=cwd)
    jobid = int(r.stdout.strip().split(";")[0])
    print(f"    $ sbatch {' '.join(argv)}\n    job {jobid}")
    return jobid


def at_tick(cl, offset, what):
    """Sleeps until `offset` seconds after one of slurmctld's time-limit checks (at
    least 1 s from now). False when the log shows none."""
    tick = cl.last_tick()
    if tick is None:
        print(f"    (no time-limit check in slurmctld's log: {what} at once)")
        return False
    at = tick + offset
    while at < time.time() + 1:
        at += 30
    print(f"    {what} in {at - time.time():.1f} s, {offset} s after a time-limit check of "
          f"slurmctld (the last logged at {time.strftime('%T', time.localtime(tick))})")
    time.sleep(at - time.time())
    return True


def case_at_start(args, cfg, out, ref, case_dir):
    """Without SLURM: SIGUSR1 to the script the moment it has started mpirun (as
    SLURM's B: signal would), when a rank would die of it."""
    env = tc.child_env({"SALPIPE_BIN": args.salpipe, "SALPIPE_RANKS": "2",
                        "SALPIPE_RESUBMIT": "0"})
    log = os.path.join(case_dir, "at_start.log")
    with open(log, "w") as f:
        p = subprocess.Popen([SBATCH, cfg, "--overwrite"], env=env, cwd=case_dir,
                             stdout=f, stderr=f, start_new_session=True)
    end = time.time() + 30
    while True:
        with open(log) as f:
            if "running:" in f.read():
                break
        if time.time() > end or p.poll() is not None:
            fatal("the script did not start mpirun")
        time.sleep(0.002)
    os.kill(p.pid, signal.SIGUSR1)
    t0 = time.monotonic()
    try:
        rc = p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        fatal("the script still runs 120 s after SIGUSR1")
    with open(log) as f:
        text = f.read()
    print(f"    SIGUSR1 as mpirun started: exit {rc} after {time.monotonic() - t0:.1f} s")
    tc.check(rc == 4 and "stopped by signal 10" in text,
             "SIGUSR1 as mpirun starts: passed on once salpipe is up, a clean stop, exit 4",
             f"exit {rc}; " + " | ".join(s for s in text.splitlines()
                                        if "signal" in s or "exit" in s)[-300:])
    if os.path.exists(out):
        compare_done(out, ref, "stop as mpirun starts")


def case_early(args, cl, script, cfg, out, ref, case_dir):
    """The job script's default warning time (300 s) with a 1-minute job: SLURM sends
    SIGUSR1 at its first time-limit check, submitted here to fall ~1-2 s after the
    job's start, while mpirun and the ranks are starting."""
    if not at_tick(cl, 26.5, "submitting"):
        print("    skipped: the signal's time cannot be aimed without the log")
        return None
    jobid = sbatch(cl, ["--job-name=salpipe-early", "--ntasks=2", "--mem-per-cpu=100",
                        "--time=1", script, cfg, "--overwrite"], case_dir,
                   {"SALPIPE_RESUBMIT": "0", "SALPIPE_SBATCH_ARGS": ""})
    info = cl.wait_job(jobid, timeout=90)
    text = job_log(case_dir, jobid)
    show_log(text, jobid)
    m = re.search(r"^salpipe.sbatch: \S+ (\d\d):(\d\d):(\d\d) on ", text, re.M)
    g = re.search(r"^salpipe.sbatch: (\d\d):(\d\d):(\d\d) got SIGUSR1", text, re.M)
    if m and g:
        secs = [int(a) * 3600 + int(b) * 60 + int(c)
                for a, b, c in (m.groups(), g.groups())]
        print(f"    SIGUSR1 {(secs[1] - secs[0]) % 86400} s after the script started")
    tc.check(info.get("ExitCode") == "4:0" and "got SIGUSR1" in text and
             "stopped by signal 10" in text and "exited on signal" not in text,
             "SIGUSR1 at the job's start: salpipe stopped cleanly, exit 4",
             f"{info.get('JobState')} {info.get('ExitCode')}")
    tc.check("not resubmitted" in text, "SALPIPE_RESUBMIT=0: not resubmitted, says so")
    # Later: the next case is to be submitted within a few seconds.
    return lambda: compare_done(out, ref, "stop at the job's start (SLURM)")


def case_time_limit(args, cl, script, cfg, out, ref, case_dir):
    at_tick(cl, 15, "submitting")
    t0 = time.monotonic()
    jobid = sbatch(cl, ["--job-name=salpipe-tl", "--ntasks=2", "--mem-per-cpu=100",
                        "--time=1", "--signal=B:USR1@20", script, cfg, "--overwrite"],
                   case_dir)
    chain, infos, logs = [jobid], [], []
    while True:
        info = cl.wait_job(chain[-1], timeout=150)
        text = job_log(case_dir, chain[-1])
        show_log(text, chain[-1])
        infos.append(info)
        logs.append(text)
        print(f"    job {chain[-1]}: {info.get('JobState')}, "
              f"ExitCode={info.get('ExitCode')}, "
              f"{info.get('StartTime')} - {info.get('EndTime')}")
        m = re.search(r"^Submitted batch job (\d+)", text, re.M)
        if not m:
            break
        if len(chain) >= 6:
            fatal(f"the chain did not end within 6 jobs: {chain}")
        chain.append(int(m.group(1)))
    seconds = time.monotonic() - t0
    print(f"    chain of {len(chain)} jobs {chain} in {seconds:.0f} s")

    tc.require(len(chain) >= 2, "the first job was stopped before the end and resubmitted",
               f"{len(chain)} job")
    for k, (jid, info, text) in enumerate(zip(chain, infos, logs)):
        last = k == len(chain) - 1
        tc.check(info.get("TimeLimit") == "00:01:00" and info.get("NumTasks") == "2",
                 f"job {jid}: time limit 1 minute, 2 tasks (passed on)",
                 f"TimeLimit={info.get('TimeLimit')} NumTasks={info.get('NumTasks')}")
        tc.check(f"running: mpirun -n 2 {os.path.dirname(os.path.dirname(script))}"
                 "/build/pipeline/salpipe" in text,
                 f"job {jid}: salpipe found next to the job script")
        if k > 0:
            tc.check("salpipe: resuming:" in text and "--overwrite" not in text,
                     f"job {jid}: resumed the file (no --overwrite)")
            tc.check(info.get("StartTime", "") >= infos[k - 1].get("EndTime", "~"),
                     f"job {jid}: started after job {chain[k - 1]} ended (singleton)",
                     f"{infos[k - 1].get('EndTime')} <= {info.get('StartTime')}")
        if not last:
            tc.check("got SIGUSR1" in text and "stopped by signal 10" in text,
                     f"job {jid}: SIGUSR1 before the time limit, salpipe drained")
            tc.check(info.get("ExitCode") == "4:0" and info.get("JobState") == "FAILED",
                     f"job {jid}: exit 4 (stopped, resume), before the time limit",
                     f"{info.get('JobState')} {info.get('ExitCode')}")
            tc.check(f"resubmitting (job {k + 1} in a row)" in text,
                     f"job {jid}: resubmitted itself")
        else:
            tc.check(info.get("ExitCode") == "0:0" and info.get("JobState") == "COMPLETED"
                     and "done: every image computed" in text,
                     f"job {jid}: the last one finished every image, exit 0",
                     f"{info.get('JobState')} {info.get('ExitCode')}")
    compare(out, ref, "time-limit chain")


def case_scancel(args, cl, script, cfg, out, ref, case_dir):
    jobid = sbatch(cl, ["--job-name=salpipe-sc", "--ntasks=2", "--mem-per-cpu=100",
                        "--time=10", script, cfg], case_dir)
    scratch = os.path.join(case_dir, "peek.h5")
    end = time.time() + 120
    while True:
        if time.time() > end:
            fatal("no progress within 120 s")
        st = tc.peek_status(out, scratch) if os.path.exists(out) else None
        if st is not None and (st == 1).sum() >= len(st) // 5:
            break
        state = cl.job(jobid).get("JobState")
        if state not in ("PENDING", "RUNNING"):
            fatal(f"job {jobid} is {state} before it could be cancelled")
        time.sleep(0.2)
    print(f"    {int((st == 1).sum())} of {len(st)} images done: scancel {jobid}")
    cl.run(["scancel", str(jobid)])
    info = cl.wait_job(jobid, timeout=60, idle=True)
    text = job_log(case_dir, jobid)
    show_log(text, jobid)
    tc.check(info.get("JobState") == "CANCELLED", "scancel: the job ends CANCELLED",
             info.get("JobState"))
    tc.check("got SIGTERM" in text and "stopped by SIGTERM" in text and
             f"to resume: sbatch {script} {cfg}" in text,
             "the script says it was stopped by SIGTERM and how to resume")
    others = cl.run(["squeue", "-h", "-n", "salpipe-sc"]).stdout.strip()
    tc.check("resubmitting" not in text and not others, "not resubmitted", others)
    st = status(out)
    done = int((st == 1).sum())
    tc.check(0 < done < len(st) and set(np.unique(st)) <= {0, 1},
             "the output is readable and partial", f"{done} of {len(st)} done")

    jobid = sbatch(cl, ["--job-name=salpipe-sc", "--ntasks=2", "--mem-per-cpu=100",
                        "--time=10", script, cfg], case_dir)
    info = cl.wait_job(jobid, timeout=150)
    text = job_log(case_dir, jobid)
    show_log(text, jobid)
    tc.check(info.get("ExitCode") == "0:0" and "done: every image computed" in text,
             "resubmitted by hand: exit 0",
             f"{info.get('JobState')} {info.get('ExitCode')}")
    tc.check(f"resuming: {done} of {len(st)} images already done" in text,
             "it resumed from what the cancelled job had written")
    compare(out, ref, "scancel + resubmission")


def test(args, cl):
    script_repo = os.path.join(args.work, "repo")
    os.makedirs(os.path.join(script_repo, "scripts"))
    os.makedirs(os.path.join(script_repo, "build", "pipeline"))
    script = os.path.join(script_repo, "scripts", "salpipe.sbatch")
    shutil.copy2(SBATCH, script)
    os.symlink(args.salpipe, os.path.join(script_repo, "build", "pipeline", "salpipe"))

    # The scancel case has a fixed size; its plain run gives this machine's speed
    # now, which sizes the time-limit case (~35 s of work).
    jobs, rate = {}, None
    for name in ("sc", "tl"):
        want = 35
        n = 600 if name == "sc" else int(min(max(rate * want / MAPS_PER_IMAGE, 600), 20000))
        case_dir = tc.fresh_dir(os.path.join(args.work, name))
        ref = os.path.join(args.work, f"ref_{name}.h5")
        out = os.path.join(case_dir, name + ".h5")
        while True:
            imgs = image_dir(os.path.join(args.work, "img_" + name), n)
            cfg_ref = config(os.path.join(args.work, f"ref_{name}.toml"), imgs, ref)
            cfg = config(os.path.join(case_dir, name + ".toml"), imgs, out)
            t = plain_run(args, cfg_ref)
            rate = n * MAPS_PER_IMAGE / max(t - 0.5, 0.5)
            print(f"    plain run, {n} images: {t:.1f} s, {rate:.0f} maps/s")
            # The time-limit case needs more than the ~15 s its first job gets.
            if name != "tl" or t > 0.7 * want or n >= 20000:
                break
            n = int(min(n * want / t, 20000))
        jobs[name] = (cfg, out, ref, case_dir)

    print("== scancel mid-run, then sbatch again")
    case_scancel(args, cl, script, *jobs["sc"])
    print("== the warning signal while the job starts")
    cfg, _out, ref, _dir = jobs["tl"]
    early_dir = tc.fresh_dir(os.path.join(args.work, "early"))
    early_out = os.path.join(early_dir, "early.h5")
    early_cfg = config(os.path.join(early_dir, "early.toml"),
                       os.path.join(args.work, "img_tl"), early_out)
    case_at_start(args, early_cfg, early_out, ref, early_dir)
    early_done = case_early(args, cl, script, early_cfg, early_out, ref, early_dir)
    print("== a time limit shorter than the work")
    case_time_limit(args, cl, script, *jobs["tl"])
    if early_done:
        early_done()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--salpipe", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    args.salpipe, args.work = os.path.abspath(args.salpipe), os.path.abspath(args.work)
    print("== salpipe.sbatch under a real SLURM")
    missing = [p for p in PROGRAMS if shutil.which(p) is None and
               not os.access(os.path.join("/usr/sbin", p), os.X_OK)]
    if os.geteuid() != 0:
        print("SKIPPED: the test starts slurmd, which must run as root; it runs as uid "
              f"{os.geteuid()}")
        sys.exit(SKIP)
    if missing:
        print(f"SKIPPED: {', '.join(missing)} not installed (Debian: slurmctld slurmd "
              "slurm-client munge; scripts/setup.sh installs them)")
        sys.exit(SKIP)
    os.environ["PATH"] += os.pathsep + "/usr/sbin"

    def stop(sig, _frame):
        raise Stopped(f"signal {sig}")
    signal.signal(signal.SIGTERM, stop)
    libc().prctl(36, 1)          # PR_SET_CHILD_SUBREAPER: daemonised orphans stay ours
    tc.fresh_dir(args.work)
    logs = tc.fresh_dir(os.path.join(args.work, "daemons"))
    tmp = tempfile.mkdtemp(prefix="salpipe-slurm-")
    cl = Cluster(tmp, logs)
    skipped = None
    try:
        try:
            cl.start()
        except Skip as e:
            skipped = str(e)
        if skipped is None:
            tc.run_main(lambda: test(args, cl))
    except SystemExit as e:
        if e.code == 0:
            for d in ("img_tl", "img_sc"):
                shutil.rmtree(os.path.join(args.work, d), ignore_errors=True)
            for root, _dirs, files in os.walk(args.work):
                for f in files:
                    if f.endswith(".h5"):
                        os.remove(os.path.join(root, f))
        else:
            print(f"    (daemon logs in {logs})")
        raise
    finally:
        try:
            cl.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"SKIPPED: SLURM does not start here: {skipped}\n    (logs in {logs})")
    sys.exit(SKIP)


if __name__ == "__main__":
    main()
