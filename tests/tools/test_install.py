#!/usr/bin/python3
"""`cmake --install` into a scratch prefix (cmake/install.cmake).

    test_install.py --cmake CMAKE --build BUILD_DIR --prefix DIR --version X.Y.Z

Checks: salpipe in P/bin and `P/bin/salpipe --version` prints the project version;
the user scripts in P/share/salpipe/scripts, the Python ones and salpipe.sbatch
executable; every configs/*.toml in P/share/salpipe/configs; README.md and every
docs/*.md in P/share/doc/salpipe; the installed salview.py runs (--help); the installed
salpipe.sbatch finds P/bin/salpipe by itself (no SALPIPE_BIN, no salpipe on PATH).
"""
import argparse
import glob
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toolcheck as tc  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    for k in ("cmake", "build", "prefix", "version"):
        ap.add_argument("--" + k, required=True)
    args = ap.parse_args()
    P = os.path.abspath(args.prefix)

    def body():
        tc.fresh_dir(P)
        r = tc.run([args.cmake, "--install", args.build, "--prefix", P])
        tc.require(r.rc == 0, "cmake --install exits 0", f"exit {r.rc}")

        exe = os.path.join(P, "bin", "salpipe")
        tc.require(os.access(exe, os.X_OK), "P/bin/salpipe, executable")
        r = tc.run([exe, "--version"])
        tc.check(r.rc == 0 and r.out.strip() == f"salpipe {args.version}",
                 f"P/bin/salpipe --version prints 'salpipe {args.version}'", r.out.strip())

        sdir = os.path.join(P, "share", "salpipe", "scripts")
        programs = ["export_torchvision.py", "salview.py", "merge_parts.py", "salpipe.sbatch"]
        if os.path.exists(os.path.join(tc.SCRIPTS, "train_demo_model.py")):
            programs.append("train_demo_model.py")
        for f in programs:
            p = os.path.join(sdir, f)
            tc.check(os.path.isfile(p) and os.access(p, os.X_OK),
                     f"share/salpipe/scripts/{f}, executable")
        tc.check(os.path.isfile(os.path.join(sdir, "read_saliency.m")),
                 "share/salpipe/scripts/read_saliency.m")
        tc.check(os.path.isfile(os.path.join(sdir, "export_ops.py")),
                 "share/salpipe/scripts/export_ops.py (export_torchvision.py imports it)")

        for src in sorted(glob.glob(os.path.join(tc.REPO, "configs", "*.toml"))):
            name = os.path.basename(src)
            tc.check(os.path.isfile(os.path.join(P, "share", "salpipe", "configs", name)),
                     f"share/salpipe/configs/{name}")
        ddir = os.path.join(P, "share", "doc", "salpipe")
        docs = ["README.md"] + sorted(os.path.basename(p) for p in
                                      glob.glob(os.path.join(tc.REPO, "docs", "*.md")))
        missing = [d for d in docs if not os.path.isfile(os.path.join(ddir, d))]
        tc.check(not missing, f"share/doc/salpipe has README.md and docs/*.md ({len(docs)})",
                 ", ".join(missing))

        r = tc.run([os.path.join(sdir, "salview.py"), "--help"])
        tc.check(r.rc == 0 and "salview" in r.out, "the installed salview.py runs (--help)")
        r = tc.run([os.path.join(sdir, "merge_parts.py"), "--help"])
        tc.check(r.rc == 0 and "part" in r.out, "the installed merge_parts.py runs (--help)")

        # No salpipe on PATH: the installed job script must find P/bin/salpipe itself.
        path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                               if d and not os.path.exists(os.path.join(d, "salpipe")))
        env = tc.child_env({"PATH": path, "SALPIPE_RANKS": "1"}, drop=("SALPIPE_BIN",))
        tc.require(shutil.which("mpirun", path=path), "mpirun on PATH")
        r = tc.run([os.path.join(sdir, "salpipe.sbatch"), "--version"], env=env, cwd=P)
        tc.check(r.rc == 0 and f"mpirun -n 1 {exe} --version" in r.err and
                 f"salpipe {args.version}" in r.out,
                 "the installed salpipe.sbatch runs P/bin/salpipe", f"exit {r.rc}")

    tc.run_main(body)


if __name__ == "__main__":
    main()
