"""Reference client of `dma_agent serve` (Python standard library only).

    from dma_agent_client import AgentClient
    agent = AgentClient("http://127.0.0.1:8642")            # token="..." when the service wants one
    run = agent.open(domains, fields, base_losses, token_shares, horizon)
    weights = run.weights                                    # the mixture for step 0
    for step in range(horizon):
        train_one_step(weights)                              # your trainer
        weights = run.step(held_out_losses(), tokens=tokens_so_far)   # None after the last step
        # or, when the run trained on another mixture (rounded to whole batches, overridden):
        # weights = run.step(held_out_losses(), weights=mixture_trained_on)

Payloads follow docs/agent-service.md. A request that fails to reach the service (a restart,
a dropped connection) is retried for `retry_seconds`; a step carries its index, so a step the
service already took is answered again rather than taken twice."""
import json
import math
import time
import urllib.error
import urllib.request

SCHEMA = "dma.agent/1"


class AgentServiceError(Exception):
    """The service refused a request: `status` is the HTTP status, the message its one line."""

    def __init__(self, status, message):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class AgentClient:
    def __init__(self, url="http://127.0.0.1:8642", token=None, retry_seconds=30.0, timeout=30.0):
        self.url = url.rstrip("/")
        self.token = token
        self.retry_seconds = retry_seconds
        self.timeout = timeout
        self.retries = 0  # requests sent again after a failure to reach the service
        self.on_retry = None  # called with the error at the first retry of each outage

    def request(self, method, path, body=None):
        """The answer's JSON; raises AgentServiceError on a 4xx/5xx answer."""
        data = None
        if body is not None:
            data = json.dumps(dict(body, schema=SCHEMA), allow_nan=False).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        deadline = time.monotonic() + self.retry_seconds
        for attempt in range(1 << 30):
            req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                text = e.read().decode(errors="replace")
                try:
                    message = json.loads(text)["error"]
                except (ValueError, KeyError, TypeError):
                    message = text.strip()
                raise AgentServiceError(e.code, message) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"dma_agent at {self.url} unreachable for {self.retry_seconds} s: {e}")
                if self.on_retry and attempt == 0:
                    self.on_retry(e)
                self.retries += 1
                time.sleep(0.1)

    def health(self):
        return self.request("GET", "/healthz")

    def open(self, domains, fields, base_losses, token_shares, horizon):
        """Opens a session for one training run; its `weights` are the mixture for step 0."""
        for name, values in (("base_losses", base_losses), ("token_shares", token_shares)):
            if any(not math.isfinite(x) for x in values):
                raise ValueError(f"{name} must be finite numbers")
        answer = self.request("POST", "/v1/sessions", {
            "domains": list(domains), "fields": list(fields), "base_losses": [float(x) for x in base_losses],
            "token_shares": [float(x) for x in token_shares], "horizon": int(horizon)})
        return Session(self, answer)

    def session(self, session_id):
        """A session opened earlier (by this process or another)."""
        doc = self.request("GET", f"/v1/sessions/{session_id}")
        return Session(self, doc)


class Session:
    def __init__(self, client, answer):
        self.client = client
        self.id = answer["session"]
        self.answer = answer

    @property
    def weights(self):
        """The mixture for the next step (None once the horizon is done)."""
        return self.answer["weights"]

    @property
    def step_index(self):
        return self.answer["step"]

    def step(self, losses, tokens=None, weights=None):
        """Reports the held-out losses after the step just trained; returns the next mixture.
        `weights`: the mixture the step actually trained on, when not the one given (one per
        domain, >= 0, summing to 1 within 1e-4); the agent then observes that one."""
        body = {"step": self.answer["step"], "losses": [float(x) for x in losses]}
        if tokens is not None:
            body["tokens"] = int(tokens)
        if weights is not None:
            if any(not math.isfinite(x) for x in weights):
                raise ValueError("weights must be finite numbers")
            body["weights"] = [float(x) for x in weights]
        self.answer = self.client.request("POST", f"/v1/sessions/{self.id}/step", body)
        return self.weights

    def state(self):
        return self.client.request("GET", f"/v1/sessions/{self.id}")

    def close(self):
        return self.client.request("DELETE", f"/v1/sessions/{self.id}")
