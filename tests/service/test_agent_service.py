#!/usr/bin/python3
"""dma_agent act and serve end to end: a real trained agent (tests/service/make_agent.cpp),
real HTTP on loopback, a real outside PyTorch trainer (tools/clients/outside_trainer.py).
Each test is one ctest case:
    test_agent_service.py TestClosedLoop.test_outside_trainer_survives_kill_and_restart
A fixture (Fixture.test_setup) trains the agent and prepares a tiny domain space once."""
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

BIN = os.environ.get("DMA_BIN", "build/bin")
SRC = os.environ.get("DMA_SOURCE", ".")
WORK = os.environ.get("DMA_TEST_WORK", "/tmp/dma-test-service")
MAKE_AGENT = os.environ.get("DMA_MAKE_AGENT", os.path.join(BIN, "make_agent"))
TRACKER_MIXTURES = os.environ.get("DMA_TRACKER_MIXTURES", os.path.join(BIN, "tracker_mixtures"))
MPIEXEC = os.environ.get("DMA_MPIEXEC", "mpirun")
FIXTURE = os.path.join(WORK, "fixture")
AGENT = os.path.join(FIXTURE, "agent.pt")
AGENT_ALL = os.path.join(FIXTURE, "agent-all-features.pt")  # its actor also reads the previous mixture
SPACE = os.path.join(FIXTURE, "data.space")
DMA_AGENT = os.path.join(BIN, "dma_agent")
TRAINER = os.path.join(SRC, "tools", "clients", "outside_trainer.py")
sys.path.insert(0, os.path.join(SRC, "tools", "clients"))
from dma_agent_client import AgentClient, AgentServiceError  # noqa: E402

HORIZON = 8
OPEN = {"domains": ["web", "news", "algebra", "geometry"], "fields": ["source", "source", "target", "target"],
        "base_losses": [3.1, 2.9, 2.6, 2.4], "token_shares": [0.6, 0.3, 0.06, 0.04], "horizon": 3}


