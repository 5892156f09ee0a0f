#!/usr/bin/python3
"""Checks that a dma trajectory store has the layout of DESIGN §5, reading it the way
D4RL-style loaders do (h5py, SWMR mode, so it works on a live or killed run).

Usage: /usr/bin/python3 tools/analysis/check_store.py STORE [--expect-complete N]
                                                            [--expect-written N]
Prints "ok: ..." and exits 0, or prints one line "check_store: STORE: reason" and exits 1.
"""
import argparse
import sys

import h5py
import numpy as np

FLAT = {  # name: (dtype, width) with width "obs", "D" or None for 1-D
    "observations": ("float32", "obs"),
    "next_observations": ("float32", "obs"),
    "actions": ("float32", "D"),
    "rewards": ("float32", None),
    "terminals": ("uint8", None),
    "timeouts": ("uint8", None),
    "infos/episode_id": ("int64", None),
    "infos/step": ("int32", None),
    "infos/eval_loss": ("float32", "D"),
    "infos/source_score": ("float32", None),
    "infos/target_score": ("float32", None),
    "infos/math_accuracy": ("float32", None),
    "infos/train_tokens": ("int64", None),
    "infos/wall_seconds": ("float32", None),
}
EPISODES = {"id": "int64", "seed": "uint64", "start": "int64", "length": "int32",
            "status": "uint8", "rank": "int32", "return": "float32"}
RUNNING, COMPLETE = 0, 1


