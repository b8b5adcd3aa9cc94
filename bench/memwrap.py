"""Runs a command and records its peak memory, for one MPI rank of scripts/bench.sh.

    mpirun -n N python3 bench/memwrap.py OUTPREFIX COMMAND ARGS...

Writes OUTPREFIX.RANK.json (RANK from OMPI_COMM_WORLD_RANK, else 0) with:
  vmhwm_kb      peak resident set size (the kernel's VmHWM, via wait4's ru_maxrss);
                counts every page the rank touched, including pages it shares with
                other ranks (an MPI-3 shared-memory window, the mapped model file)
  peak_pss_kb   peak proportional set size, sampled every 50 ms from
                /proc/PID/smaps_rollup: a page shared by k processes counts 1/k, so
                the sum over ranks is the node's real footprint
  peak_anon_kb, peak_shmem_kb  peaks of the private (anonymous) and shared-memory
                parts of the resident set, sampled the same way
and exits with the command's exit status.
"""
import json
import os
import subprocess
import sys
import threading


def rollup(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if v.strip().endswith("kB"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("RssAnon", "RssShmem", "RssFile"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    prefix, cmd = sys.argv[1], sys.argv[2:]
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMIX_RANK", "0")))
    child = subprocess.Popen(cmd)
    peak = {"Pss": 0, "RssAnon": 0, "RssShmem": 0, "Rss": 0}
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            r = rollup(child.pid)
            for k in peak:
                peak[k] = max(peak[k], r.get(k, 0))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, status, ru = os.wait4(child.pid, 0)
    done.set()
    th.join()
    code = os.waitstatus_to_exitcode(status)
    with open(f"{prefix}.{rank}.json", "w") as f:
        json.dump({"rank": rank, "vmhwm_kb": ru.ru_maxrss, "peak_pss_kb": peak["Pss"],
                   "peak_rss_sampled_kb": peak["Rss"], "peak_anon_kb": peak["RssAnon"],
                   "peak_shmem_kb": peak["RssShmem"], "exit": code}, f)
        f.write("\n")
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
