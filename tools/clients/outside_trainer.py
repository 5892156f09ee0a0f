#!/usr/bin/python3
"""An outside continual pre-training run steered by `dma_agent serve` (closed loop).

It stands for a user's own trainer: a small causal LM in plain PyTorch (Debian's
python3-torch, none of dma's proxy code) trained on a dma domain space (the HDF5 file
`dma_prepare` writes). It pre-trains a base on the source field, then runs the horizon twice
from that base: once taking each step's mixture from the service, once under the uniform
mixture, and prints both runs' final source and target scores (each field's mean relative
held-out loss improvement over the base, as dma scores its own runs).

    build/bin/dma_agent serve --checkpoint runs/me/agent.pt &
    /usr/bin/python3 tools/clients/outside_trainer.py --space runs/me/data.space
"""
import argparse
import hashlib
import json
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dma_agent_client import AgentClient  # noqa: E402


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def load_space(path, eval_rows):
    """[(name, field, train rows (N, L+1), eval rows (M, L+1))] in the file's domain order, vocab."""
    with h5py.File(path, "r") as f:
        group = f["domains"]
        order = [text(n) for n in f.attrs["domain_order"]] if "domain_order" in f.attrs else sorted(group)
        domains = []
        for name in order:
            g = group[name]
            field = text(g.attrs["field"] if "field" in g.attrs else g["eval"].attrs["field"])
            train = torch.from_numpy(g["train"][()].astype(np.int64))
            evaluation = torch.from_numpy(g["eval"][:eval_rows].astype(np.int64))
            domains.append((name, field, train, evaluation))
        return domains, int(f.attrs["vocab_size"])


class TinyLM(torch.nn.Module):
    """A decoder-only transformer: token and position embeddings, causal self-attention blocks."""

    def __init__(self, vocab, length, width, layers, heads):
        super().__init__()
        self.tokens = torch.nn.Embedding(vocab, width)
        self.positions = torch.nn.Embedding(length, width)
        block = torch.nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True)
        self.blocks = torch.nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(width, vocab)
        self.register_buffer("causal", torch.triu(torch.full((length, length), float("-inf")), diagonal=1))

    def forward(self, x):  # (B, L) -> (B, L, vocab)
        n = x.shape[1]
        h = self.tokens(x) + self.positions(torch.arange(n))
        return self.head(self.blocks(h, mask=self.causal[:n, :n]))


def nll(model, rows):
    logits = model(rows[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))


def train_steps(model, opt, domains, weights, steps, batch, gen):
    """`steps` optimizer steps on batches whose rows come from domains drawn by `weights`."""
    model.train()
    w = torch.tensor(weights, dtype=torch.float64)
    for _ in range(steps):
        picks = torch.multinomial(w, batch, replacement=True, generator=gen)
        rows = [domains[d][2][torch.randint(domains[d][2].shape[0], (1,), generator=gen)] for d in picks.tolist()]
        loss = nll(model, torch.cat(rows))
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.no_grad()
def held_out_losses(model, domains):
    model.eval()
    return [float(nll(model, d[3])) for d in domains]


def field_scores(losses, base, fields):
    def score(field):
        gains = [(b - x) / b for x, b, f in zip(losses, base, fields) if f == field]
        return sum(gains) / len(gains) if gains else 0.0
    return score("source"), score("target")


def params_digest(model):
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().numpy().tobytes())
    return h.hexdigest()


def run(args, policy, base_state, domains, base, shares, client):
    names = [d[0] for d in domains]
    fields = [d[1] for d in domains]
    torch.manual_seed(args.seed)
    model = TinyLM(args.vocab, args.length, args.width, args.layers, args.heads)
    model.load_state_dict(base_state)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed + 1)
    session = None
    if policy == "agent":
        session = client.open(names, fields, base, shares, args.horizon)
        print(f"outside_trainer: session {session.id} opened", flush=True)
        weights = session.weights
    else:
        weights = [1.0 / len(domains)] * len(domains)
    given, tokens = [], 0
    for step in range(args.horizon):
        given.append(weights)
        train_steps(model, opt, domains, weights, args.steps_per_round, args.batch, gen)
        tokens += args.steps_per_round * args.batch * (args.length)
        losses = held_out_losses(model, domains)
        if session is not None:
            weights = session.step(losses, tokens=tokens)
    source, target = field_scores(losses, base, fields)
    out = {"weights": given, "source": source, "target": target, "params_sha256": params_digest(model)}
    if session is not None:
        out.update(session=session.id, service_scores=[session.answer["source_score"], session.answer["target_score"]],
                   retries=client.retries)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", required=True, help="domain space (HDF5) written by dma_prepare")
    p.add_argument("--service", default="http://127.0.0.1:8642", help="dma_agent serve's URL")
    p.add_argument("--token-file", help="file holding the service's bearer token")
    p.add_argument("--policies", default="agent,uniform", help="runs to make: agent, uniform or both")
    p.add_argument("--horizon", type=int, default=8, help="re-weighting steps")
    p.add_argument("--steps-per-round", type=int, default=4, help="optimizer steps between re-weightings")
    p.add_argument("--pretrain-steps", type=int, default=40, help="base model's steps on the source field")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--eval-rows", type=int, default=8, help="held-out rows per domain")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="also write each run's mixtures, scores and a digest of its weights here")
    args = p.parse_args()
    torch.set_num_threads(1)  # one thread: bit-identical reruns

    domains, args.vocab = load_space(args.space, args.eval_rows)
    args.length = domains[0][2].shape[1] - 1
    rows = [d[2].shape[0] for d in domains]
    shares = [r / sum(rows) for r in rows]  # natural token shares, as dma computes them
    fields = [d[1] for d in domains]

    torch.manual_seed(args.seed)
    model = TinyLM(args.vocab, args.length, args.width, args.layers, args.heads)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    source_total = sum(s for s, f in zip(shares, fields) if f == "source")
    natural_source = [s / source_total if f == "source" else 0.0 for s, f in zip(shares, fields)]
    train_steps(model, opt, domains, natural_source, args.pretrain_steps, args.batch, torch.Generator().manual_seed(args.seed))
    base = held_out_losses(model, domains)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}

    token = None
    if args.token_file:
        with open(args.token_file) as f:
            token = f.readline().strip()
    client = AgentClient(args.service, token=token)
    client.on_retry = lambda e: print(f"outside_trainer: dma_agent unreachable ({e}), retrying", file=sys.stderr,
                                      flush=True)
    results = {}
    for policy in [x.strip() for x in args.policies.split(",") if x.strip()]:
        if policy not in ("agent", "uniform"):
            p.error(f"--policies: '{policy}' is neither agent nor uniform")
        results[policy] = run(args, policy, base_state, domains, base, shares, client)

    print(f"{'policy':<10} {'source':>9} {'target':>9}")
    for policy, r in results.items():
        print(f"{policy:<10} {r['source']:>9.4f} {r['target']:>9.4f}")
    if "agent" in results and "uniform" in results:
        a, u = results["agent"], results["uniform"]
        print(f"{'agent-uniform':<10} {a['source'] - u['source']:>+9.4f} {a['target'] - u['target']:>+9.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"base_losses": base, "domains": [d[0] for d in domains], "runs": results}, f)


if __name__ == "__main__":
    main()
