#!/usr/bin/python3
"""dma_replay schedule: every format read back by an independent parser (json, csv, tomllib,
python3-yaml, Megatron's --data-path word list) agrees with the per-step mean and spread of
the policy's actions, computed here from the store with h5py; bad requests are one-line
errors that leave no file.
    check_schedules.py DMA_REPLAY MAKE_STORE WORKDIR"""
import csv
import json
import os
import shutil
import subprocess
import sys
import tomllib

import h5py
import numpy as np
import yaml

REPLAY, MAKE_STORE, WORK = sys.argv[1:4]
TOTAL, BATCH, PREFIX = 1_000_000, 4096, "/data/mix/"
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


def expected(store, policy):
    """(T, D) mean and sample std of the complete episodes' actions of `policy`; domain names."""
    with h5py.File(store, "r", swmr=True) as f:
        e = f["episodes"]
        names = [x.decode() if isinstance(x, bytes) else str(x) for x in f.attrs["domain_names"]]
        runs = []
        for i in range(e["id"].shape[0]):
            p = e["policy"][i]
            p = p.decode() if isinstance(p, bytes) else str(p)
            if e["status"][i] == 1 and p == policy:
                s, n = int(e["start"][i]), int(e["length"][i])
                runs.append(f["actions"][s:s + n].astype(np.float64))
    a = np.stack(runs)
    mean = a.mean(axis=0)
    return mean / mean.sum(axis=1, keepdims=True), a.std(axis=0, ddof=1), names, len(runs)


def schedule(store, fmt, *extra, out=None):
    out = out or os.path.join(WORK, "schedule." + fmt)
    p = subprocess.run([REPLAY, "schedule", store, "--policy", "random", "--format", fmt, "--total-tokens", str(TOTAL),
                        "--global-batch", str(BATCH), "--data-prefix", PREFIX, "--out", out, "--force", *extra],
                       capture_output=True, text=True, timeout=120)
    return p, out


def close(got, want, what, tol=1e-8):
    check(np.allclose(np.asarray(got, dtype=np.float64), want, rtol=0, atol=tol), f"{what}: {got} != {want}")


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    store = os.path.join(WORK, "store.h5")
    subprocess.run([MAKE_STORE, store, "12", "6", "5"], check=True, timeout=120)
    mean, std, names, runs = expected(store, "random")
    T = mean.shape[0]
    starts = [TOTAL * t // T for t in range(T)]
    check(runs >= 2, "the store holds fewer than two random episodes")
    texts = {}
    for fmt in ["json", "hf", "csv", "megatron", "megatron-json", "foundry", "torchtitan"]:
        p, out = schedule(store, fmt)
        check(p.returncode == 0, f"{fmt}: exit {p.returncode}: {p.stderr}")
        check("open-loop" in p.stdout, f"{fmt}: the command does not say the schedule is open-loop")
        texts[fmt] = open(out).read()
        check("do not react to your run" in texts[fmt], f"{fmt}: the file does not say it does not react to the run")

    doc = json.loads(texts["json"])
    check(doc["domains"] == names and doc["episodes"] == runs, "json: domains or episode count")
    close([s["weights"] for s in doc["stages"]], mean, "json weights")
    close([s["std"] for s in doc["stages"]], std, "json std", 1e-7)
    check([s["start_tokens"] for s in doc["stages"]] == starts, "json start_tokens")
    check([s["start_iteration"] for s in doc["stages"]] == [x // BATCH for x in starts], "json start_iteration")

    hf = json.loads(texts["hf"])
    for s in hf["stages"]:
        check(abs(sum(s["probabilities"]) - 1) < 1e-9, "hf: probabilities do not sum to 1")
    close([s["probabilities"] for s in hf["stages"]], mean, "hf probabilities")

    rows = list(csv.DictReader(line for line in texts["csv"].splitlines() if not line.startswith("#")))
    check(len(rows) == T * len(names), "csv: row count")
    close([[float(r["weight"]) for r in rows[t * len(names):(t + 1) * len(names)]] for t in range(T)], mean, "csv")
    check([r["domain"] for r in rows[:len(names)]] == names, "csv: domain column")

    blends = [line.split()[1:] for line in texts["megatron"].splitlines() if line.startswith("--data-path")]
    check(len(blends) == T, "megatron: one --data-path per stage")
    close([[float(w) for w in b[0::2]] for b in blends], mean, "megatron weights")
    check(all(b[1::2] == [PREFIX + n for n in names] for b in blends), "megatron: data paths")

    mj = json.loads(texts["megatron-json"])
    for split in ["train", "valid", "test"]:
        close([[float(w) for w in s["blend"][split][0::2]] for s in mj["stages"]], mean, f"megatron-json {split}")
    check(mj["stages"][0]["blend"]["train"][1::2] == [PREFIX + n for n in names], "megatron-json: data paths")

    fy = yaml.safe_load(texts["foundry"])["callbacks"]["curriculum_learning"]["schedule"]
    durations = [int(s["duration"].removesuffix("tok")) for s in fy]
    check(sum(durations) == TOTAL and durations[0] == starts[1], f"foundry: durations {durations}")
    close([[s["train_loader"]["dataset"]["streams"][n]["proportion"] for n in names] for s in fy], mean, "foundry")

    tt = tomllib.loads(texts["torchtitan"])["data"]["stages"]
    check([s["start_tokens"] for s in tt] == starts and [s["start_step"] for s in tt] == [x // BATCH for x in starts],
          "torchtitan: stage keys")
    close([[s["weights"][n] for n in names] for s in tt], mean, "torchtitan weights")

    # Refused: one line, non-zero exit, no file.
    for args, why in [(["--format", "parquet"], "is not a schedule format"),
                      (["--policy", "agent"], "holds no complete episode of policy 'agent'"),
                      (["--total-tokens", "0"], "needs --total-tokens N")]:
        out = os.path.join(WORK, "refused.out")
        cmd = [REPLAY, "schedule", store, "--policy", "random", "--format", "json", "--total-tokens", "10",
               "--out", out]
        for i in range(0, len(args), 2):
            cmd[cmd.index(args[i]) + 1] = args[i + 1]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        check(p.returncode != 0 and why in p.stderr and p.stderr.count("\n") == 1, f"{args}: {p.stderr!r}")
        check(not os.path.exists(out), f"{args}: left {out}")
    p = subprocess.run([REPLAY, "schedule", store, "--policy", "random", "--format", "json", "--total-tokens", "10",
                        "--out", os.path.join(WORK, "schedule.json")], capture_output=True, text=True, timeout=60)
    check(p.returncode != 0 and "exists: pass --force" in p.stderr, f"existing output: {p.stderr!r}")

    for f in failures:
        print("FAIL:", f)
    print(f"{T} stages x {len(names)} domains in 7 formats: {'ok' if not failures else 'FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
