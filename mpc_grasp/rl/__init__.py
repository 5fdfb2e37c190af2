"""Reinforcement learning: stable-baselines3 baselines (``baselines``) and the model-based RL loop (``mbrl``)."""
