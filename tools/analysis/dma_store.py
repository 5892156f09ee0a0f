#!/usr/bin/python3
"""Load a dma trajectory store (DESIGN §5) into numpy arrays, and pandas DataFrames when
pandas is installed. Opens in SWMR mode, so it reads a store that a run is still writing.

    import sys; sys.path.insert(0, "tools/analysis")
    from dma_store import Store
    s = Store("runs/demo/store.h5")
    s.domain_names, s.horizon               # header
    s.episodes["policy"], s.episodes["return"]
    t = s.transitions(policy="random", status="complete")   # dict of numpy arrays
    t["actions"].shape                      # (rows, D), rows of the selected episodes only
    df = s.dataframe(status="complete")     # one row per transition (needs pandas)

Command line: /usr/bin/python3 tools/analysis/dma_store.py STORE  (prints a short summary)
"""
import sys

import h5py
import numpy as np

STATUS = {0: "running", 1: "complete", 2: "failed", 3: "interrupted"}
_CODES = {v: k for k, v in STATUS.items()}
FLAT = ["observations", "next_observations", "actions", "rewards", "terminals", "timeouts"]
INFOS = ["episode_id", "step", "eval_loss", "source_score", "target_score", "math_accuracy",
         "train_tokens", "wall_seconds"]

try:  # pandas is optional
    import pandas as pd
except ImportError:  # pragma: no cover - depends on the machine
    pd = None


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


