"""Shared helpers of the pipeline tests (tests/pipeline.cmake): running salpipe alone or
under mpirun, writing configs, reading the output file, and checks that print what
they compare and count failures instead of stopping at the first one.

Every driver parses the same options (see `parser()`), calls `check(...)` for each
assertion and ends with `finish()`, which exits 1 when any check failed. A problem
that makes the remaining checks meaningless (salpipe crashed, no output file) raises
`Fatal`, which `main_guard` turns into a loud failure.
"""
import argparse
import atexit
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

# Open MPI refuses root without these; set here, for the test processes only.
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}

_failures = []
_checks = 0


class Fatal(Exception):
    """A failure after which the test's remaining checks mean nothing."""


def check(cond, what, detail=""):
    """Records one assertion; prints `ok` or `FAIL` with what was checked."""
    global _checks
    _checks += 1
    tag = "ok  " if cond else "FAIL"
    print(f"  {tag} {what}" + (f"  [{detail}]" if detail else ""), flush=True)
    if not cond:
        _failures.append(what + (f" [{detail}]" if detail else ""))
    return bool(cond)


def require(cond, what, detail=""):
    """check(), but a failure ends the test."""
    if not check(cond, what, detail):
        raise Fatal(what)


def finish():
    print()
    if _failures:
        print(f"FAILED: {len(_failures)} failure(s) in {_checks} checks:")
        for f in _failures:
            print("  -", f)
        sys.exit(1)
    print(f"PASSED: all {_checks} checks")
    sys.exit(0)


def main_guard(fn):
    """Runs fn(); a Fatal or any other exception fails the test loudly."""
    try:
        fn()
    except Fatal as e:
        print(f"\nFATAL: {e}; the remaining checks were skipped")
        if not _failures:
            _failures.append(f"fatal: {e}")
    except Exception:
        import traceback
        traceback.print_exc()
        _failures.append("uncaught exception (traceback above)")
    finish()


class _Parser(argparse.ArgumentParser):
    """Makes every path option absolute (configs live in other directories)."""

    def parse_args(self, *a, **k):
        args = super().parse_args(*a, **k)
        for name in ("salpipe", "model", "tiny", "data", "work"):
            if getattr(args, name, None):
                setattr(args, name, os.path.abspath(getattr(args, name)))
        return args


def parser(doc):
    ap = _Parser(description=doc.split("\n")[0])
    ap.add_argument("--salpipe", required=True, help="the salpipe executable")
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--model", help="alexnet_seed0.h5 (model_alexnet fixture)")
    ap.add_argument("--tiny", help="tiny/good.h5 (model_tiny fixture): a 3x7x7 network, "
                    "for tests where the model does not matter")
    ap.add_argument("--data", help="directory made by make_data.py")
    ap.add_argument("--work", required=True, help="scratch directory, emptied first")
    return ap


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


# ---- configs ---------------------------------------------------------------------------

