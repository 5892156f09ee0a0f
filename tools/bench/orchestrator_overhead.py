#!/usr/bin/python3
"""Learner overhead per round (policy decisions + packing + store writes and flush, i.e.
everything the learner does besides waiting for workers) and its share of the round's wall
time, for 2..32 MPI ranks (oversubscribed) with the tiny proxy.

    tools/bench/orchestrator_overhead.py [--ranks 2,4,8,16,32] [--build build]

Reads the "learner overhead:" line dma_orchestrate prints at the end of each episode phase."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")
LINE = re.compile(r"learner overhead: ([\d.]+) ms/round \(policy ([\d.]+), store ([\d.]+)\) = ([\d.]+)% of ([\d.]+) ms/round")


def run(cmd, **kw):
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"orchestrator_overhead: {' '.join(cmd[:6])}... failed:\n{p.stdout}{p.stderr}")
    return p.stdout + p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", default="2,4,8,16,32")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--horizon", type=int, default=8)
    a = ap.parse_args()
    bindir = os.path.join(a.build, "bin")
    work = tempfile.mkdtemp(prefix="dma-overhead-")
    try:
        space = os.path.join(work, "data.space")
        run([os.path.join(bindir, "dma_prepare"), "demo", "--out", space, "--categories", "computers,food,law,science",
             "--source-rows", "64", "--target-train-rows", "24", "--target-eval-rows", "8", "--bench-problems", "8"])
        common = ["--config", os.path.join(ROOT, "configs", "test-tiny.ini"), f"--data.space={space}",
                  f"--train.horizon={a.horizon}", "--collect.policies=random:0.5,online-eg:0.5"]
        run([os.path.join(bindir, "dma_orchestrate"), *common, f"--run.dir={work}/base", "--mode", "pretrain"])
        print(f"{'ranks':>5} {'workers':>7} {'learner ms/round':>16} {'policy ms':>9} {'store ms':>8} "
              f"{'round ms':>9} {'share %':>8} {'ms/round/worker':>15}")
        for n in [int(x) for x in a.ranks.split(",")]:
            d = os.path.join(work, f"r{n}")
            os.makedirs(d)
            shutil.copy(os.path.join(work, "base", "base.pt"), d)
            out = run(["mpirun", "-n", str(n), "--oversubscribe", os.path.join(bindir, "dma_orchestrate"), *common,
                       f"--run.dir={d}", "--mode", "collect", f"--collect.trajectories={n - 1}"], timeout=1800)
            m = LINE.search(out)
            if not m:
                sys.exit(f"orchestrator_overhead: no 'learner overhead' line in the output of {n} ranks:\n{out}")
            busy, pol, store, share, wall = (float(x) for x in m.groups())
            print(f"{n:>5} {n - 1:>7} {busy:>16.3f} {pol:>9.3f} {store:>8.3f} {wall:>9.1f} {share:>8.3f} "
                  f"{busy / (n - 1):>15.4f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
