#!/usr/bin/python3
"""dma_replay's exports read by the libraries their users load them with: Minari loads the
minari export by its dataset id and iterates its episodes; d3rlpy builds an MDPDataset from
the d4rl export and trains continuous CQL on it for a few steps. Both are compared with the
store read with h5py (tools/analysis/dma_store.py).
    check_consumers.py DMA_REPLAY MAKE_STORE WORKDIR
Runs itself in the project's Python environment (.venv, made by tools/python-env.sh; another
one with DMA_PYTHON_ENV). Exit 0 with "ok: ...", or 1 with one line per failure."""
import contextlib
import io
import os
import shutil
import subprocess
import sys

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ENV = os.environ.get("DMA_PYTHON_ENV", os.path.join(ROOT, ".venv"))
DATASET_ID = "dma/consumers-v0"
failures = []


def enter_env():
    """Re-runs this script with the environment's interpreter, unless already inside it."""
    python = os.path.join(ENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(ENV):
        return
    if not os.access(python, os.X_OK):
        print(f"check_consumers: the Python environment {ENV} with minari and d3rlpy is missing: "
              f"run tools/python-env.sh (it needs PyPI once)")
        sys.exit(1)
    os.execv(python, [python, *sys.argv])


def need_libraries():
    """One line that says how to mend an environment that lacks a consumer library."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # gym, which d3rlpy imports, prints a notice
            import d3rlpy  # noqa: F401
            import minari  # noqa: F401
    except ImportError as err:
        print(f"check_consumers: {ENV} lacks a library ({err}): run tools/python-env.sh")
        sys.exit(1)


def check(ok, what):
    if not ok:
        failures.append(what)


def run(*cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise SystemExit(f"check_consumers: {' '.join(cmd)}: exit {p.returncode}: {p.stdout}{p.stderr}".strip())


def check_minari(s, datasets):
    import minari
    import numpy as np
    os.environ["MINARI_DATASETS_PATH"] = datasets
    check(DATASET_ID in minari.list_local_datasets(), f"minari does not list {DATASET_ID}")
    ds = minari.load_dataset(DATASET_ID)
    idx = s.select(status="complete")
    lengths = s.episodes["length"][idx]
    check(ds.total_episodes == len(idx), f"minari: {ds.total_episodes} episodes, want {len(idx)}")
    check(ds.total_steps == int(lengths.sum()), f"minari: {ds.total_steps} steps, want {lengths.sum()}")
    check(ds.observation_space.shape == (len(s.obs_layout),), f"minari: observation space {ds.observation_space}")
    check(ds.action_space.shape == (len(s.domain_names),), f"minari: action space {ds.action_space}")
    seen = 0
    for k, ep in enumerate(ds.iterate_episodes()):
        e = s.episode(int(s.episodes["id"][idx[k]]))
        t = len(e["rewards"])
        what = f"minari episode {ep.id}"
        check(ep.id == k and len(ep.rewards) == t, f"{what}: id or length")
        check(ep.observations.shape == (t + 1, len(s.obs_layout)), f"{what}: observations {ep.observations.shape}")
        check(np.array_equal(ep.observations[:t], e["observations"]), f"{what}: observations differ from the store")
        check(np.array_equal(ep.observations[t], e["next_observations"][-1]), f"{what}: last observation")
        check(np.array_equal(ep.actions, e["actions"]), f"{what}: actions differ from the store")
        check(all(ds.action_space.contains(a) for a in ep.actions), f"{what}: an action outside the action space")
        check(np.array_equal(ep.rewards, e["rewards"]), f"{what}: rewards differ from the store")
        check(ep.truncations[-1] and not ep.truncations[:-1].any() and not ep.terminations.any(),
              f"{what}: truncations or terminations")
        check(np.array_equal(ep.infos["eval_loss"][1:], e["eval_loss"]), f"{what}: infos eval_loss")
        seen += 1
    check(seen == len(idx), f"minari iterated {seen} episodes, want {len(idx)}")
    check(len(ds.sample_episodes(3)) == 3, "minari: sample_episodes(3)")
    return f"minari {seen} episodes"


def check_d3rlpy(s, path):
    import d3rlpy
    import h5py
    import numpy as np
    import torch
    torch.set_num_threads(1)  # a few tiny steps: no thread pool on a shared machine
    with h5py.File(path, "r") as f:  # as a D4RL user reads it
        columns = {k: f[k][()] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
    dataset = d3rlpy.dataset.MDPDataset(columns["observations"], columns["actions"], columns["rewards"],
                                        columns["terminals"], timeouts=columns["timeouts"])
    idx = s.select(status="complete")
    check(len(dataset.episodes) == len(idx), f"d3rlpy: {len(dataset.episodes)} episodes, want {len(idx)}")
    for k, ep in enumerate(dataset.episodes[:len(idx)]):
        e = s.episode(int(s.episodes["id"][idx[k]]))
        check(np.array_equal(ep.observations, e["observations"]) and np.array_equal(ep.actions, e["actions"])
              and np.array_equal(ep.rewards[:, 0], e["rewards"]),
              f"d3rlpy episode {k}: observations, actions or rewards differ from the store")
    info = d3rlpy.dataset.DatasetInfo.from_episodes(dataset.episodes)
    check(info.action_space == d3rlpy.constants.ActionSpace.CONTINUOUS and info.action_size == len(s.domain_names),
          f"d3rlpy: actions read as {info.action_space}, {info.action_size} wide")
    d3rlpy.seed(1)
    d = len(s.domain_names)
    scaler = d3rlpy.preprocessing.MinMaxActionScaler(minimum=np.zeros(d), maximum=np.ones(d))
    cql = d3rlpy.algos.CQLConfig(batch_size=16, action_scaler=scaler).create(device="cpu:0")
    steps = 10
    history = cql.fit(dataset, n_steps=steps, n_steps_per_epoch=steps, show_progress=False,
                      logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    metrics = history[-1][1]
    for name in ("critic_loss", "actor_loss", "alpha_loss", "temp_loss"):
        check(name in metrics and np.isfinite(metrics[name]), f"d3rlpy CQL: {name} is {metrics.get(name)}")
    actions = cql.predict(columns["observations"][:4])
    check(actions.shape == (4, d) and ((actions >= 0) & (actions <= 1)).all(),
          f"d3rlpy CQL: predicted actions {actions.shape} outside [0, 1]")
    return f"d3rlpy CQL {steps} steps on {len(dataset.episodes)} episodes, critic loss {metrics['critic_loss']:.3g}"


def main():
    enter_env()
    import warnings
    warnings.simplefilter("ignore")  # gym and gymnasium announce deprecations on import
    need_libraries()
    replay, make_store, work = sys.argv[1:4]
    sys.path.insert(0, os.path.join(ROOT, "tools", "analysis"))
    from dma_store import Store
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    store, d4rl, datasets = (os.path.join(work, x) for x in ("store.h5", "d4rl.h5", "datasets"))
    run(make_store, store, "12", "8", "6")
    run(replay, "export", store, "--format", "d4rl", d4rl)
    run(replay, "export", store, "--format", "minari", "--dataset-id", DATASET_ID,
        os.path.join(datasets, DATASET_ID))
    done = []
    with Store(store) as s:
        for name, consume in (("minari", lambda: check_minari(s, datasets)), ("d3rlpy", lambda: check_d3rlpy(s, d4rl))):
            try:
                done.append(consume())
            except Exception as err:  # the library refused the export: its own words, on one line
                failures.append(f"{name}: {type(err).__name__}: {err}")
    for f in failures:
        print("check_consumers: " + f.replace("\n", " "))
    if failures:
        return 1
    print("ok: " + "; ".join(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
