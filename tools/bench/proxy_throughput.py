#!/usr/bin/python3
"""The proxy model as a plain PyTorch script: the baseline of bench/proxy_throughput and the
golden reference of tests/proxy (run with Debian's /usr/bin/python3, torch 1.13).

Same architecture as src/proxy/model.cpp: token embedding, N blocks of RMSNorm -> causal
multi-head attention with rotary embeddings (rotate-half form) -> RMSNorm -> SwiGLU MLP,
final RMSNorm, head tied to the embedding; fused qkv and gate|up projections, no biases.
Trained the idiomatic way: torch.optim.AdamW (decay on matrices except the embedding),
clip_grad_norm_, warm-up + cosine learning rate.

  proxy_throughput.py bench --d-model 64 --n-layers 2 --n-heads 4 --ffn-hidden 128 \
      --seq-len 64 --vocab 256 --batch 16 --steps 30 --chunk 10  # one JSON line, best chunk
  proxy_throughput.py golden DIR                          # reads DIR/*.bin, writes outputs
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Block(nn.Module):
    def __init__(self, d, heads, ffn):
        super().__init__()
        self.heads = heads
        self.attn_norm = RMSNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.mlp_norm = RMSNorm(d)
        self.gate_up = nn.Linear(d, 2 * ffn, bias=False)
        self.down = nn.Linear(ffn, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, d = x.shape
        hd = d // self.heads
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, self.heads, hd).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, hd)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        h = x + self.proj(y)
        gate, up = self.gate_up(self.mlp_norm(h)).chunk(2, dim=-1)
        return h + self.down(F.silu(gate) * up)


class ProxyLM(nn.Module):
    def __init__(self, vocab, seq_len, d, layers, heads, ffn):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads, ffn) for _ in range(layers))
        self.final_norm = RMSNorm(d)
        hd = d // heads
        inv_freq = 10000.0 ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2.0 / hd)
        ang = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
        self.register_buffer("cos", torch.cat((ang.cos(), ang.cos()), -1).float(), persistent=False)
        self.register_buffer("sin", torch.cat((ang.sin(), ang.sin()), -1).float(), persistent=False)
        self.register_buffer("mask", torch.ones(seq_len, seq_len, dtype=torch.bool).triu(1), persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 1:
                continue
            std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "down.weight")) else 0.02
            nn.init.normal_(p, 0.0, std)

    def forward(self, tokens):
        t = tokens.shape[1]
        x = self.embed(tokens)
        cos, sin = self.cos[:t], self.sin[:t]
        for block in self.blocks:
            x = block(x, cos, sin, self.mask)
        return self.final_norm(x) @ self.embed.weight.t()


def make_optimizer(model, lr, weight_decay=0.1, betas=(0.9, 0.95)):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("embed.")]
    keep = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and not n.startswith("embed."))]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8)


def lr_at(step, total, peak, warmup, min_ratio=0.1):
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    progress = min(max((step - warmup) / max(1, total - warmup), 0.0), 1.0)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_step(model, opt, tokens, lr, clip=1.0):
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    logits = model(tokens[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss.item()


def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ProxyLM(args.vocab, args.seq_len, args.d_model, args.n_layers, args.n_heads, args.ffn_hidden)
    opt = make_optimizer(model, 2e-3)
    total = args.warmup + args.steps
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(args.vocab, (args.batch, args.seq_len + 1), generator=gen) for _ in range(8)]
    for s in range(args.warmup):
        train_step(model, opt, batches[s % len(batches)], lr_at(s, total, 2e-3, 10))
    # Best chunk of `chunk` steps: on a shared machine the best interval is the least disturbed.
    rates, step = [], args.warmup
    for _ in range(max(1, args.steps // args.chunk)):
        start = time.perf_counter()
        for _ in range(args.chunk):
            loss = train_step(model, opt, batches[step % len(batches)], lr_at(step, total, 2e-3, 10))
            step += 1
        rates.append(args.chunk * args.batch * args.seq_len / (time.perf_counter() - start))
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"tokens_per_s": max(rates), "median_tokens_per_s": sorted(rates)[len(rates) // 2],
                      "steps": step - args.warmup, "params": params, "loss": loss}))


def read_bin(path, dtype, shape):
    data = open(path, "rb").read()
    return torch.frombuffer(bytearray(data), dtype=dtype).reshape(shape).clone()


def golden(directory):
    """Reads the C++ model's weights and a token batch, writes logits, loss and gradients."""
    shape = json.load(open(os.path.join(directory, "shape.json")))
    model = ProxyLM(shape["vocab"], shape["seq_len"], shape["d_model"], shape["n_layers"], shape["n_heads"],
                    shape["ffn_hidden"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(read_bin(os.path.join(directory, f"param.{name}.bin"), torch.float32, p.shape))
    tokens = read_bin(os.path.join(directory, "tokens.bin"), torch.int64, (shape["batch"], shape["seq_len"] + 1))
    logits = model(tokens[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    loss.backward()
    logits.detach().numpy().tofile(os.path.join(directory, "out.logits.bin"))
    loss.detach().reshape(1).numpy().tofile(os.path.join(directory, "out.loss.bin"))
    for name, p in model.named_parameters():
        p.grad.numpy().tofile(os.path.join(directory, f"out.grad.{name}.bin"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench")
    for key, default in [("d-model", 64), ("n-layers", 2), ("n-heads", 4), ("ffn-hidden", 128), ("seq-len", 64),
                         ("vocab", 256), ("batch", 16), ("steps", 30), ("chunk", 10), ("warmup", 3),
                         ("threads", 1)]:
        b.add_argument("--" + key, type=int, default=default)
    g = sub.add_parser("golden")
    g.add_argument("directory")
    args = parser.parse_args()
    if args.command == "bench":
        bench(args)
    else:
        golden(args.directory)


if __name__ == "__main__":
    sys.exit(main())
