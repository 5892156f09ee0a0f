#!/usr/bin/python3
"""Checks dma_replay exports against their store, reading both with h5py as the offline-RL
ecosystem would. The export must hold exactly the store's complete episodes, in file order.

Usage: check_exports.py STORE d4rl FILE | minari DIR | csv FILE
Exit 0 with "ok: ...", or 1 with one line naming the first difference.
"""
import csv
import json
import sys

import h5py
import numpy as np

sys.path.insert(0, sys.path[0] + "/../../tools/analysis")
from dma_store import Store  # noqa: E402


def need(cond, msg):
    if not cond:
        raise AssertionError(msg)


def complete_rows(s):
    idx = s.select(status="complete")
    return idx, s.transitions(status="complete")


def check_d4rl(s, path):
    idx, t = complete_rows(s)
    with h5py.File(path, "r") as f:
        n = len(t["rewards"])
        for k in ("observations", "next_observations", "actions", "rewards"):
            need(f[k].dtype == np.float32 and f[k].shape[0] == n, f"{k}: {f[k].dtype} {f[k].shape}, want {n} rows")
            need(np.array_equal(f[k][()], t[k]), f"{k} differs from the store")
        for k in ("terminals", "timeouts"):
            need(f[k].dtype == np.bool_, f"{k} is {f[k].dtype}, not bool")
        need(not f["terminals"][()].any(), "terminals are not all False")
        ends = np.cumsum(s.episodes["length"][idx]) - 1
        want = np.zeros(n, dtype=bool)
        want[ends] = True
        need(np.array_equal(f["timeouts"][()], want), "timeouts are not on each episode's last row")
        for k in ("episode_id", "step", "eval_loss", "source_score", "target_score", "train_tokens"):
            need(np.array_equal(f["infos/" + k][()], t[k]), f"infos/{k} differs")
        need(f["infos/balanced_score"].shape == (n,), "infos/balanced_score missing")
        need(f["observations"].compression == "gzip", "observations are not gzip-compressed")
        need([x.decode() for x in f["metadata/domain_names"][()]] == s.domain_names, "metadata/domain_names")
        need(np.array_equal(f["metadata/episodes/id"][()], s.episodes["id"][idx]), "metadata/episodes/id")
        if "parent" in s.episodes:
            need(np.array_equal(f["metadata/episodes/parent"][()], s.episodes["parent"][idx]),
                 "metadata/episodes/parent")
    return f"d4rl {n} rows, {len(idx)} episodes"


def check_minari(s, path):
    idx, _ = complete_rows(s)
    meta = json.load(open(path + "/data/metadata.json"))
    total = int(np.sum(s.episodes["length"][idx]))
    need(meta["total_episodes"] == len(idx) and meta["total_steps"] == total, f"metadata.json counts {meta}")
    need(meta["data_format"] == "hdf5", "data_format")
    need(meta["minari_version"] == "0.5.0", f"minari_version {meta['minari_version']!r}: Minari wants one release it knows")
    obs_space, act_space = json.loads(meta["observation_space"]), json.loads(meta["action_space"])
    need(obs_space["type"] == "Box" and obs_space["shape"] == [len(s.obs_layout)], "observation_space")
    need(act_space["shape"] == [len(s.domain_names)] and act_space["high"][0] == 1.0, "action_space")
    with h5py.File(path + "/data/main_data.hdf5", "r") as f:
        need(len(f.keys()) == len(idx), f"{len(f.keys())} episode groups, want {len(idx)}")
        for k, i in enumerate(idx):
            g = f[f"episode_{k}"]
            e = s.episode(int(s.episodes["id"][i]))
            t = len(e["rewards"])
            need(g.attrs["id"] == k and g.attrs["total_steps"] == t, f"episode_{k} attributes")
            need(g.attrs["dma_episode_id"] == s.episodes["id"][i], f"episode_{k} dma_episode_id")
            if "parent" in s.episodes:
                need(g.attrs["dma_parent"] == s.episodes["parent"][i], f"episode_{k} dma_parent")
            need(g["observations"].shape == (t + 1, len(s.obs_layout)), f"episode_{k} observations not T+1")
            need(np.array_equal(g["observations"][:t], e["observations"]), f"episode_{k} observations differ")
            need(np.array_equal(g["observations"][t], e["next_observations"][-1]), f"episode_{k} last observation")
            need(np.array_equal(g["actions"][()], e["actions"]), f"episode_{k} actions")
            need(np.array_equal(g["rewards"][()], e["rewards"]), f"episode_{k} rewards")
            need(g["truncations"].dtype == np.bool_ and g["truncations"][-1] and not g["truncations"][:-1].any(),
                 f"episode_{k} truncations")
            need(not g["terminations"][()].any(), f"episode_{k} terminations")
            need(g["infos/eval_loss"].shape[0] == t + 1, f"episode_{k} infos are not T+1")
            need(np.array_equal(g["infos/eval_loss"][0], s.base_eval_loss), f"episode_{k} reset infos")
    return f"minari {len(idx)} episodes, {total} steps"


def check_csv(s, path):
    _, t = complete_rows(s)
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    need(len(rows) == len(t["rewards"]), f"{len(rows)} csv rows, want {len(t['rewards'])}")
    for r, i in ((rows[0], 0), (rows[-1], len(rows) - 1)):
        need(int(r["episode_id"]) == t["episode_id"][i] and int(r["step"]) == t["step"][i], "csv row ids")
        need(np.float32(r["reward"]) == t["rewards"][i], "csv reward differs")
        for d, name in enumerate(s.domain_names):
            need(np.float32(r["weight." + name]) == t["actions"][i, d], "csv weight differs")
    return f"csv {len(rows)} rows"


def main():
    store, kind, out = sys.argv[1:4]
    try:
        with Store(store) as s:
            print("ok: " + {"d4rl": check_d4rl, "minari": check_minari, "csv": check_csv}[kind](s, out))
        return 0
    except (AssertionError, OSError, KeyError, ValueError) as err:
        print(f"check_exports: {kind}: {err}".replace("\n", " "))
        return 1


if __name__ == "__main__":
    sys.exit(main())
