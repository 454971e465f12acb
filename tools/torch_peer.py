#!/usr/bin/python3
"""PyTorch peer for `make bench`: the same networks as ReAge's engine (layer
for layer, same shapes and parameter layout), timed on the same cores.

Prints one line a case, like build/reage-bench:  CASE <name> ms=<median>
Run with Debian's python3-torch (/usr/bin/python3); tools/bench.sh sets
GLIBC_TUNABLES so that PyTorch keeps freed memory, its fastest setting here.
"""
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
REPS = int(os.environ.get("BENCH_REPS", "7"))
torch.set_num_threads(THREADS)
torch.manual_seed(0)


class SeedDiscriminator(nn.Module):
    """The seed's PatchGAN: (input, its age channel, output, its age channel)."""

    def __init__(self, res, groups, width=64, pair=True):
        super().__init__()
        self.res, self.pair = res, pair
        if pair:
            self.age_embedding_in = nn.Embedding(groups, res * res)
        self.age_embedding_out = nn.Embedding(groups, res * res)
        n = width
        cin = 8 if pair else 4
        self.net = nn.Sequential(
            nn.Conv2d(cin, n, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(n, 2 * n, 4, 2, 1), nn.BatchNorm2d(2 * n), nn.ReLU(),
            nn.Conv2d(2 * n, 4 * n, 4, 2, 1), nn.BatchNorm2d(4 * n), nn.ReLU(),
            nn.Conv2d(4 * n, 8 * n, 4, 1, 1), nn.BatchNorm2d(8 * n), nn.ReLU(),
            nn.Conv2d(8 * n, 1, 4, 1, 1))

    def forward(self, x, g_in, y, g_out):
        r = self.res
        eo = self.age_embedding_out(g_out).view(-1, 1, r, r)
        if self.pair:
            ei = self.age_embedding_in(g_in).view(-1, 1, r, r)
            inp = torch.cat([x, ei, y, eo], 1)
        else:
            inp = torch.cat([y, eo], 1)
        return self.net(inp)


def block(cin, cout, stride):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class Generator(nn.Module):
    """ReAge's generator (src/model.c): U-Net encoder, FiLM residual blocks
    driven by a personalized age code, decoder with skips, y = x + delta."""

    def __init__(self, res=128, groups=6, width=16, rch=128, nres=4, code=64, hidden=256):
        super().__init__()
        w = [width, 2 * width, 4 * width, rch]
        self.res, self.rch, self.nres = res, rch, nres
        self.age_embedding = nn.Parameter(torch.randn(groups, res * res))
        cin = 4
        self.enc = nn.ModuleList()
        for level in range(4):
            self.enc.append(block(cin, w[level], 1 if level == 0 else 2))
            cin = w[level]
        self.code = nn.Linear(groups, code, bias=False)
        self.mlp1 = nn.Linear(code + rch, hidden)
        self.mlp2 = nn.Linear(hidden, nres * 4 * rch)
        self.res_convs = nn.ModuleList([block(rch, rch, 1) for _ in range(2 * nres)])
        self.dec = nn.ModuleList()
        for k in (2, 1, 0):
            below = rch if k == 2 else w[k + 1]
            self.dec.append(block(below + w[k], w[k], 1))
        self.out = nn.Conv2d(w[0], 3, 3, 1, 1)

    def forward(self, x, gw):
        r = self.res
        emb = (gw @ self.age_embedding).view(-1, 1, r, r)
        h = torch.cat([x, emb], 1)
        skips = []
        for conv in self.enc:
            h = F.leaky_relu(F.instance_norm(conv(h)), 0.2)
            skips.append(h)
        pooled = h.mean((2, 3))
        mod = self.mlp2(F.relu(self.mlp1(torch.cat([self.code(gw), pooled], 1))))
        c = self.rch
        for i in range(self.nres):
            m = mod[:, i * 4 * c:(i + 1) * 4 * c, None, None]
            t = F.instance_norm(self.res_convs[2 * i](h)) * (1 + m[:, :c]) + m[:, c:2 * c]
            t = F.instance_norm(self.res_convs[2 * i + 1](F.relu(t))) * (1 + m[:, 2 * c:3 * c]) + m[:, 3 * c:]
            h = h + t
        for j, k in enumerate((2, 1, 0)):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = F.leaky_relu(F.instance_norm(self.dec[j](torch.cat([h, skips[k]], 1))), 0.2)
        return x + self.out(h)


class Estimator(nn.Module):
    def __init__(self, res=128, groups=6, width=16):
        super().__init__()
        layers, cin = [], 3
        for mult in (1, 2, 4, 8, 8):
            layers += [nn.Conv2d(cin, mult * width, 3, 2, 1, bias=False), nn.BatchNorm2d(mult * width), nn.ReLU()]
            cin = mult * width
        self.net = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, groups)

    def forward(self, x):
        return self.fc(self.net(x).mean((2, 3)))