def fresh_dir(name):
    d = os.path.join(WORK, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


class Service:
    """A `dma_agent serve` process on loopback; port 0 lets it pick a free port."""

    def __init__(self, state_dir, port=0, token_file=None, checkpoint=AGENT):
        cmd = [DMA_AGENT, "serve", "--checkpoint", checkpoint, "--listen", f"127.0.0.1:{port}", "--state-dir", state_dir]
        if token_file:
            cmd += ["--token-file", token_file]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.restored = None
        for line in self.proc.stdout:
            if "sessions restored" in line:
                self.restored = int(line.split()[1])
            if "listening on http://" in line:
                self.url = line.strip().split("listening on ")[1]
                self.port = int(self.url.rsplit(":", 1)[1])
                return
        raise RuntimeError("dma_agent serve did not start: " + self.proc.stderr.read())

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        return self.proc.returncode


def call(url, method="GET", body=None, token=None):
    """(status, JSON answer, raw text) of one request; `body` is bytes, str or a JSON value."""
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
            return r.status, json.loads(text), text
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, json.loads(text), text


def act(state, checkpoint=AGENT):
    path = os.path.join(WORK, f"state-{os.getpid()}-{threading.get_ident()}.json")
    with open(path, "w") as f:
        json.dump(state, f)
    p = subprocess.run([DMA_AGENT, "act", "--checkpoint", checkpoint, "--state", path], capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


def losses_at(step, k=0):
    """Some plausible held-out losses after `step` steps of run k."""
    return [3.1 - 0.01 * step * (1 + k), 2.9 - 0.005 * step, 2.6 - 0.1 * step * (1 + 0.1 * k), 2.4 - 0.08 * step]


class Fixture(unittest.TestCase):
    def test_setup(self):
        shutil.rmtree(FIXTURE, ignore_errors=True)
        os.makedirs(FIXTURE)
        p = subprocess.run([MAKE_AGENT, AGENT], capture_output=True, text=True, timeout=240)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([MAKE_AGENT, AGENT_ALL, "all"], capture_output=True, text=True, timeout=240)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([os.path.join(BIN, "dma_prepare"), "demo", "--out", SPACE, "--seed", "3",
                            "--categories", "computers,food,law,science", "--source-rows", "64",
                            "--target-train-rows", "24", "--target-eval-rows", "8", "--bench-problems", "8"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)


class ServiceCase(unittest.TestCase):
    checkpoint = AGENT

    def setUp(self):
        self.state_dir = fresh_dir(self.id().split(".", 1)[1])
        self.service = Service(self.state_dir, checkpoint=self.checkpoint)
        self.url = self.service.url

    def tearDown(self):
        self.service.stop()

    def open(self, body=OPEN):
        status, answer, text = call(self.url + "/v1/sessions", "POST", body)
        self.assertEqual(status, 201, text)
        return answer

    def refused(self, status, expect, method, path, body=None, token=None):
        """Asserts a one-line JSON error with `status` that contains `expect`."""
        code, answer, text = call(self.url + path, method, body, token)
        self.assertEqual(code, status, text)
        self.assertIn(expect, answer["error"])
        self.assertEqual(text.strip().count("\n"), 0, text)
        self.assertEqual(answer["schema"], "dma.agent/1")
        return answer["error"]

    def assert_unchanged(self, sid, before):
        self.assertEqual(call(f"{self.url}/v1/sessions/{sid}")[1], before)

    def bad_step(self, status, expect, body):
        """A session one step in refuses `body` as a step and stays as it was."""
        sid = self.open()["session"]
        self.assertEqual(call(f"{self.url}/v1/sessions/{sid}/step", "POST", {"step": 0, "losses": losses_at(1)})[0], 200)
        before = call(f"{self.url}/v1/sessions/{sid}")[1]
        with open(os.path.join(self.state_dir, sid + ".json")) as f:
            file_before = f.read()
        message = self.refused(status, expect, "POST", f"/v1/sessions/{sid}/step", body)
        self.assert_unchanged(sid, before)
        with open(os.path.join(self.state_dir, sid + ".json")) as f:
            self.assertEqual(f.read(), file_before)
        return message


class TestRequests(ServiceCase):
    def test_open_step_get_delete(self):
        a = self.open()
        self.assertEqual((a["step"], a["horizon"], a["done"]), (0, 3, False))
        self.assertAlmostEqual(sum(a["weights"]), 1.0, places=6)
        sid = a["session"]
        for t in range(3):
            code, b, text = call(f"{self.url}/v1/sessions/{sid}/step", "POST",
                                 {"schema": "dma.agent/1", "step": t, "losses": losses_at(t + 1), "tokens": 100 * t})
            self.assertEqual(code, 200, text)
            self.assertEqual(b["step"], t + 1)
        self.assertTrue(b["done"])
        self.assertIsNone(b["weights"])
        # source score: mean relative improvement of web and news over the base
        self.assertAlmostEqual(b["source_score"], ((3.1 - losses_at(3)[0]) / 3.1 + (2.9 - losses_at(3)[1]) / 2.9) / 2,
                               places=6)
        doc = call(f"{self.url}/v1/sessions/{sid}")[1]
        self.assertEqual(len(doc["steps"]), 3)
        self.assertEqual(len(doc["weights"]), 3)
        self.assertEqual(doc["steps"][2]["tokens"], 200)
        self.assertTrue(os.path.exists(os.path.join(self.state_dir, sid + ".json")))
        code, d, _ = call(f"{self.url}/v1/sessions/{sid}", "DELETE")
        self.assertEqual((code, d["deleted"]), (200, True))
        self.assertFalse(os.path.exists(os.path.join(self.state_dir, sid + ".json")))
        self.refused(404, "no session", "GET", f"/v1/sessions/{sid}")

    def test_malformed_json(self):
        self.refused(400, "malformed JSON", "POST", "/v1/sessions", '{"domains": [')
        self.bad_step(400, "malformed JSON", '{"step": 1, "losses": [1, 2,, 3]}')

    def test_body_not_an_object(self):
        self.refused(400, "not a JSON object", "POST", "/v1/sessions", "[1, 2]")

    def test_other_schema(self):
        self.refused(400, "is not dma.agent/1", "POST", "/v1/sessions", dict(OPEN, schema="dma.agent/0"))

    def test_nan_losses(self):
        message = self.bad_step(400, "NaN", '{"step": 1, "losses": [NaN, 2.9, 2.5, 2.3]}')
        self.assertIn("finite", message)
        self.bad_step(400, "losses[0] is null, not a number", {"step": 1, "losses": [None, 2.9, 2.5, 2.3]})
        self.refused(400, "number overflow parsing '1e999' (JSON has no NaN or Infinity", "POST", "/v1/sessions",
                     json.dumps(OPEN).replace("2.9", "1e999"))

    def test_negative_losses(self):
        self.bad_step(400, "losses[1] is -2: held-out losses must be finite and > 0",
                      {"step": 1, "losses": [3.0, -2, 2.5, 2.3]})
        self.refused(400, "base_losses[3] is 0", "POST", "/v1/sessions", dict(OPEN, base_losses=[3, 3, 2, 0]))

    def test_wrong_domain_count(self):
        self.bad_step(400, "'losses' has 3 entries for the session's 4 domains",
                      {"step": 1, "losses": [3.0, 2.9, 2.5]})
        self.refused(400, "'base_losses' has 5 entries", "POST", "/v1/sessions",
                     dict(OPEN, base_losses=[3, 3, 2, 2, 1]))

    def test_bad_field_list(self):
        self.refused(400, "'fields' must list one field", "POST", "/v1/sessions", dict(OPEN, fields=["source", "target"]))
        self.refused(400, 'fields[2] is "math"', "POST", "/v1/sessions",
                     dict(OPEN, fields=["source", "source", "math", "target"]))
        self.refused(400, "at least one source and one target", "POST", "/v1/sessions",
                     dict(OPEN, fields=["source"] * 4))
        self.refused(400, "'horizon' is 0", "POST", "/v1/sessions", dict(OPEN, horizon=0))
        self.refused(400, "'domains' is missing", "POST", "/v1/sessions", {k: v for k, v in OPEN.items() if k != "domains"})
        self.refused(400, "listed twice", "POST", "/v1/sessions", dict(OPEN, domains=["a", "b", "a", "c"]))

    def test_step_past_horizon(self):
        sid = self.open()["session"]
        for t in range(3):
            self.assertEqual(call(f"{self.url}/v1/sessions/{sid}/step", "POST", {"losses": losses_at(t + 1)})[0], 200)
        before = call(f"{self.url}/v1/sessions/{sid}")[1]
        self.refused(409, "has done its horizon of 3 steps", "POST", f"/v1/sessions/{sid}/step", {"losses": losses_at(4)})
        self.refused(409, "has done its horizon of 3 steps", "POST", f"/v1/sessions/{sid}/step",
                     {"step": 3, "losses": losses_at(4)})
        self.assert_unchanged(sid, before)

    def test_steps_out_of_order(self):
        self.bad_step(409, "the session is at step 1, not 2", {"step": 2, "losses": losses_at(3)})
        self.bad_step(409, "step 0 was already reported with other losses", {"step": 0, "losses": losses_at(7)})

    def test_repeat_of_the_last_step_gets_the_same_answer(self):
        sid = self.open()["session"]
        body = {"step": 0, "losses": losses_at(1)}
        first = call(f"{self.url}/v1/sessions/{sid}/step", "POST", body)[1]
        again = call(f"{self.url}/v1/sessions/{sid}/step", "POST", body)[1]
        self.assertTrue(again.pop("replayed"))
        self.assertEqual(first, again)
        self.assertEqual(call(f"{self.url}/v1/sessions/{sid}")[1]["step"], 1)

    def test_unknown_session(self):
        for method, path, body in [("GET", "/v1/sessions/0123456789abcdef0123456789abcdef", None),
                                   ("DELETE", "/v1/sessions/0123456789abcdef0123456789abcdef", None),
                                   ("POST", "/v1/sessions/0123456789abcdef0123456789abcdef/step",
                                    {"losses": losses_at(1)}),
                                   ("GET", "/v1/sessions/not-a-session", None)]:
            self.refused(404, "no session", method, path, body)
        self.refused(404, "no route", "GET", "/v2/anything")
        self.refused(404, "no route", "GET", "/v1/sessions/..%2F..%2Fetc")

    def test_sessions_at_once_get_what_each_would_get_alone(self):
        """Eight runs step concurrently; each gets the mixtures `dma_agent act` gives its state."""
        bodies = [dict(OPEN, horizon=4, base_losses=[3.1 + 0.01 * k, 2.9, 2.6, 2.4]) for k in range(8)]
        results, errors = [None] * 8, []

        def run(k):
            try:
                client = AgentClient(self.url)
                s = client.open(bodies[k]["domains"], bodies[k]["fields"], bodies[k]["base_losses"],
                                bodies[k]["token_shares"], 4)
                given = [s.weights]
                for t in range(3):
                    given.append(s.step(losses_at(t + 1, k)))
                results[k] = given
            except Exception as e:  # reported below, with the thread's failure
                errors.append(repr(e))

        threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        for k in range(8):
            state = dict(bodies[k], steps=[{"losses": losses_at(t + 1, k)} for t in range(3)])
            rc, out, err = act(state)
            self.assertEqual(rc, 0, err)
            self.assertEqual(json.loads(out)["weights"], results[k][3], f"run {k}")
        rc, out, err = act(dict(bodies[5], steps=[{"losses": losses_at(1, 5)}]))
        self.assertEqual(json.loads(out)["weights"], results[5][1])

    def test_restart_restores_sessions(self):
        sid = self.open()["session"]
        call(f"{self.url}/v1/sessions/{sid}/step", "POST", {"losses": losses_at(1)})
        gone = self.open()["session"]
        call(f"{self.url}/v1/sessions/{gone}", "DELETE")
        before = call(f"{self.url}/v1/sessions/{sid}")[1]
        self.service.kill9()
        torn = os.path.join(self.state_dir, "f" * 32 + ".json")
        with open(torn, "w") as f:
            f.write('{"domains": [')  # not restorable: reported, left in place, the others served
        self.service = Service(self.state_dir)
        self.assertEqual(self.service.restored, 1)
        self.assertTrue(os.path.exists(torn))
        self.url = self.service.url
        self.assertEqual(call(f"{self.url}/v1/sessions/{sid}")[1], before)
        self.refused(404, "no session", "GET", f"/v1/sessions/{gone}")
        self.assertEqual(call(f"{self.url}/healthz")[1]["sessions"], 1)
        # The session file is the state `dma_agent act` reads.
        rc, out, err = act(json.load(open(os.path.join(self.state_dir, sid + ".json"))))
        self.assertEqual((rc, json.loads(out)["weights"]), (0, before["weights"][1]), err)


def tracker_mixtures(run, checkpoint):
    """The agent's mixtures on `run` observed by obs::Tracker directly (tests/service/tracker_mixtures.cpp)."""
    path = os.path.join(WORK, f"run-{os.getpid()}-{threading.get_ident()}.json")
    with open(path, "w") as f:
        json.dump(run, f)
    p = subprocess.run([TRACKER_MIXTURES, checkpoint, path], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    return json.loads(p.stdout)


def whole_batches(weights, batches=8):
    """A mixture rounded to whole batches out of `batches`, as a trainer applies it."""
    counts = [round(w * batches) for w in weights]
    counts[counts.index(max(counts))] += batches - sum(counts)
    return [c / batches for c in counts]


class TestTrainedWeights(ServiceCase):
    """A step may say which mixture the run trained on; the session observes that one. The
    agent's actor reads the previous mixture, so what the session observes shows in its answers."""
    checkpoint = AGENT_ALL

    def test_weights_as_given_change_nothing(self):
        body = dict(OPEN, horizon=4)
        client = AgentClient(self.url)
        plain, told = [client.open(*[body[k] for k in ["domains", "fields", "base_losses", "token_shares", "horizon"]])
                       for _ in range(2)]
        for t in range(4):
            self.assertEqual(told.answer["weights"], plain.answer["weights"], f"step {t}")
            told.step(losses_at(t + 1), weights=told.weights)
            plain.step(losses_at(t + 1))
            self.assertEqual({k: v for k, v in told.answer.items() if k != "session"},
                             {k: v for k, v in plain.answer.items() if k != "session"})
        self.assertEqual(told.state()["steps"][1]["weights"], plain.state()["weights"][1])
        self.assertNotIn("weights", plain.state()["steps"][1])

    def test_other_weights_are_observed_as_dma_observes_them(self):
        body = dict(OPEN, horizon=4)
        sid = self.open(body)["session"]
        given, trained, steps = [], [], []
        for t in range(3):
            doc = call(f"{self.url}/v1/sessions/{sid}")[1]
            given.append(doc["weights"][t])
            # rounded to whole batches, then a researcher's override, then as given
            trained.append([whole_batches(given[t]), [0.1, 0.1, 0.1, 0.7], None][t])
            steps.append({"step": t, "losses": losses_at(t + 1)})
            if trained[t] is not None:
                steps[t]["weights"] = trained[t]
            code, answer, text = call(f"{self.url}/v1/sessions/{sid}/step", "POST", steps[t])
            self.assertEqual(code, 200, text)
        given.append(answer["weights"])
        self.assertNotEqual(trained[0], given[0])
        expected = tracker_mixtures(dict(body, steps=steps), self.checkpoint)
        self.assertEqual(given, expected)
        # The agent's own mixtures observed instead give other answers: the reported ones count.
        as_given = tracker_mixtures(dict(body, steps=[{"losses": s["losses"]} for s in steps]), self.checkpoint)
        self.assertEqual(as_given[0], expected[0])
        for t in (1, 2, 3):
            self.assertNotEqual(as_given[t], expected[t], f"step {t}")
        # Kept in the session: its file replays (restart, `dma_agent act`) to the same next mixture.
        state = json.load(open(os.path.join(self.state_dir, sid + ".json")))
        self.assertEqual([s.get("weights") for s in state["steps"]], trained)
        rc, out, err = act(state, self.checkpoint)
        self.assertEqual((rc, json.loads(out)["weights"]), (0, given[3]), err)
        # A repeat of the last step must name the same mixture trained on.
        self.refused(409, "step 2 was already reported with other losses or weights", "POST",
                     f"/v1/sessions/{sid}/step", dict(steps[2], weights=[0.25] * 4))
        again = call(f"{self.url}/v1/sessions/{sid}/step", "POST", dict(steps[2], weights=given[2]))[1]
        self.assertEqual((again["replayed"], again["weights"]), (True, given[3]))

    def test_bad_weights_are_refused_and_change_nothing(self):
        step = {"step": 1, "losses": losses_at(2)}
        for weights, expect in [([0.5, 0.5], "'weights' has 2 entries for the session's 4 domains"),
                                ([0.6, -0.1, 0.3, 0.2], "'weights': mixture weight 1 is -0.1: weights must be finite"),
                                ([0.3, 0.3, 0.3, 0.3], "'weights': mixture weights sum to 1.2: they must sum to 1"),
                                ([0.25, 0.25, None, 0.5], "weights[2] is null, not a number"),
                                ("uniform", "'weights' is string, not an array of numbers"),
                                ([], "'weights' has 0 entries")]:
            self.bad_step(400, expect, dict(step, weights=weights))
        message = self.bad_step(400, "NaN", '{"step": 1, "losses": [3, 2.9, 2.5, 2.3], "weights": [NaN, 0, 0, 1]}')
        self.assertIn("finite", message)
        rc, out, err = act(dict(OPEN, steps=[{"losses": losses_at(1), "weights": [1, 0, 0]}]), self.checkpoint)
        self.assertNotEqual(rc, 0)
        self.assertIn("'steps[0].weights' has 3 entries for the session's 4 domains", err)


class TestToken(unittest.TestCase):
    def test_bearer_token_is_required_when_set(self):
        d = fresh_dir("token")
        token_file = os.path.join(d, "token")
        with open(token_file, "w") as f:
            f.write("s3cret-token\n")
        service = Service(os.path.join(d, "sessions"), token_file=token_file)
        try:
            url = service.url
            for token in [None, "wrong", "s3cret-token-longer"]:
                code, answer, text = call(url + "/v1/sessions", "POST", OPEN, token=token)
                self.assertEqual(code, 401, text)
                self.assertIn("bearer token", answer["error"])
            self.assertEqual(os.listdir(os.path.join(d, "sessions")), [])
            code, answer, _ = call(url + "/v1/sessions", "POST", OPEN, token="s3cret-token")
            self.assertEqual(code, 201)
            self.assertEqual(call(url + f"/v1/sessions/{answer['session']}", token=None)[0], 401)
            self.assertEqual(call(url + f"/v1/sessions/{answer['session']}", token="s3cret-token")[0], 200)
            self.assertEqual(call(url + "/healthz")[0], 200)  # liveness probes need no token
            with self.assertRaises(AgentServiceError) as e:
                AgentClient(url, token="wrong").open(*[OPEN[k] for k in ["domains", "fields", "base_losses",
                                                                          "token_shares", "horizon"]])
            self.assertEqual(e.exception.status, 401)
        finally:
            service.stop()
        p = subprocess.run([DMA_AGENT, "serve", "--checkpoint", AGENT, "--token-file", os.path.join(d, "none")],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr, r"^dma_agent: token file '.*none' cannot be read")


class TestCli(unittest.TestCase):
    def test_checkpoint_that_is_not_an_agent(self):
        state = os.path.join(fresh_dir("cli"), "state.json")
        with open(state, "w") as f:
            json.dump(OPEN, f)
        for checkpoint, why in [(SPACE, "not a readable LibTorch archive"), ("/nonexistent/agent.pt", "does not exist")]:
            for cmd in [["act", "--checkpoint", checkpoint, "--state", state],
                        ["serve", "--checkpoint", checkpoint, "--listen", "127.0.0.1:0"]]:
                p = subprocess.run([DMA_AGENT, *cmd], capture_output=True, text=True, timeout=60)
                self.assertNotEqual(p.returncode, 0, cmd)
                self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
                self.assertIn(why, p.stderr)
                self.assertEqual(p.stdout, "")

    def test_act_prints_the_next_mixture_and_refuses_bad_state(self):
        rc, out, err = act(OPEN)
        self.assertEqual(rc, 0, err)
        a = json.loads(out)
        self.assertEqual((a["step"], a["done"], len(a["weights"])), (0, False, 4))
        rc, out, err = act(dict(OPEN, steps=[{"losses": [1, 2]}]))
        self.assertNotEqual(rc, 0)
        self.assertIn("'steps[0].losses' has 2 entries for the session's 4 domains", err)
        p = subprocess.run([DMA_AGENT, "serve", "--checkpoint", AGENT, "--listen", "nohost"], capture_output=True,
                           text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--listen 'nohost' is not HOST:PORT", p.stderr)


class TestClosedLoop(unittest.TestCase):
    def trainer(self, url, out, policies):
        return [TRAINER, "--space", SPACE, "--service", url, "--policies", policies, "--horizon", str(HORIZON),
                "--json", out]

    def test_outside_trainer_survives_kill_and_restart(self):
        d = fresh_dir("closed-loop")
        # The reference run: the agent against uniform, no restart.
        service = Service(os.path.join(d, "reference"))
        try:
            p = subprocess.run(["/usr/bin/python3", *self.trainer(service.url, os.path.join(d, "ref.json"),
                                                                  "agent,uniform")],
                               capture_output=True, text=True, timeout=300)
        finally:
            service.stop()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"agent\s+-?\d\.\d{4}\s+-?\d\.\d{4}")
        self.assertRegex(p.stdout, r"uniform\s+-?\d\.\d{4}\s+-?\d\.\d{4}")
        print(p.stdout)
        ref = json.load(open(os.path.join(d, "ref.json")))["runs"]
        agent = ref["agent"]
        self.assertEqual(len(agent["weights"]), HORIZON)
        for w in agent["weights"]:
            self.assertAlmostEqual(sum(w), 1.0, places=6)
        # The service scores the run's losses as the trainer does.
        self.assertAlmostEqual(agent["service_scores"][0], agent["source"], places=5)
        self.assertAlmostEqual(agent["service_scores"][1], agent["target"], places=5)
        self.assertNotEqual(agent["params_sha256"], ref["uniform"]["params_sha256"])

        # The same run, with the service killed (-9) mid-run and restarted on its port.
        state_dir = os.path.join(d, "restarted")
        service = Service(state_dir)
        port = service.port
        run = subprocess.Popen(["/usr/bin/python3", *self.trainer(service.url, os.path.join(d, "restarted.json"),
                                                                  "agent")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in run.stderr], daemon=True).start()
        try:
            steps_at_kill = self.wait_for_steps(state_dir, 3, run)
            run.send_signal(signal.SIGSTOP)  # hold the trainer while the service dies
            steps_at_kill = self.wait_for_steps(state_dir, steps_at_kill, run)
            service.kill9()
            run.send_signal(signal.SIGCONT)
            self.wait_for_line(lines, "retrying", 120)  # the trainer found the service gone
            service = Service(state_dir, port=port)
            self.assertEqual(service.restored, 1)
            out, _ = run.communicate(timeout=300)
        finally:
            if run.poll() is None:
                run.kill()
            service.stop()
        self.assertEqual(run.returncode, 0, out)
        self.assertLess(steps_at_kill, HORIZON)
        again = json.load(open(os.path.join(d, "restarted.json")))["runs"]["agent"]
        self.assertGreater(again["retries"], 0)
        self.assertEqual(again["weights"], agent["weights"])
        self.assertEqual(again["params_sha256"], agent["params_sha256"])

    def wait_for_steps(self, state_dir, at_least, run):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.assertIsNone(run.poll(), "the trainer ended before the service was killed")
            for name in os.listdir(state_dir):
                if name.endswith(".json"):
                    try:
                        steps = len(json.load(open(os.path.join(state_dir, name)))["steps"])
                    except ValueError:
                        continue  # read while renamed over: try again
                    if steps >= at_least:
                        return steps
            time.sleep(0.005)
        self.fail(f"the run never reached step {at_least}")

    def wait_for_line(self, lines, text, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if text in lines.get(timeout=1):
                    return
            except queue.Empty:
                pass
        self.fail(f"the trainer never printed '{text}'")


class TestSameAsOrchestrator(unittest.TestCase):
    def test_agent_rollout_in_dma_replays_to_the_same_mixtures(self):
        """An agent episode that dma_orchestrate rolled out on proxies, replayed through the
        service from its stored losses, gets the same mixtures at every step."""
        import h5py
        d = fresh_dir("orchestrator")
        config = os.path.join(SRC, "configs", "test-tiny.ini")
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_rmaps_base_oversubscribe="1")
        common = [os.path.join(BIN, "dma_orchestrate"), "--config", config, f"--run.dir={d}", f"--data.space={SPACE}",
                  "--train.horizon=5"]
        p = subprocess.run([*common, "--mode", "pretrain"], capture_output=True, text=True, timeout=240, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = subprocess.run([MPIEXEC, "-n", "2", "--oversubscribe", *common, "--mode", "evaluate",
                            f"--evaluate.policies=agent:{AGENT}?noise=0", "--evaluate.seeds=1"],
                           capture_output=True, text=True, timeout=240, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with h5py.File(os.path.join(d, "eval.h5"), "r", swmr=True) as f:
            names = [x.decode() if isinstance(x, bytes) else str(x) for x in f.attrs["domain_names"]]
            fields = [x.decode() if isinstance(x, bytes) else str(x) for x in f.attrs["domain_fields"]]
            base = [float(x) for x in f.attrs["base_eval_loss"]]
            shares = [float(x) for x in f.attrs["token_shares"]]
            actions = f["actions"][()]
            losses = f["infos/eval_loss"][()]
            steps = f["infos/step"][()]
        order = steps.argsort()
        actions, losses = actions[order], losses[order]
        self.assertEqual(len(actions), 5)
        service = Service(os.path.join(d, "sessions"))
        try:
            s = AgentClient(service.url).open(names, fields, base, shares, 5)
            given = [s.weights]
            for t in range(4):
                given.append(s.step([float(x) for x in losses[t]]))
        finally:
            service.stop()
        for t in range(5):
            for a, b in zip(given[t], actions[t]):
                self.assertAlmostEqual(a, float(b), places=6, msg=f"step {t}")


if __name__ == "__main__":
    sys.argv[1:] = sys.argv[1:] or []
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
