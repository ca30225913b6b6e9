#!/usr/bin/env python3
"""Stable-Baselines3 SAC peer benchmark (runs the real SB3 package).

Measures, with the sizes tandem's `bench sac` uses (batch 256, 256x2 networks, HalfCheetah-v5:
obs 17, act 6):
  - gradient updates per second (model.train on a prefilled buffer),
  - end-to-end env steps per second with 1 env and one update per step (model.learn).
Prints one JSON object last. Usage: sb3_sac.py [--device cuda|cpu] [--updates N] [--steps N]
"""
import argparse
import json
import time

import gymnasium as gym
import torch
from stable_baselines3 import SAC


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--updates", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=3000)
    args = ap.parse_args()

    env = gym.make("HalfCheetah-v5")
    model = SAC("MlpPolicy", env, batch_size=256, learning_starts=1000, buffer_size=100_000,
                policy_kwargs=dict(net_arch=[256, 256]), device=args.device, seed=0, verbose=0)
    # fill the buffer with random-action steps (no updates before learning_starts)
    model.learn(total_timesteps=1000)
    model.train(gradient_steps=50, batch_size=256)  # warm-up
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    model.train(gradient_steps=args.updates, batch_size=256)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    ups = args.updates / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    model.learn(total_timesteps=args.steps, reset_num_timesteps=False)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    sps = args.steps / (time.perf_counter() - t0)
    res = {"peer": "stable-baselines3 SAC", "device": args.device, "torch": torch.__version__,
           "updates_per_s": round(ups, 1), "env_steps_per_s_1env_utd1": round(sps, 1)}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