def timed(name, fn):
    fn()
    times = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    print(f"CASE {name} ms={times[len(times) // 2]:.1f}", flush=True)


def bench_disc(res, B=8):
    d = SeedDiscriminator(res, 3)
    x, y = torch.rand(B, 3, res, res) * 2 - 1, torch.rand(B, 3, res, res) * 2 - 1
    g = torch.arange(B) % 3

    def step():
        d.zero_grad(set_to_none=False)
        d(x, g, y, g).mean().backward()
    timed(f"seed_disc_fwd_bwd_b8_{res}", step)


def bench_gen(B=8):
    gen = Generator()
    x = torch.rand(B, 3, 128, 128) * 2 - 1
    gw = F.one_hot(torch.arange(B) % 6, 6).float()

    def step():
        gen.zero_grad(set_to_none=False)
        (gen(x, gw) * 1e-4).sum().backward()
    timed("gen_fwd_bwd_b8_128", step)
    with torch.no_grad():
        timed("gen_fwd_b8_128", lambda: gen(x, gw))


def bench_step(B=8, G=6):
    """One training step as src/trainer.c takes it (the shipped configuration)."""
    gen, disc, est = Generator(), SeedDiscriminator(128, G, width=32, pair=False), Estimator()
    opt_g = torch.optim.Adam(gen.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_e = torch.optim.Adam(est.parameters(), 5e-4, betas=(0.9, 0.999))
    x = torch.rand(B, 3, 128, 128) * 2 - 1
    src = torch.arange(B) % G
    tgt = (src + 1 + torch.randint(0, G - 1, (B,))) % G
    wrong = (src + 1 + torch.randint(0, G - 1, (B,))) % G
    oh = lambda g: F.one_hot(g, G).float()

    def step():
        opt_e.zero_grad()
        F.cross_entropy(est(x), src).backward()
        opt_e.step()
        y = gen(x, oh(tgt))
        opt_d.zero_grad()
        loss_d = ((disc(None, None, x, src) - 1) ** 2).mean() + (disc(None, None, y.detach(), tgt) ** 2).mean() \
            + 0.5 * (disc(None, None, x, wrong) ** 2).mean()
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        for p in list(disc.parameters()) + list(est.parameters()):
            p.requires_grad_(False)
        est.eval()
        loss = 10 * (gen(x, oh(src)) - x).abs().mean() + 10 * (gen(y, oh(src)) - x).abs().mean() \
            + ((disc(None, None, y, tgt) - 1) ** 2).mean() + F.cross_entropy(est(y), tgt) + (y - x).abs().mean()
        loss.backward()
        est.train()
        for p in list(disc.parameters()) + list(est.parameters()):
            p.requires_grad_(True)
        opt_g.step()
    timed("train_step_b8_128", step)


if __name__ == "__main__":
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, median of {REPS}")
    if only in ("", "disc"):
        bench_disc(128)
        bench_disc(256)
    if only in ("", "gen"):
        bench_gen()
    if only in ("", "step"):
        bench_step()
