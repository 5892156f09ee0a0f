#!/usr/bin/python3
"""End-to-end tests of dma_orchestrate: real MPI ranks (mpirun), real HDF5 stores, real
LibTorch training on configs/test-tiny.ini. Each test is one ctest case:
    test_orchestrate.py TestCollect.test_ranks_3
A fixture (Fixture.test_setup) prepares a tiny domain space and pre-trains its base once."""
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

import h5py
import numpy as np

BIN = os.environ.get("DMA_BIN", "build/bin")
SRC = os.environ.get("DMA_SOURCE", ".")
WORK = os.environ.get("DMA_TEST_WORK", "/tmp/dma-test-orchestrator")
FIXTURE = os.path.join(WORK, "fixture")
SPACE = os.path.join(FIXTURE, "data.space")
CONFIG = os.path.join(SRC, "configs", "test-tiny.ini")
MPIEXEC = os.environ.get("DMA_MPIEXEC", "mpirun")
CHECK_STORE = os.path.join(SRC, "tools", "analysis", "check_store.py")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")


def orchestrate_cmd(ranks, run_dir, *args, space=SPACE):
    cmd = [os.path.join(BIN, "dma_orchestrate"), "--config", CONFIG, f"--run.dir={run_dir}",
           f"--data.space={space}", *args]
    if ranks is None:
        return cmd
    return [MPIEXEC, "-n", str(ranks), "--oversubscribe", *cmd]


