"""The README's main job runs end to end (tiny sizes) and writes its summary and plot."""

from __future__ import annotations

import json

from demo import run_demo  # experiments/demo.py (experiments/ is on the test path)


def test_demo_runs_end_to_end_and_writes_results(tmp_path) -> None:
    summary = run_demo(
        steps=1_500, episodes=1, horizon=10, iterations=20, replan_every=5, out_dir=tmp_path, train_seconds=5
    )
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert saved["episodes"] == 1 and 0.0 <= saved["success_rate"] <= 1.0
    assert saved["one_step_rmse"] < 0.25  # below one full step: the model learned something
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert summary["episodes_detail"][0]["steps"] >= 1