def q(s):
    """A TOML basic string."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_value(v):
    if isinstance(v, str):
        return q(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return str(v)


def write_config(path, model, images, targets, output, methods=("vanilla", "guided"),
                 run=None, output_extra=None, preprocess=None):
    """Writes a config file. images: {"files": [...]} or {"list": "x.txt"}, etc.
    targets: [(layer, units)] with units a list or a "a-b" string. Returns path."""
    lines = ["# written by tests/pipeline", "[model]", f"path = {q(model)}", "",
             "[images]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in images.items()]
    for layer, units in targets:
        lines += ["", "[[targets]]", f"layer = {q(layer)}", f"units = {toml_value(units)}"]
    lines += ["", "[saliency]", f"methods = {toml_value(list(methods))}"]
    if preprocess:
        lines += ["", "[preprocess]"] + [f"{k} = {toml_value(v)}" for k, v in preprocess.items()]
    lines += ["", "[output]", f"path = {q(output)}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in (output_extra or {}).items()]
    if run:
        lines += ["", "[run]"] + [f"{k} = {toml_value(v)}" for k, v in run.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# ---- running salpipe -------------------------------------------------------------------

MANY_IMAGES = 12  # make_data.py's DATA/many


def many_config(args, name, targets, batch):
    """(config, output) under args.work for the MANY_IMAGES images of DATA/many, with
    vanilla and guided maps of `targets`, `batch` images per forward pass."""
    many = os.path.join(args.data, "many")
    images = sorted(os.path.join(many, n) for n in os.listdir(many))
    require(len(images) == MANY_IMAGES, f"{MANY_IMAGES} images in {many}", f"{len(images)}")
    out = os.path.join(args.work, f"{name}.h5")
    cfg = write_config(os.path.join(args.work, f"{name}.toml"), args.model,
                       {"files": images}, targets, out, ["vanilla", "guided"],
                       run={"batch": batch})
    return cfg, out


def command(args, cfg_args, ranks=None):
    """salpipe alone (ranks None) or under mpiexec -n ranks (--oversubscribe past 2)."""
    exe = [args.salpipe] + list(cfg_args)
    if ranks is None:
        return exe
    over = ["--oversubscribe"] if ranks > 2 else []
    return [args.mpiexec, "-n", str(ranks)] + over + exe


def env(extra=None):
    e = dict(os.environ)
    e.update(MPI_ENV)
    e.update(extra or {})
    return e


class Result:
    def __init__(self, cmd, rc, out, err, seconds):
        self.cmd, self.rc, self.out, self.err, self.seconds = cmd, rc, out, err, seconds

    def show(self):
        print(f"    $ {' '.join(self.cmd)}\n    exit {self.rc} after {self.seconds:.1f} s")
        for name, text in (("stdout", self.out), ("stderr", self.err)):
            if text.strip():
                body = text.strip().splitlines()
                if len(body) > 40:
                    body = body[:20] + ["    ..."] + body[-20:]
                print(f"    --- {name}:\n" + "\n".join("      " + l for l in body))


def salpipe(args, cfg_args, ranks=None, timeout=300, show=True, preexec=None,
            extra_env=None):
    """Runs salpipe to the end; returns a Result (printed when show). preexec runs in
    the child before exec (e.g. to set a resource limit); extra_env adds variables."""
    cmd = command(args, cfg_args, ranks)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env(extra_env), capture_output=True, text=True,
                           timeout=timeout, preexec_fn=preexec)
    except subprocess.TimeoutExpired as e:
        raise Fatal(f"{' '.join(cmd)} still running after {timeout} s") from e
    r = Result(cmd, p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)
    if show:
        r.show()
    return r


_live_jobs = set()


def _kill_live_jobs(signum=None, frame=None):
    """Kills the background jobs still running (they have their own session, so a
    kill of this script alone would leave them behind)."""
    for job in list(_live_jobs):
        job.close()
    if signum is not None:
        print(f"\nFATAL: signal {signum}; background jobs killed", flush=True)
        sys.exit(1)


atexit.register(_kill_live_jobs)
signal.signal(signal.SIGTERM, _kill_live_jobs)
signal.signal(signal.SIGINT, _kill_live_jobs)


class Job:
    """A salpipe run in the background, in its own session so the whole job (mpirun,
    its daemons and every rank) can be signalled or killed together."""

    def __init__(self, args, cfg_args, ranks=None, log_prefix=None):
        self.cmd = command(args, cfg_args, ranks)
        self.log_prefix = log_prefix
        self.out = open(log_prefix + ".out", "w+")
        self.err = open(log_prefix + ".err", "w+")
        self.t0 = time.perf_counter()
        self.p = subprocess.Popen(self.cmd, env=env(), stdout=self.out, stderr=self.err,
                                  start_new_session=True)
        _live_jobs.add(self)

    def elapsed(self):
        return time.perf_counter() - self.t0

    def running(self):
        return self.p.poll() is None

    def descendants(self):
        """pids of every process below the job's leader (mpirun's ranks and helpers)."""
        children = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
        out, todo = [], [self.p.pid]
        while todo:
            pid = todo.pop()
            for c in children.get(pid, []):
                out.append(c)
                todo.append(c)
        return out

    def salpipe_pids(self):
        pids = []
        for pid in [self.p.pid] + self.descendants():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "salpipe":
                        pids.append(pid)
            except OSError:
                pass
        return pids

    def kill9(self):
        """SIGKILL to the leader, every descendant and the session's process group."""
        pids = [self.p.pid] + self.descendants()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()
        gone = wait_gone(pids, 10.0)
        require(gone, "every process of the killed job is gone", f"pids {pids}")
        return pids

    def signal_ranks(self, sig):
        """A signal to every salpipe process (as SLURM does to a job step)."""
        pids = self.salpipe_pids()
        for pid in pids:
            os.kill(pid, sig)
        return pids

    def signal_leader(self, sig):
        """A signal to the job's first process (mpiexec, or salpipe run alone)."""
        os.kill(self.p.pid, sig)
        return [self.p.pid]

    def wait(self, timeout=300):
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise Fatal(f"{' '.join(self.cmd)} still running after {timeout} s; killed")
        self.out.seek(0)
        self.err.seek(0)
        r = Result(self.cmd, rc, self.out.read(), self.err.read(), self.elapsed())
        self.out.close()
        self.err.close()
        return r

    def close(self):
        _live_jobs.discard(self)
        if self.running():
            self.kill9()
        for f in (self.out, self.err):
            if not f.closed:
                f.close()