def run(ranks, run_dir, *args, timeout=240, space=SPACE):
    p = subprocess.run(orchestrate_cmd(ranks, run_dir, *args, space=space), env=ENV, capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def fresh_run_dir(name, with_base=True):
    d = os.path.join(WORK, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if with_base:
        shutil.copy(os.path.join(FIXTURE, "base.pt"), os.path.join(d, "base.pt"))
    return d


def check_store(path, *extra):
    p = subprocess.run(["/usr/bin/python3", CHECK_STORE, path, *extra], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def episodes(path):
    with h5py.File(path, "r", swmr=True) as f:
        e = f["episodes"]
        return {k: e[k][()] for k in e.keys()}


def rows_by_episode(path):
    """{episode id: dict of that episode's rows}, complete episodes only."""
    out = {}
    with h5py.File(path, "r", swmr=True) as f:
        e = f["episodes"]
        for i in range(e["id"].shape[0]):
            if e["status"][i] != 1:
                continue
            s, n = int(e["start"][i]), int(e["length"][i])
            out[int(e["id"][i])] = {k: f[k][s:s + n] for k in
                                    ["observations", "next_observations", "actions", "rewards", "infos/eval_loss"]}
    return out


def parent_pids():
    """{pid: parent pid} of every process."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        parents[int(pid)] = int(stat[stat.rindex(b")") + 2:].split()[1])  # after "(comm) state"
    return parents


def ranks_of(mpirun_pid):
    """{MPI rank: pid} of the application processes under this mpirun. Only its descendants:
    another MPI job on the machine (a user's run beside the tests) must never be touched."""
    parents = parent_pids()

    def under_mpirun(pid):
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == mpirun_pid:
                return True
        return False

    found = {}
    for pid in filter(under_mpirun, parents):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if b"dma_orchestrate" in cmdline and b"OMPI_COMM_WORLD_RANK" in env:
            found[int(env[b"OMPI_COMM_WORLD_RANK"])] = pid
    return found


def complete_rows(path):
    try:
        with h5py.File(path, "r", swmr=True) as f:
            return int((f["infos/step"][()] >= 0).sum())
    except (OSError, KeyError):
        return 0


def start_collect(run_dir, ranks=3, *args):
    return subprocess.Popen(orchestrate_cmd(ranks, run_dir, "--mode", "collect", *args), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_rows(path, proc, at_least, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if os.path.exists(path) and complete_rows(path) >= at_least:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


class Fixture(unittest.TestCase):
    def test_setup(self):
        shutil.rmtree(FIXTURE, ignore_errors=True)
        os.makedirs(FIXTURE)
        p = subprocess.run([os.path.join(BIN, "dma_prepare"), "demo", "--out", SPACE, "--seed", "3",
                            "--categories", "computers,food,law,science", "--source-rows", "64",
                            "--target-train-rows", "24", "--target-eval-rows", "8", "--bench-problems", "8"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        rc, out = run(None, FIXTURE, "--mode", "pretrain")
        self.assertEqual(rc, 0, out)
        self.assertTrue(os.path.exists(os.path.join(FIXTURE, "base.pt")), out)


class TestCollect(unittest.TestCase):
    def collect(self, ranks, slots=1, trajectories=4, name=None):
        d = fresh_run_dir(name or f"collect-{ranks}-{slots}")
        rc, out = run(ranks, d, "--mode", "collect", f"--orchestrator.slots={slots}",
                      f"--collect.trajectories={trajectories}")
        self.assertEqual(rc, 0, out)
        store = os.path.join(d, "store.h5")
        rc, msg = check_store(store, "--expect-complete", str(trajectories))
        self.assertEqual(rc, 0, msg)
        return store, out

    def test_ranks_2(self):
        self.collect(2)

    def test_ranks_3(self):
        _, out = self.collect(3, trajectories=5)
        self.assertIn("policy", out)  # the summary table

    def test_ranks_4(self):
        self.collect(4, slots=2, trajectories=7)

    def test_rank_count_invariance(self):
        a, _ = self.collect(2, slots=1, trajectories=6, name="inv-a")
        b, _ = self.collect(4, slots=2, trajectories=6, name="inv-b")
        ra, rb = rows_by_episode(a), rows_by_episode(b)
        self.assertEqual(sorted(ra), list(range(6)))
        self.assertEqual(sorted(ra), sorted(rb))
        for eid in ra:
            for key in ra[eid]:
                self.assertTrue(np.array_equal(ra[eid][key], rb[eid][key]), f"episode {eid} {key} differs")

    def test_random_mix_covers_target_shares(self):
        d = fresh_run_dir("cover")
        rc, out = run(3, d, "--mode", "collect", "--collect.trajectories=24", "--collect.policies=random:1",
                      "--train.horizon=2", "--orchestrator.slots=4")
        self.assertEqual(rc, 0, out)
        with h5py.File(os.path.join(d, "store.h5"), "r", swmr=True) as f:
            fields = [x.decode() if isinstance(x, bytes) else x for x in f.attrs["domain_fields"]]
            target = np.array([x == "target" for x in fields])
            actions, eid = f["actions"][()], f["infos/episode_id"][()]
            step = f["infos/step"][()]
        shares = [actions[(eid == e) & (step >= 0)][:, target].sum(axis=1).mean() for e in np.unique(eid[step >= 0])]
        self.assertLess(min(shares), 0.1, shares)
        self.assertGreater(max(shares), 0.9, shares)


class TestStops(unittest.TestCase):
    M = 10

    def interrupted_then_resumed(self, name, kill):
        d = fresh_run_dir(name)
        store = os.path.join(d, "store.h5")
        args = [f"--collect.trajectories={self.M}", "--orchestrator.slots=1", "--train.horizon=4"]
        proc = start_collect(d, 3, *args)
        try:
            self.assertTrue(wait_rows(store, proc, 3), "the run wrote no rows")
            kill(proc)
            out = proc.communicate(timeout=60)[0]
        finally:
            if proc.poll() is None:
                proc.kill()
        rc, msg = check_store(store)  # opens and is consistent at this point
        self.assertEqual(rc, 0, msg + out)
        rc, out2 = run(3, d, "--mode", "collect", "--resume", *args)
        self.assertEqual(rc, 0, out2)
        rc, msg = check_store(store, "--expect-complete", str(self.M))
        self.assertEqual(rc, 0, msg)
        e = episodes(store)
        complete_ids = sorted(int(i) for i, s in zip(e["id"], e["status"]) if s == 1)
        self.assertEqual(complete_ids, list(range(self.M)), "each trajectory exactly once as complete")
        return proc.returncode, out

    def test_kill_worker(self):
        self.interrupted_then_resumed("kill-worker", lambda p: os.kill(ranks_of(p.pid)[2], signal.SIGKILL))

    def test_kill_learner(self):
        self.interrupted_then_resumed("kill-learner", lambda p: os.kill(ranks_of(p.pid)[0], signal.SIGKILL))

    def test_sigusr1_stops_cleanly(self):
        rc, out = self.interrupted_then_resumed("sigusr1", lambda p: os.kill(p.pid, signal.SIGUSR1))
        self.assertEqual(rc, 0, out)
        self.assertIn("--resume", out)

    def test_sigterm_to_learner_stops_cleanly(self):
        rc, out = self.interrupted_then_resumed("sigterm", lambda p: os.kill(ranks_of(p.pid)[0], signal.SIGTERM))
        self.assertEqual(rc, 0, out)

    def test_live_reader(self):
        d = fresh_run_dir("live")
        store = os.path.join(d, "store.h5")
        proc = start_collect(d, 3, "--collect.trajectories=8", "--train.horizon=4")
        partial_reads = 0
        try:
            self.assertTrue(wait_rows(store, proc, 1), "the run wrote no rows")
            while proc.poll() is None:
                rc, msg = check_store(store)
                self.assertEqual(rc, 0, msg)
                partial_reads += 1
            self.assertEqual(proc.wait(), 0, proc.stdout.read())
        finally:
            if proc.poll() is None:
                proc.kill()
        self.assertGreater(partial_reads, 0)
        rc, msg = check_store(store, "--expect-complete", "8")
        self.assertEqual(rc, 0, msg)


class TestTrees(unittest.TestCase):
    """Trajectory trees: 10 trajectories in trees of 1 root + 4 branches sharing 2 of 4 steps."""
    M, B, K = 10, 4, 2
    ARGS = [f"--collect.trajectories={M}", f"--collect.branches={B}", f"--collect.branch_step={K}",
            "--train.horizon=4", "--orchestrator.slots=1", "--collect.policies=random:0.5,uniform:0.5"]

    def tree_collect(self, ranks, name, *extra):
        d = fresh_run_dir(name)
        rc, out = run(ranks, d, "--mode", "collect", *self.ARGS, *extra)
        self.assertEqual(rc, 0, out)
        store = os.path.join(d, "store.h5")
        rc, msg = check_store(store, "--expect-complete", str(self.M))
        self.assertEqual(rc, 0, msg)
        self.assertIn(f"{self.M - 2} tree branches", msg)  # check_store compared each branch's prefix
        self.assertFalse(os.path.exists(os.path.join(d, "tree-states")), "kept states outlive the collection")
        return store

    def assert_same_trees(self, a, b):
        def tree_fields(path):
            e = episodes(path)
            return {int(i): (int(p), int(k)) for i, p, k, s in zip(e["id"], e["parent"], e["branch_step"], e["status"])
                    if s == 1}
        self.assertEqual(tree_fields(a), tree_fields(b))
        ra, rb = rows_by_episode(a), rows_by_episode(b)
        self.assertEqual(sorted(ra), list(range(self.M)))
        self.assertEqual(sorted(ra), sorted(rb))
        for eid in ra:
            for key in ra[eid]:
                self.assertTrue(np.array_equal(ra[eid][key], rb[eid][key]), f"episode {eid} {key} differs")

    def test_branches_share_their_roots_prefix(self):
        store = self.tree_collect(2, "tree-fields")
        e = episodes(store)
        done = {int(i): k for k, i in enumerate(e["id"]) if e["status"][k] == 1}
        for eid, k in done.items():
            root = eid - eid % (self.B + 1)
            self.assertEqual(int(e["parent"][k]), -1 if eid == root else root, f"episode {eid}")
            self.assertEqual(int(e["branch_step"][k]), 0 if eid == root else self.K, f"episode {eid}")
        rows = rows_by_episode(store)
        for eid in done:
            root = eid - eid % (self.B + 1)
            if eid == root:
                continue
            for key in rows[eid]:
                self.assertTrue(np.array_equal(rows[eid][key][:self.K], rows[root][key][:self.K]), f"{eid} {key}")
            # Own draws after the shared steps: the continuation is not the root's.
            self.assertFalse(np.array_equal(rows[eid]["infos/eval_loss"][self.K:],
                                            rows[root]["infos/eval_loss"][self.K:]), f"branch {eid} copies its root")
        # The exports hold every trajectory whole, with its parent.
        for fmt, out in (("d4rl", os.path.join(os.path.dirname(store), "d4rl.h5")),
                         ("minari", os.path.join(os.path.dirname(store), "minari"))):
            p = subprocess.run([os.path.join(BIN, "dma_replay"), "export", store, "--format", fmt, out],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            p = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tests", "replay", "check_exports.py"), store,
                                fmt, out], capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # A root is the flat collection's trajectory of the same id.
        d = fresh_run_dir("tree-fields-flat")
        rc, out = run(2, d, "--mode", "collect", *[a for a in self.ARGS if not a.startswith("--collect.branch")])
        self.assertEqual(rc, 0, out)
        flat = rows_by_episode(os.path.join(d, "store.h5"))
        for root in range(0, self.M, self.B + 1):
            for key in flat[root]:
                self.assertTrue(np.array_equal(flat[root][key], rows[root][key]), f"root {root} {key}")

    def test_rank_count_invariance(self):
        self.assert_same_trees(self.tree_collect(2, "tree-inv-2"), self.tree_collect(3, "tree-inv-3"))

    def killed_then_resumed(self, name, rows_before_kill, rank, among_branches):
        # Longer rounds than the other tests' so that the kill lands inside the phase it aims at.
        slow = ["--train.steps_per_round=16"]
        args = [*self.ARGS, *slow]
        reference = self.tree_collect(2, name + "-reference", *slow)
        d = fresh_run_dir(name)
        store = os.path.join(d, "store.h5")
        proc = start_collect(d, 3, *args)
        try:
            self.assertTrue(wait_rows(store, proc, rows_before_kill), "the run wrote too few rows")
            os.kill(ranks_of(proc.pid)[rank], signal.SIGKILL)
            out = proc.communicate(timeout=60)[0]
        finally:
            if proc.poll() is None:
                proc.kill()
        rc, msg = check_store(store)
        self.assertEqual(rc, 0, msg + out)
        e = episodes(store)
        self.assertLess(int((e["status"] == 1).sum()), self.M, "the kill came after the last trajectory")
        self.assertEqual(bool((e["parent"] >= 0).any()), among_branches, "the kill came in the other phase")
        rc, out2 = run(3, d, "--mode", "collect", "--resume", *args)
        self.assertEqual(rc, 0, out2)
        rc, msg = check_store(store, "--expect-complete", str(self.M))
        self.assertEqual(rc, 0, msg)
        self.assert_same_trees(reference, store)

    def test_resume_with_other_tree_options_is_refused(self):
        d = fresh_run_dir("tree-resume-other")
        flat = [a for a in self.ARGS if not a.startswith("--collect.branch")]
        rc, out = run(2, d, "--mode", "collect", *flat)
        self.assertEqual(rc, 0, out)
        rc, out = run(2, d, "--mode", "collect", "--resume", *self.ARGS)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("collect.branches", out)

    def test_kill_learner_among_branches_then_resume(self):
        # The 2 roots write 8 rows; each branch starts with 2 copied: 11 rows are branch work.
        self.killed_then_resumed("tree-kill-learner", 11, 0, among_branches=True)

    def test_kill_worker_among_roots_then_resume(self):
        self.killed_then_resumed("tree-kill-worker", 3, 2, among_branches=False)


class TestStragglers(unittest.TestCase):
    M = 6
    ARGS = [f"--collect.trajectories={M}", "--orchestrator.slots=1", "--train.horizon=4",
            "--train.steps_per_round=8"]

    def test_a_stopped_worker_holds_up_only_its_own_trajectory(self):
        reference = os.path.join(fresh_run_dir("straggler-reference"), "store.h5")
        rc, out = run(2, os.path.dirname(reference), "--mode", "collect", *self.ARGS)
        self.assertEqual(rc, 0, out)
        d = fresh_run_dir("straggler")
        store = os.path.join(d, "store.h5")
        proc = start_collect(d, 3, *self.ARGS)
        slow = None
        try:
            self.assertTrue(wait_rows(store, proc, 1), "the run wrote no rows")
            slow = ranks_of(proc.pid)[2]
            os.kill(slow, signal.SIGSTOP)  # rank 2 holds one trajectory and does not answer
            t0, done = time.time(), []
            while time.time() - t0 < 120 and proc.poll() is None:
                e = episodes(store)
                done = [(int(i), int(r)) for i, r, s in zip(e["id"], e["rank"], e["status"]) if s == 1]
                if len(done) >= self.M - 1:
                    break
                time.sleep(0.2)
            self.assertEqual(len(done), self.M - 1, "rank 1 ran every trajectory but rank 2's while rank 2 was stopped")
            self.assertGreaterEqual(sum(r == 1 for _, r in done), self.M - 2, done)
        finally:
            if slow is not None:
                os.kill(slow, signal.SIGCONT)
            out = proc.communicate(timeout=120)[0]
        self.assertEqual(proc.returncode, 0, out)
        rc, msg = check_store(store, "--expect-complete", str(self.M))
        self.assertEqual(rc, 0, msg)
        ra, rb = rows_by_episode(reference), rows_by_episode(store)
        self.assertEqual(sorted(ra), sorted(rb))
        for eid in ra:
            for key in ra[eid]:
                self.assertTrue(np.array_equal(ra[eid][key], rb[eid][key]), f"episode {eid} {key} differs")


class TestBadInput(unittest.TestCase):
    def assert_fails(self, rc, out, *needles):
        self.assertNotEqual(rc, 0, out)
        for n in needles:
            self.assertIn(n, out)

    def test_one_rank(self):
        rc, out = run(1, fresh_run_dir("one-rank"), "--mode", "collect")
        self.assert_fails(rc, out, "at least 2 MPI ranks")

    def test_zero_slots(self):
        rc, out = run(None, fresh_run_dir("zero-slots"), "--mode", "collect", "--orchestrator.slots=0")
        self.assert_fails(rc, out, "orchestrator.slots")

    def test_mix_not_summing_to_one(self):
        rc, out = run(3, fresh_run_dir("bad-mix"), "--mode", "collect", "--collect.policies=random:0.5,uniform:0.2")
        self.assert_fails(rc, out, "sum")

    def test_unknown_policy(self):
        rc, out = run(3, fresh_run_dir("unknown-policy"), "--mode", "collect", "--collect.policies=bogus:1")
        self.assert_fails(rc, out, "bogus")

    def test_resume_on_non_store(self):
        d = fresh_run_dir("non-store")
        with open(os.path.join(d, "store.h5"), "w") as f:
            f.write("not a store\n")
        rc, out = run(3, d, "--mode", "collect", "--resume")
        self.assert_fails(rc, out, "store.h5")
        with open(os.path.join(d, "store.h5")) as f:
            self.assertEqual(f.read(), "not a store\n", "the file was changed")

    def test_resume_with_other_horizon(self):
        d = fresh_run_dir("other-horizon")
        rc, out = run(3, d, "--mode", "collect", "--collect.trajectories=2")
        self.assertEqual(rc, 0, out)
        rc, out = run(3, d, "--mode", "collect", "--resume", "--train.horizon=5")
        self.assert_fails(rc, out, "horizon")
        rc, msg = check_store(os.path.join(d, "store.h5"), "--expect-complete", "2")
        self.assertEqual(rc, 0, msg)

    def test_resume_with_other_policies(self):
        d = fresh_run_dir("other-policies")
        rc, out = run(3, d, "--mode", "evaluate", "--evaluate.policies=uniform,fixed:0.5", "--evaluate.seeds=1")
        self.assertEqual(rc, 0, out)
        # Swapped: episode 0 would be fixed:0.5 now, but uniform wrote it.
        rc, out = run(3, d, "--mode", "evaluate", "--resume", "--evaluate.policies=fixed:0.5,uniform",
                      "--evaluate.seeds=1")
        self.assert_fails(rc, out, "episode 0 of policy 'uniform'", "new run.dir")
        # The same list on other seeds: the stored trajectories are not this run's either.
        rc, out = run(3, d, "--mode", "evaluate", "--resume", "--evaluate.policies=uniform,fixed:0.5",
                      "--evaluate.seeds=1", "--evaluate.seed_offset=7")
        self.assert_fails(rc, out, "episode 0 of policy 'uniform'", "seed_offset", "new run.dir")
        e = episodes(os.path.join(d, "eval.h5"))
        self.assertEqual(sorted(p.decode() if isinstance(p, bytes) else p for p in e["policy"]), ["fixed:0.5", "uniform"])
        # A policy appended to the list runs; the finished ones are kept.
        rc, out = run(3, d, "--mode", "evaluate", "--resume", "--evaluate.policies=uniform,fixed:0.5,natural",
                      "--evaluate.seeds=1")
        self.assertEqual(rc, 0, out)
        self.assertIn("1 trajectories to run", out)

    def test_policy_name_too_long(self):
        # A name the store's policy column cannot hold is refused before any rollout, not cut
        # (two cut names would merge two policies' episodes).
        d = fresh_run_dir("long-policy")
        rc, out = run(3, d, "--mode", "evaluate", "--evaluate.policies=uniform,fixed:0.5" + "0" * 600,
                      "--evaluate.seeds=1")
        self.assert_fails(rc, out, "at most 512", "fewer digits")
        self.assertFalse(os.path.exists(os.path.join(d, "eval.h5")), "a store was started")

    def test_unwritable_run_dir(self):
        blocker = os.path.join(WORK, "a-file")
        with open(blocker, "w") as f:
            f.write("x")
        rc, out = run(3, os.path.join(blocker, "run"), "--mode", "collect")
        self.assert_fails(rc, out, "not writable")

    def test_worker_that_throws(self):
        d = fresh_run_dir("worker-throws")
        rc, out = run(3, d, "--mode", "collect", "--proxy.device=cuda")
        self.assert_fails(rc, out, "rank 1", "cuda")
        rc, msg = check_store(os.path.join(d, "store.h5"))
        self.assertEqual(rc, 0, msg)
        self.assertTrue(all(s == 3 for s in episodes(os.path.join(d, "store.h5"))["status"]))


class TestSlurm(unittest.TestCase):
    def test_srun_collect(self):
        """srun --mpi=pmix -n 3 on the local one-node cluster (started by tools/slurm)."""
        d = fresh_run_dir("slurm")
        cmd = [os.path.join(SRC, "tools", "slurm", "with-cluster.sh"), "srun", "--mpi=pmix", "-n", "3",
               *orchestrate_cmd(None, d, "--mode", "collect", "--collect.trajectories=4")]
        p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=400)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        rc, msg = check_store(os.path.join(d, "store.h5"), "--expect-complete", "4")
        self.assertEqual(rc, 0, msg)
        ranks = set(int(r) for r in episodes(os.path.join(d, "store.h5"))["rank"])
        self.assertEqual(ranks, {1, 2}, "both srun workers ran trajectories")


class TestModes(unittest.TestCase):
    def test_evaluate_writes_table(self):
        d = fresh_run_dir("evaluate")
        rc, out = run(3, d, "--mode", "evaluate", "--evaluate.policies=uniform,fixed:0.5",
                      "--evaluate.oracle=fixed:0.2,fixed:0.5", "--evaluate.seeds=2")
        self.assertEqual(rc, 0, out)
        for name in ["eval.h5", "eval.csv", "eval.md"]:
            self.assertTrue(os.path.exists(os.path.join(d, name)), name)
        with open(os.path.join(d, "eval.csv")) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 1 + 3, lines)
        md = open(os.path.join(d, "eval.md")).read()
        # fixed:0.5 is a baseline as well as on the grid: only grid-only policies carry the label
        self.assertIn("fixed:0.2 *(oracle)*", md)
        self.assertNotIn("fixed:0.5 *(oracle)*", md)
        self.assertRegex(md, r"best of the oracle grid: fixed:0\.[25] [+-]\d")

    def test_headroom_tunes_both_families_on_selection_seeds_and_pairs_them_on_evaluation_seeds(self):
        d = fresh_run_dir("headroom")
        common = ["--tune.rollouts=6", "--tune.seeds=2", "--evaluate.seeds=3"]
        # a tuning seed may never be an evaluation seed
        rc, out = run(3, d, "--mode", "headroom", *common, "--agent.selection_seed_offset=1000001")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("overlap the evaluation seeds", out)
        self.assertFalse(os.path.exists(os.path.join(d, "tune.h5")))
        rc, out = run(3, d, "--mode", "headroom", *common)
        self.assertEqual(rc, 0, out)
        tune = episodes(os.path.join(d, "tune.h5"))
        names = [p.decode() if isinstance(p, bytes) else p for p in tune["policy"]]
        fixed = sorted({n for n in names if n.startswith("tuned-fixed:")})
        sched = sorted({n for n in names if n.startswith("tuned-schedule:")})
        # each family spent its budget: 6 rollouts, 2 seeds a candidate
        self.assertEqual(len(fixed), 3, names)
        self.assertEqual(len(sched), 3, names)
        # tuning rolls out on the selection seeds only, evaluation on the evaluation seeds only
        sel_seeds, ev_seeds = set(tune["seed"]), set(episodes(os.path.join(d, "headroom.h5"))["seed"])
        self.assertEqual(len(sel_seeds), 2)
        self.assertEqual(len(ev_seeds), 3)
        self.assertFalse(sel_seeds & ev_seeds)
        m = re.search(r"headroom: (tuned-schedule:\S+) − (tuned-fixed:\S+) = ([+-]\d\.\d+) \[([+-]\d\.\d+), "
                      r"([+-]\d\.\d+)\]", out)
        self.assertIsNotNone(m, out)
        self.assertIn(m.group(1), sched)
        self.assertIn(m.group(2), fixed)
        low, mean, high = float(m.group(4)), float(m.group(3)), float(m.group(5))
        self.assertLessEqual(low, mean)
        self.assertLessEqual(mean, high)
        self.assertIn("tuned-fixed: " + m.group(2), open(os.path.join(d, "tuning.md")).read())
        # the difference is recomputed offline from the evaluation store, paired by seed
        with h5py.File(os.path.join(d, "headroom.h5"), "r", swmr=True) as f:
            self.assertEqual(f["episodes"]["status"].shape[0], 6)
        # evaluate reuses the tuning rollouts: nothing is tuned twice
        rc, out = run(3, d, "--mode", "evaluate", *common,
                      "--evaluate.policies=tuned-fixed,tuned-schedule,uniform")
        self.assertEqual(rc, 0, out)
        self.assertEqual(len(re.findall(r"tune: \d+ policies x 2 seeds, 0 trajectories to run", out)),
                         len(re.findall(r"tune: \d+ policies", out)), out)
        self.assertIn(m.group(2), open(os.path.join(d, "eval.md")).read())

    def test_tuning_budget_below_one_candidate_is_refused(self):
        d = fresh_run_dir("tune-budget")
        rc, out = run(3, d, "--mode", "headroom", "--tune.rollouts=1", "--tune.seeds=2")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("tune.rollouts = 1 cannot score one tuned-fixed candidate", out)
        rc, out = run(3, d, "--mode", "headroom", "--tune.rollouts=0")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("tune.rollouts", out)
        rc, out = run(3, d, "--mode", "evaluate", "--evaluate.policies=tuned-schedule:")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("needs two ends", out)
        self.assertFalse(os.path.exists(os.path.join(d, "tune.h5")))

    def test_train_agent_then_iterate(self):
        d = fresh_run_dir("iterate")
        rc, out = run(3, d, "--mode", "collect", "--collect.trajectories=6")
        self.assertEqual(rc, 0, out)
        rc, out = run(None, d, "--mode", "train-agent")
        self.assertEqual(rc, 0, out)
        self.assertTrue(os.path.exists(os.path.join(d, "agent.pt")))
        rc, out = run(3, d, "--mode", "iterate", "--iterate.generations=2", "--iterate.trajectories=3")
        self.assertEqual(rc, 0, out)
        e = episodes(os.path.join(d, "store.h5"))
        agent_eps = [p for p in e["policy"] if (p.decode() if isinstance(p, bytes) else p).startswith("agent:")]
        self.assertEqual(len(agent_eps), 2 * 3)  # 2 generations x 3 rollouts
        # Generation g rolls out the agent of generation g-1 (the offline agent first).
        names = sorted({p.decode() if isinstance(p, bytes) else p for p in agent_eps})
        self.assertEqual([n.split("?")[0].split("/")[-1] for n in names], ["agent-gen-1.pt", "agent-offline.pt"])
        # The offline agent and both generations were rolled out on the selection seeds, and
        # agent.pt is the one that scored best there.
        sel = episodes(os.path.join(d, "iterate-selection.h5"))
        chosen = re.search(r"iterate: kept (\S+) ", out).group(1)
        self.assertEqual(len(set(sel["policy"])), 3)
        self.assertIn(os.path.basename(chosen), ["agent-offline.pt", "agent-gen-1.pt", "agent-gen-2.pt"])
        with open(os.path.join(d, "agent.pt"), "rb") as a, open(chosen, "rb") as b:
            self.assertEqual(a.read(), b.read())
        rc, out = run(3, d, "--mode", "iterate", "--iterate.generations=2", "--iterate.trajectories=3", "--resume")
        self.assertEqual(rc, 0, out)
        self.assertIn("skipped", out)  # both generations are done
        self.assertIn("0 trajectories to run", out)  # and their selection rollouts
        # The state says 2 generations are done, but the file to continue from is gone.
        os.remove(os.path.join(d, "agent-gen-2.pt"))
        rc, out = run(3, d, "--mode", "iterate", "--iterate.generations=3", "--iterate.trajectories=3", "--resume")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("agent-gen-2.pt is missing: delete", out)

    def test_train_agent_keeps_the_best_candidate_by_rollouts_on_selection_seeds(self):
        d = fresh_run_dir("candidates")
        rc, out = run(3, d, "--mode", "collect", "--collect.trajectories=4")
        self.assertEqual(rc, 0, out)
        # an evaluation seed may never choose the agent
        rc, out = run(3, d, "--mode", "train-agent", "--agent.candidates=2", "--agent.selection_seed_offset=1000001")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("overlap the evaluation seeds", out)
        rc, out = run(None, d, "--mode", "train-agent", "--agent.candidates=2")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("mpirun", out)
        rc, out = run(3, d, "--mode", "train-agent", "--agent.candidates=2", "--agent.selection_seeds=2")
        self.assertEqual(rc, 0, out)
        with open(os.path.join(d, "selection.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([r["policy"] for r in rows],
                         ["agent:%s/agent-candidate-%d.pt" % (d, k) for k in range(2)])
        best = max(rows, key=lambda r: float(r["balanced_mean"]))
        with open(os.path.join(d, "agent.pt"), "rb") as a, open(best["policy"][len("agent:"):], "rb") as b:
            self.assertEqual(a.read(), b.read(), "agent.pt is the candidate with the best selection score")
        e = episodes(os.path.join(d, "selection.h5"))
        by_candidate = {}
        for policy, seed in zip(e["policy"], e["seed"]):
            by_candidate.setdefault(policy, set()).add(int(seed))
        self.assertEqual(len(by_candidate), 2)
        a, b = by_candidate.values()
        self.assertEqual(a, b, "both candidates are rolled out on the same seeds")
        self.assertEqual(len(a), 2)
        # The table's "agent - policy" pairs the candidates by seed: recomputed here from each
        # episode's last row under the budget score (test-tiny.ini keeps the default score).
        final = {}
        with h5py.File(os.path.join(d, "selection.h5"), "r", swmr=True) as f:
            for policy, seed, start, n in zip(e["policy"], e["seed"], e["start"], e["length"]):
                last = int(start) + int(n) - 1
                source, target = float(f["infos/source_score"][last]), float(f["infos/target_score"][last])
                final.setdefault(policy.decode(), {})[int(seed)] = target - 4.0 * max(0.0, -source - 0.02)
        first, second = (final["agent:%s/agent-candidate-%d.pt" % (d, k)] for k in range(2))
        diffs = [first[s] - second[s] for s in sorted(first)]
        md = open(os.path.join(d, "selection.md")).read()
        row = next(line for line in md.splitlines() if "agent-candidate-1.pt" in line)
        shown = re.search(r"\| ([+-]\d+\.\d+) \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\] \|", row)
        self.assertIsNotNone(shown, row)
        self.assertAlmostEqual(float(shown.group(1)), float(np.mean(diffs)), delta=1e-4)
        t975 = 12.7062  # Student t, 1 degree of freedom (2 seeds)
        half = t975 * float(np.std(diffs, ddof=1) / np.sqrt(2))
        self.assertAlmostEqual(float(shown.group(3)) - float(shown.group(1)), half, delta=2e-4)
        self.assertAlmostEqual(float(shown.group(1)) - float(shown.group(2)), half, delta=2e-4)
        self.assertIn("paired by seed", md)
        self.assertIn("Holm", md)

    def test_pipeline_skips_finished_stages(self):
        d = fresh_run_dir("pipeline", with_base=False)
        args = ["--mode", "pipeline", "--collect.trajectories=4", "--evaluate.policies=agent,uniform",
                "--evaluate.seeds=1"]
        rc, out = run(3, d, *args)
        self.assertEqual(rc, 0, out)
        for name in ["base.pt", "store.h5", "agent.pt", "agent-offline.pt", "eval.csv"]:
            self.assertTrue(os.path.exists(os.path.join(d, name)), name)
        # The online generations ran between train-agent and evaluate, on the agent's own
        # episodes (ids from 1e9), and the evaluated agent is the iterated one.
        self.assertIn("iterate: generation 2/2 done", out)
        e = episodes(os.path.join(d, "store.h5"))
        self.assertEqual(sum(1 for i in e["id"] if i >= 10**9), 2 * 2, "2 generations x 2 worker slots")
        self.assertIn("iterate: kept", out)  # agent.pt is the best generation on the selection seeds
        rc, out = run(3, d, *args)
        self.assertEqual(rc, 0, out)
        for stage in ["pretrain", "train-agent", "iterate: 2 generations done"]:
            self.assertRegex(out, stage + ".*skipped")
        # iterate.generations=0: the pipeline keeps the offline agent.
        d0 = fresh_run_dir("pipeline-offline", with_base=False)
        rc, out = run(3, d0, *args, "--iterate.generations=0")
        self.assertEqual(rc, 0, out)
        self.assertNotIn("iterate", out)


if __name__ == "__main__":
    unittest.main()