class Store:
    """A trajectory store, read-only. Call refresh() to see rows a live run added since."""

    def __init__(self, path):
        self.path = path
        self._file = h5py.File(path, "r", swmr=True)
        a = self._file.attrs
        if _text(a.get("format", "")) != "dma-trajectory-store":
            self._file.close()
            raise ValueError(f"{path} is not a dma trajectory store")
        self.format_version = int(a["format_version"])
        self.domain_names = [_text(x) for x in a["domain_names"]]
        self.domain_fields = [_text(x) for x in a["domain_fields"]]
        self.obs_layout = [_text(x) for x in a["obs_layout"]]
        self.horizon = int(a["horizon"])
        self.config = _text(a["config"])
        self.created_utc = _text(a["created_utc"])
        self.base_eval_loss = np.asarray(a["base_eval_loss"], dtype=np.float32)
        self.token_shares = np.asarray(a["token_shares"], dtype=np.float64)
        self.refresh()

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def refresh(self):
        """Re-reads sizes and the episodes table (SWMR)."""
        for name in ["episodes/" + k for k in self._file["episodes"]] + FLAT + ["infos/" + k for k in INFOS]:
            if name in self._file:
                self._file[name].refresh()
        ep = self._file["episodes"]
        n = min(ep[k].shape[0] for k in ep)
        self.episodes = {k: ep[k][:n] for k in ep if k != "policy"}
        self.episodes["policy"] = np.array([_text(x) for x in ep["policy"][:n]], dtype=object)
        self.episodes["status_name"] = np.array([STATUS.get(int(s), "?") for s in self.episodes["status"]],
                                                dtype=object)
        self.num_rows = min(self._file[k].shape[0] for k in FLAT)

    def select(self, policy=None, status=None, episodes=None):
        """Indices into self.episodes: policy and status are a name or a list of names
        ("fixed" also matches "fixed:0.3"); episodes is an (first, last) id range."""
        e = self.episodes
        keep = np.ones(len(e["id"]), dtype=bool)
        if policy is not None:
            names = [policy] if isinstance(policy, str) else list(policy)
            kinds = np.array([p.split(":")[0] for p in e["policy"]], dtype=object)
            keep &= np.isin(e["policy"], names) | np.isin(kinds, names)
        if status is not None:
            names = [status] if isinstance(status, str) else list(status)
            keep &= np.isin(e["status"], [_CODES[s] for s in names])
        if episodes is not None:
            keep &= (e["id"] >= episodes[0]) & (e["id"] <= episodes[1])
        return np.nonzero(keep)[0]

    def _rows(self, index):
        rows = []
        for i in index:
            start, length = int(self.episodes["start"][i]), int(self.episodes["length"][i])
            rows.append(np.arange(start, min(start + length, self.num_rows)))
        return np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)

    def transitions(self, policy=None, status=None, episodes=None, observations=True):
        """The written rows of the selected episodes, as a dict of numpy arrays (D4RL names,
        infos flattened, plus per-row 'policy')."""
        index = self.select(policy, status, episodes)
        rows = self._rows(index)
        names = FLAT if observations else [n for n in FLAT if "observations" not in n]
        out = {}
        for name in names + ["infos/" + k for k in INFOS]:
            data = self._file[name][:self.num_rows]  # one read, then a gather: fast on any store
            out[name.split("/")[-1]] = data[rows]
        lengths = [min(int(self.episodes["length"][i]), max(0, self.num_rows - int(self.episodes["start"][i])))
                   for i in index]
        out["policy"] = np.repeat(self.episodes["policy"][index], lengths)
        return out

    def episode(self, episode_id):
        """All written rows of the last episode row with this id."""
        hits = np.nonzero(self.episodes["id"] == episode_id)[0]
        if len(hits) == 0:
            raise KeyError(f"episode {episode_id} is not in {self.path}")
        rows = self._rows([hits[-1]])  # a re-run after an interruption is the last row
        out = {name.split("/")[-1]: self._file[name][rows[0]:rows[-1] + 1] if len(rows) else
               self._file[name][0:0] for name in FLAT + ["infos/" + k for k in INFOS]}
        out["policy"] = np.repeat(self.episodes["policy"][hits[-1:]], len(rows))
        return out

    def field_scores(self, eval_loss):
        """(source, target) mean relative loss improvement over the base model, per row."""
        rel = (self.base_eval_loss - np.asarray(eval_loss)) / self.base_eval_loss
        fields = np.array(self.domain_fields)
        return tuple(rel[..., fields == f].mean(axis=-1) if np.any(fields == f) else np.zeros(rel.shape[:-1])
                     for f in ("source", "target"))

    def episodes_frame(self):
        """The episodes table as a DataFrame (needs pandas)."""
        _need_pandas()
        return pd.DataFrame({k: v for k, v in self.episodes.items()})

    def dataframe(self, policy=None, status=None, episodes=None):
        """One row per transition: ids, policy, scores, weight.<domain>, loss.<domain> (needs pandas)."""
        _need_pandas()
        t = self.transitions(policy, status, episodes, observations=False)
        cols = {k: t[k] for k in ("episode_id", "step", "policy", "rewards", "timeouts", "source_score",
                                  "target_score", "math_accuracy", "train_tokens", "wall_seconds")}
        for d, name in enumerate(self.domain_names):
            cols["weight." + name] = t["actions"][:, d]
        for d, name in enumerate(self.domain_names):
            cols["loss." + name] = t["eval_loss"][:, d]
        return pd.DataFrame(cols)


def _need_pandas():
    if pd is None:
        raise ImportError("pandas is not installed: use Store.transitions() for numpy arrays, or install python3-pandas")


def load(path, policy=None, status="complete", episodes=None, observations=True):
    """Shortcut: the selected transitions of a store as a dict of numpy arrays."""
    with Store(path) as s:
        return s.transitions(policy, status, episodes, observations)


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    try:
        with Store(argv[1]) as s:
            print(f"{s.path}: {len(s.domain_names)} domains, horizon {s.horizon}, {s.num_rows} rows, "
                  f"{len(s.episodes['id'])} episodes")
            for p in sorted(set(s.episodes["policy"])):
                idx = s.select(policy=p)
                statuses = ", ".join(f"{n} {int(np.sum(s.episodes['status'][idx] == c))}" for c, n in STATUS.items())
                done = s.select(policy=p, status="complete")
                mean = float(np.mean(s.episodes["return"][done])) if len(done) else float("nan")
                print(f"  {p}: {statuses}; mean return {mean:.4f}")
        return 0
    except (OSError, KeyError, ValueError) as err:
        print(f"dma_store: {argv[1]}: {err}".replace("\n", " "))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