def wait_gone(pids, timeout):
    """True once none of pids is alive (zombies count as gone)."""
    end = time.time() + timeout
    while time.time() < end:
        alive = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    alive.append(pid)
            except OSError:
                pass
        if not alive:
            return True
        time.sleep(0.05)
    return False


# ---- the output file -------------------------------------------------------------------

def strings(ds):
    """A vlen string dataset as a list of str."""
    return [s for s in ds.asstr()[()]] if ds.shape else [ds.asstr()[()]]


def read_output(path):
    """The datasets of an output file as numpy arrays and lists of str."""
    import h5py
    with h5py.File(path, "r") as f:
        d = {"saliency": f["saliency"][()], "activation": f["activation"][()],
             "status": f["status"][()]}
        for k in ("image", "target", "target_layer", "method", "error"):
            d[k] = strings(f[k])
        d["target_unit"] = f["target_unit"][()]
    return d


def peek_status(path, scratch):
    """/status of a file another process is writing, read from a copy (the writer may
    hold HDF5's lock or be mid-write; then None)."""
    import h5py
    try:
        shutil.copyfile(path, scratch)
        with h5py.File(scratch, "r", locking=False) as f:
            return f["status"][()]
    except Exception:
        return None


def same_bits(a, b):
    """(identical, detail): shapes, dtypes and every byte (NaN patterns included)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False, f"{a.dtype}{a.shape} vs {b.dtype}{b.shape}"
    ua = np.ascontiguousarray(a).view(np.uint8).reshape(a.shape + (-1,))
    ub = np.ascontiguousarray(b).view(np.uint8).reshape(b.shape + (-1,))
    diff = np.any(ua != ub, axis=-1)
    n = int(diff.sum())
    if n == 0:
        return True, f"{a.size} values identical"
    idx = tuple(int(i) for i in np.argwhere(diff)[0])
    return False, f"{n} of {a.size} values differ, first at {idx}: {a[idx]!r} vs {b[idx]!r}"


def check_same_outputs(a, b, what):
    for k in ("saliency", "activation"):
        ok, detail = same_bits(a[k], b[k])
        check(ok, f"{what}: /{k} bit-identical", detail)
