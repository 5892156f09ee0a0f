#!/usr/bin/python3
"""Tests tools/analysis/dma_store.py on a store written by test_replay (ids 0..8 complete,
policies random/uniform/fixed:0.3 by id % 3, 9 failed after 4 steps, 10 interrupted after 3).
Usage: test_dma_store.py STORE"""
import sys

import numpy as np

sys.path.insert(0, sys.path[0] + "/../../tools/analysis")
import dma_store  # noqa: E402


def main(path):
    with dma_store.Store(path) as s:
        assert s.horizon == 8 and s.domain_names == ["dom0", "dom1", "dom2", "dom3"], (s.horizon, s.domain_names)
        assert list(s.episodes["id"]) == list(range(11)), s.episodes["id"]
        assert list(s.episodes["status_name"][9:]) == ["failed", "interrupted"]
        t = s.transitions(policy="random", status="complete")
        assert t["actions"].shape == (24, 4) and t["observations"].shape == (24, len(s.obs_layout))
        assert set(t["policy"]) == {"random"} and list(t["episode_id"][:8]) == [0] * 8
        assert np.allclose(t["actions"].sum(axis=1), 1.0, atol=1e-5)
        src, tgt = s.field_scores(t["eval_loss"])
        assert np.allclose(tgt, t["target_score"], atol=1e-6) and np.allclose(src, t["source_score"], atol=1e-6)
        assert len(s.select(policy="fixed")) == 3          # "fixed" matches "fixed:0.3"
        assert len(s.select(status=["failed", "interrupted"])) == 2
        assert len(s.transitions(episodes=(9, 10), status=None)["rewards"]) == 7
        e = s.episode(10)
        assert list(e["step"]) == [0, 1, 2] and e["timeouts"][-1] == 1
        loaded = dma_store.load(path, observations=False)
        assert "observations" not in loaded and len(loaded["rewards"]) == 72
        if dma_store.pd is not None:
            df = s.dataframe(status="complete")
            assert len(df) == 72 and "weight.dom3" in df.columns
        else:
            try:
                s.dataframe()
                raise AssertionError("dataframe() without pandas must raise ImportError")
            except ImportError:
                pass
    try:
        dma_store.Store(sys.argv[0])
        raise AssertionError("a non-HDF5 file must raise")
    except OSError:
        pass
    print("ok: dma_store.py")


if __name__ == "__main__":
    main(sys.argv[1])
