"""Train a slate policy against the simulated users, then A/B it like any recommender.

    python examples/train_policy.py                  # small default: ~2-4 minutes on 2 cores
    python examples/train_policy.py --updates 200    # longer training

What it shows, step by step:

1. ``RecarenaVectorEnv`` steps B sessions of distinct users as ONE engine batch. The policy sees
   only what a recommender could log (docs/rl.md) and picks a slate of item ids.
2. REINFORCE with a Plackett-Luce slate distribution (sample k distinct items from the softmax
   of the policy's scores; the log-probability of the slate is the sum over slots of "this item
   among those still left"). Two policies are trained from the same seed, on the same users and
   noise (common random numbers): a *myopic* one (discount 0: clicks on this page only) and a
   *session* one (discount 0.9: clicks on this and later pages, so keeping the user browsing
   pays).
3. Each policy is saved as TorchScript and becomes an arm (``type: policy``) of an ordinary
   scenario next to popularity and matrix factorisation. ``recarena run`` simulates every arm
   on the same users and prints the A/B table with confidence intervals: CTR (myopic) next to
   session length and return rate (long-term).

Everything is written under ``--out`` (default ``runs/rl_example``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from recarena.gym import RecarenaVectorEnv

SCENARIO = {
    "name": "rl_example",
    "seed": 11,
    "replicates": 2,
    "horizon": {"days": 5, "tick_seconds": 120},
    "catalog": {"initial_items": 500, "topics": 12},
    "population": {"users": 1000},
    "creators": {"count": 10},
    "surface": {"type": "list", "k": 10},
    "arms": [
        {"name": "popularity", "recommender": {"type": "popularity"}},
        {"name": "mf", "recommender": {"type": "mf", "params": {"dim": 16, "epochs": 3}}},
    ],
    "baseline": "popularity",
    "metrics": ["ctr", "session_length", "consumption_per_session", "return_rate"],
}


class SlatePolicy(nn.Module):
    """Scores every item: a small MLP maps what is observable about the user (consumed topic
    mix, recent history's topics, session position) to a taste vector over topics; an item's
    score is that vector times the item's topic mix (public catalog data) plus a learnt bias."""

    def __init__(self, item_topics: torch.Tensor, hidden: int = 64) -> None:
        super().__init__()
        n_topics = item_topics.shape[1]
        self.register_buffer("topics", item_topics)
        self.bias = nn.Parameter(torch.zeros(item_topics.shape[0]))
        self.user = nn.Sequential(
            nn.Linear(2 * n_topics + 4, hidden), nn.ReLU(), nn.Linear(hidden, n_topics)
        )

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        history = obs["history"].long()
        valid = (history >= 0).float().unsqueeze(-1)
        recent = (self.topics[history.clamp(min=0)] * valid).sum(1) / valid.sum(1).clamp(min=1.0)
        session = obs["session"].float() / torch.tensor([30.0, 10.0, 10.0, 10.0])
        features = torch.cat([obs["topic_mix"].float(), recent, session], dim=1)
        return self.user(features) @ self.topics.T + self.bias


def sample_slates(scores: torch.Tensor, allowed: torch.Tensor, k: int):
    """k distinct items per row from the Plackett-Luce distribution of ``scores`` (masked to
    ``allowed``), and each slate's log-probability."""
    masked = scores.masked_fill(~allowed, float("-inf"))
    gumbel = -torch.log(-torch.log(torch.rand_like(masked).clamp(1e-9, 1.0)))
    slates = torch.topk(masked.detach() + gumbel, k, dim=1).indices
    logp = torch.zeros(scores.shape[0])
    left = masked
    for j in range(k):
        chosen = slates[:, j : j + 1]
        logp = logp + left.gather(1, chosen).squeeze(1) - torch.logsumexp(left, dim=1)
        left = left.scatter(1, chosen, float("-inf"))
    return slates, logp


def train(args: argparse.Namespace, discount: float, label: str) -> SlatePolicy:
    env = RecarenaVectorEnv(args.batch, SCENARIO, reward="clicks")
    k = env.driver.k
    topics = torch.as_tensor(env.driver.world.catalog.topics[: env.driver.n_items])
    policy = SlatePolicy(topics)
    optimiser = torch.optim.Adam(policy.parameters(), lr=args.lr)
    started = time.perf_counter()
    block: list[float] = []
    for update in range(args.updates):
        if update % args.reset_every == 0:
            # back to the world as built (a new seed: other users and noise) every few updates,
            # so training sees the first days of users' lives, as the A/B below does, and the
            # blocks' clicks per page compare; never resetting, users keep consuming and satiate
            obs, _ = env.reset(seed=args.seed + update)
        logps, rewards, dones = [], [], []
        for _ in range(args.horizon):
            tensors = {name: torch.as_tensor(value) for name, value in obs.items()}
            allowed = torch.as_tensor(env.valid_items())
            slates, logp = sample_slates(policy(tensors), allowed, k)
            obs, reward, terminated, truncated, _ = env.step(slates.numpy())
            logps.append(logp)
            rewards.append(torch.as_tensor(reward))
            dones.append(torch.as_tensor(terminated | truncated))
        returns, running = [], torch.zeros(args.batch)
        for reward, done in zip(reversed(rewards), reversed(dones), strict=True):
            running = reward + discount * running * (~done).float()
            returns.append(running)
        returns_t = torch.stack(returns[::-1])
        advantage = returns_t - returns_t.mean(dim=1, keepdim=True)  # per-step batch baseline
        loss = -(torch.stack(logps) * advantage).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        block.append(torch.stack(rewards).mean().item())
        if (update + 1) % args.reset_every == 0 or update == args.updates - 1:
            print(
                f"  [{label}] updates {update + 1 - len(block):3d}-{update:3d}: clicks per page "
                f"{np.mean(block):.3f} ({time.perf_counter() - started:.0f}s)"
            )
            block = []
    env.close()
    return policy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/rl_example"))
    ap.add_argument("--batch", type=int, default=256, help="sessions stepped per batch")
    ap.add_argument("--updates", type=int, default=60, help="policy-gradient updates")
    ap.add_argument("--horizon", type=int, default=16, help="pages per env per update")
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--reset-every", type=int, default=10, help="updates between world resets")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)

    scenario = {**SCENARIO, "arms": list(SCENARIO["arms"])}
    for label, discount in (("myopic", 0.0), ("session", 0.9)):
        print(f"training the {label} policy (discount {discount})")
        policy = train(args, discount, label)
        path = args.out / f"{label}.pt"
        torch.jit.script(policy).save(str(path))
        scenario["arms"].append(
            {"name": label, "recommender": {"type": "policy", "params": {"checkpoint": str(path)}}}
        )
    scenario_path = args.out / "ab.yaml"
    scenario_path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    print(f"A/B of the trained policies against popularity and MF ({scenario_path})")
    recarena = str(Path(sys.executable).with_name("recarena"))
    run_dir = args.out / "ab"
    subprocess.run([recarena, "run", str(scenario_path), "-o", str(run_dir), "-q"], check=True)


if __name__ == "__main__":
    main()
