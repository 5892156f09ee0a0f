#!/usr/bin/python3
"""Distinct trajectories per proxy-hour: flat collection against trajectory trees (each root
and its B branches share its first k steps), the same M trajectories on the same ranks.

    tools/bench/tree_throughput.py [--trajectories 20] [--branches 4] [--horizon 8]
                                   [--workers 2] [--repeat 2] [--config configs/demo.ini]

A proxy-hour is an hour of one worker slot training and evaluating (the workers' own
seconds in the store, copied rows not counted); the wall-clock figure also counts the
learner, start-up and the roots' state files. k is half the horizon."""
import os
import shutil
import tempfile
import time

import h5py
import numpy as np

from trajectory_throughput import arguments, prepared_base, run  # the same set-up and mpirun environment


def proxy_cost(store):
    """(complete trajectories, re-weighting steps trained, worker seconds): a branch costs its
    own rows only."""
    with h5py.File(store, "r", swmr=True) as f:
        e = {k: f["episodes/" + k][()] for k in ("status", "start", "length")}
        parent = f["episodes/parent"][()] if "episodes/parent" in f else np.full(len(e["start"]), -1)
        shared = f["episodes/branch_step"][()] if "episodes/branch_step" in f else np.zeros(len(e["start"]), int)
        wall = f["infos/wall_seconds"][()]
    done = np.flatnonzero(e["status"] == 1)
    total = 0.0
    steps = int(e["length"][done].sum() - np.maximum(shared[done], 0)[parent[done] >= 0].sum())
    for i in done:
        last = int(e["start"][i] + e["length"][i] - 1)
        total += float(wall[last])
        if parent[i] >= 0:
            total -= float(wall[int(e["start"][i] + shared[i] - 1)])
    return len(done), steps, total


def main():
    a = arguments([("--trajectories", {"type": int, "default": 20}), ("--branches", {"type": int, "default": 4}),
                   ("--repeat", {"type": int, "default": 2})])
    work = tempfile.mkdtemp(prefix="dma-trees-")
    try:
        orch, common, base = prepared_base(a, work, f"--collect.trajectories={a.trajectories}")
        kinds = {"flat": [], "tree": [f"--collect.branches={a.branches}"]}
        # Alternating orders (flat tree, tree flat, ...) so a machine whose load drifts during
        # the benchmark favours neither.
        order = [k for r in range(a.repeat) for k in (("flat", "tree") if r % 2 == 0 else ("tree", "flat"))]
        totals = {k: np.zeros(4) for k in kinds}  # trajectories, steps, proxy-seconds, wall seconds
        for r, name in enumerate(order):
            d = os.path.join(work, f"{name}-{r}")
            os.makedirs(d)
            shutil.copy(base, d)
            t0 = time.time()
            run(["mpirun", "-n", str(a.workers + 1), "--oversubscribe", orch, *common, f"--run.dir={d}",
                 "--mode", "collect", *kinds[name]])
            totals[name] += [*proxy_cost(os.path.join(d, "store.h5")), time.time() - t0]
        rows = [(name, *totals[name]) for name in kinds]
        print(f"{a.trajectories} trajectories, horizon {a.horizon}, k = {a.horizon // 2}, B = {a.branches}, "
              f"{a.workers} workers x 1 slot, {os.path.basename(a.config)}, {a.repeat} collection(s) of each")
        print("| collection | trajectories | steps trained | proxy-seconds | trajectories / proxy-hour | wall s "
              "| trajectories / hour |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, n, steps, seconds, wall in rows:
            print(f"| {name} | {n:.0f} | {steps:.0f} | {seconds:.1f} | {3600 * n / seconds:.0f} | {wall:.1f} "
                  f"| {3600 * n / wall:.0f} |")
        (_, nf, tf, sf, wf), (_, nt, tt, st, wt) = rows
        print(f"tree / flat: {(nt / tt) / (nf / tf):.2f}x per step trained, {(nt / st) / (nf / sf):.2f}x per "
              f"proxy-hour, {(nt / wt) / (nf / wf):.2f}x per wall hour")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
