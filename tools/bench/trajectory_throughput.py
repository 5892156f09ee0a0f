#!/usr/bin/python3
"""Trajectories per hour: the same M trajectories run by one dma_orchestrate job (1 learner +
W workers that keep the base model and data loaded) and by a job-per-trajectory loop, as
RegMix and the paper's authors ran theirs (a fresh process for each trajectory that loads the
base checkpoint and the data; W such jobs at a time so both use the same cores).

    tools/bench/trajectory_throughput.py [--trajectories 8] [--workers 2] [--config configs/demo.ini]
"""
import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")


def run(cmd):
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"trajectory_throughput: {' '.join(cmd[:8])}... failed:\n{p.stdout}{p.stderr}")


def arguments(extra_options):
    """The options both throughput benchmarks take, plus `extra_options`, (name, kwargs) pairs."""
    ap = argparse.ArgumentParser()
    for name, kwargs in extra_options:
        ap.add_argument(name, **kwargs)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "demo.ini"))
    ap.add_argument("--horizon", type=int, default=8)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    return ap.parse_args()


def prepared_base(a, work, *extra):
    """Prepares the embedded default space in `work` and pre-trains its base there. Returns
    dma_orchestrate's path, the arguments every run shares, and the base checkpoint."""
    orch = os.path.join(a.build, "bin", "dma_orchestrate")
    space = os.path.join(work, "data.space")
    run([os.path.join(a.build, "bin", "dma_prepare"), "demo", "--out", space])
    common = ["--config", a.config, f"--data.space={space}", f"--train.horizon={a.horizon}", "--proxy.threads=1",
              *extra]
    run([orch, *common, f"--run.dir={work}/base", "--mode", "pretrain"])
    return orch, common, os.path.join(work, "base", "base.pt")


def main():
    a = arguments([("--trajectories", {"type": int, "default": 8})])
    work = tempfile.mkdtemp(prefix="dma-throughput-")
    try:
        orch, common, base = prepared_base(a, work, "--collect.policies=uniform:1")

        def run_dir(name):
            d = os.path.join(work, name)
            os.makedirs(d)
            shutil.copy(base, d)
            return d

        d = run_dir("orchestrated")
        t0 = time.time()
        run(["mpirun", "-n", str(a.workers + 1), "--oversubscribe", orch, *common, f"--run.dir={d}",
             "--mode", "collect", f"--collect.trajectories={a.trajectories}"])
        orchestrated = time.time() - t0

        def one_job(i):  # a fresh job per trajectory: process start, base and data loading included
            jd = run_dir(f"job{i}")
            run(["mpirun", "-n", "2", "--oversubscribe", orch, *common, f"--run.dir={jd}", "--mode", "collect",
                 "--collect.trajectories=1"])

        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(a.workers) as pool:
            list(pool.map(one_job, range(a.trajectories)))
        per_job = time.time() - t0
        print(f"trajectories: {a.trajectories}, horizon {a.horizon}, {a.workers} workers / {a.workers} concurrent jobs")
        print(f"dma_orchestrate (one job):   {orchestrated:8.1f} s  {3600 * a.trajectories / orchestrated:9.1f} trajectories/h")
        print(f"job per trajectory (loop):   {per_job:8.1f} s  {3600 * a.trajectories / per_job:9.1f} trajectories/h")
        print(f"ratio (dma_orchestrate / job-per-trajectory): {per_job / orchestrated:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