class Bad(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Bad(msg)


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def check_root(f):
    need(text(f.attrs.get("format", "")) == "dma-trajectory-store", "root attribute format is not dma-trajectory-store")
    for a in ("format_version", "domain_names", "domain_fields", "obs_layout", "horizon", "config", "created_utc"):
        need(a in f.attrs, f"root attribute {a} is missing")
    names = [text(x) for x in f.attrs["domain_names"]]
    fields = [text(x) for x in f.attrs["domain_fields"]]
    need(len(names) == len(fields) and set(fields) <= {"source", "target"}, "domain_fields do not match domain_names")
    return len(names), len(f.attrs["obs_layout"]), int(f.attrs["horizon"])


def check_shapes(f, d, obs_dim):
    n = None
    for name, (dtype, width) in FLAT.items():
        need(name in f, f"dataset /{name} is missing")
        ds = f[name]
        need(ds.dtype == np.dtype(dtype), f"/{name} has dtype {ds.dtype}, expected {dtype}")
        want = {None: 1, "obs": 2, "D": 2}[width]
        need(ds.ndim == want, f"/{name} has {ds.ndim} dimensions, expected {want}")
        if width:
            need(ds.shape[1] == {"obs": obs_dim, "D": d}[width], f"/{name} has width {ds.shape[1]}")
        n = ds.shape[0] if n is None else min(n, ds.shape[0])
    for name, dtype in EPISODES.items():
        need(f"episodes/{name}" in f, f"dataset /episodes/{name} is missing")
        need(f["episodes/" + name].dtype == np.dtype(dtype), f"/episodes/{name} has dtype {f['episodes/' + name].dtype}")
    need(f["episodes/policy"].dtype.kind == "S", "/episodes/policy is not a fixed-length string")
    return n


def check_episode(i, e, cols, horizon):
    start, length, status = int(e["start"][i]), int(e["length"][i]), int(e["status"][i])
    need(0 <= length <= horizon and status <= 3 and start % horizon == 0, f"episode row {i} is malformed")
    step = cols["step"][start:start + length]
    if status == RUNNING:  # a live writer may show the length before the rows
        step = step[step >= 0]
    length_seen = len(step)
    need(np.array_equal(step, np.arange(length_seen)), f"episode {e['id'][i]}: infos/step is not 0..{length_seen - 1}")
    need(np.all(cols["episode_id"][start:start + length_seen] == e["id"][i]), f"episode {e['id'][i]}: wrong episode_id")
    acts = cols["actions"][start:start + length_seen]
    need(np.all(acts >= -1e-6) and np.allclose(acts.sum(axis=1), 1.0, atol=1e-4),
         f"episode {e['id'][i]}: an action row is not on the simplex")
    to = cols["timeouts"][start:start + length_seen]
    if status != RUNNING and length > 0:
        need(to[-1] == 1 and not np.any(to[:-1]), f"episode {e['id'][i]}: timeouts is not 1 on the last step only")
    rest = cols["step"][start + length:start + horizon]
    need(status == RUNNING or np.all(rest == -1), f"episode {e['id'][i]}: rows past its length were written")
    return length_seen


def check_trees(f, e, n_eps):
    """A tree branch's first branch_step rows are copies of its ended parent's (stores written
    before trees lack /episodes/parent and hold none)."""
    if "episodes/parent" not in f:
        return 0
    parent, branch_step = f["episodes/parent"][:n_eps], f["episodes/branch_step"][:n_eps]
    ended = {int(e["id"][i]): i for i in range(n_eps) if int(e["status"][i]) in (1, 2)}
    branches = 0
    for i in range(n_eps):
        if parent[i] < 0 or int(e["status"][i]) not in (1, 2):
            continue
        need(int(parent[i]) in ended, f"episode {e['id'][i]}: its parent {parent[i]} never ended")
        p, k = ended[int(parent[i])], int(branch_step[i])
        need(0 < k <= int(e["length"][p]), f"episode {e['id'][i]}: branch_step {k} outside its parent's rows")
        a, b = int(e["start"][i]), int(e["start"][p])
        for name in ("observations", "next_observations", "actions", "rewards", "infos/eval_loss"):
            need(np.array_equal(f[name][a:a + k], f[name][b:b + k]),
                 f"episode {e['id'][i]}: /{name} of its first {k} rows differs from its parent's")
        branches += 1
    return branches


def check(path, expect_complete, expect_written):
    with h5py.File(path, "r", swmr=True) as f:
        d, obs_dim, horizon = check_root(f)
        n = check_shapes(f, d, obs_dim)
        e = {k: f["episodes/" + k][()] for k in EPISODES}
        cols = {"step": f["infos/step"][:n], "episode_id": f["infos/episode_id"][:n],
                "actions": f["actions"][:n], "timeouts": f["timeouts"][:n]}
        need(not np.any(f["terminals"][:n]), "terminals is not all 0")
        need(np.all(np.isfinite(f["rewards"][:n])), "rewards hold a non-finite value")
        n_eps = min(len(v) for v in e.values())
        written = 0
        for i in range(n_eps):
            need(int(e["start"][i]) + horizon <= n or int(e["status"][i]) == RUNNING,
                 f"episode row {i} lies past the {n} rows")
            written += check_episode(i, e, cols, horizon)
        complete = int(np.sum(e["status"][:n_eps] == COMPLETE))
        if expect_complete is not None:
            need(complete == expect_complete, f"{complete} complete episodes, expected {expect_complete}")
        if expect_written is not None:
            need(written == expect_written, f"{written} written rows, expected {expect_written}")
        statuses = np.bincount(e["status"][:n_eps], minlength=4)
        branches = check_trees(f, e, n_eps)
        return (f"ok: {n} rows, {n_eps} episodes (running {statuses[0]}, complete {statuses[1]}, "
                f"failed {statuses[2]}, interrupted {statuses[3]}), {written} written rows, D={d}, obs_dim={obs_dim}"
                + (f", {branches} tree branches" if branches else ""))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--expect-complete", type=int)
    p.add_argument("--expect-written", type=int)
    a = p.parse_args()
    try:
        print(check(a.store, a.expect_complete, a.expect_written))
        return 0
    except Bad as err:
        print(f"check_store: {a.store}: {err}")
    except (OSError, KeyError, ValueError) as err:
        print(f"check_store: {a.store}: cannot read: {err}".replace("\n", " "))
    return 1


if __name__ == "__main__":
    sys.exit(main())
