"""The model-based RL loop and its parts: reward head, warm-started retraining, TD value, resume, CLI."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from mpc_grasp.cli.commands import main
from mpc_grasp.data import TransitionDataset
from mpc_grasp.models import (
    CheckpointError,
    MLPWorldModel,
    load_world_model,
    save_world_model,
    train_value_function,
    train_world_model,
)
from mpc_grasp.models import checkpoint as checkpoint_module
from mpc_grasp.rl.mbrl import (
    KNOWN_REWARDS,
    MBRLConfig,
    alive_bonus_reward,
    cartpole_swingup_reward,
    evaluate_return,
    fit_models,
    inverted_double_pendulum_reward,
    make_agent,
    mbrl_recipe,
    pendulum_reward,
    reacher_reward,
    resume_conflicts,
    reward_error,
    run_mbrl,
)

TARGET = np.array([0.5, -0.5], dtype=np.float32)


def linear_reward_dataset(rows: int, seed: int) -> TransitionDataset:
    """Point mass s' = s + 0.1 a in [-1, 1]², reward −‖s' − target‖² − 0.1 ‖a‖² (known, smooth)."""
    rng = np.random.default_rng(seed)
    states = rng.uniform(-1, 1, (rows, 2)).astype(np.float32)
    actions = rng.uniform(-1, 1, (rows, 2)).astype(np.float32)
    next_states = states + 0.1 * actions
    rewards = -((next_states - TARGET) ** 2).sum(-1) - 0.1 * (actions**2).sum(-1)
    return TransitionDataset(
        observations=states,
        actions=actions,
        next_observations=next_states,
        terminated=np.zeros(rows, bool),
        episode_ids=np.arange(rows) // 50,
        step_ids=np.arange(rows) % 50,
        rewards=rewards,
    )


@pytest.fixture(scope="module")
def reward_model() -> tuple[MLPWorldModel, TransitionDataset]:
    model = train_world_model(
        linear_reward_dataset(2000, 0), hidden_sizes=(64, 64), epochs=60, lr=3e-3, seed=0, progress=False, reward=True
    )
    return model, linear_reward_dataset(500, 1)


def test_the_reward_head_learns_a_known_reward(reward_model) -> None:
    model, held_out = reward_model
    rewards = held_out.rewards
    rmse = reward_error(model, held_out)
    # stated accuracy: held-out RMSE below 5% of the reward's spread (R² > 0.997)
    assert rmse < 0.05 * rewards.std(), (rmse, rewards.std())
    assert model.training_history["val_reward_mse"][-1] < 1e-2
    # any leading shape, differentiable in the action (a planner's reward_fn)
    state = torch.zeros(3, 4, 2)
    action = torch.zeros(3, 4, 2, requires_grad=True)
    model.reward(state, action, state + 0.1 * action).sum().backward()
    assert action.grad is not None and torch.isfinite(action.grad).all()


def test_reward_heads_survive_checkpoints_and_old_checkpoints_still_load(reward_model, tmp_path: Path) -> None:
    model, held_out = reward_model
    path = save_world_model(model, tmp_path / "with_reward.pt")
    loaded = load_world_model(path)
    assert loaded.has_reward_head and loaded.config == model.config
    assert reward_error(loaded, held_out) == pytest.approx(reward_error(model, held_out))
    # a checkpoint written before reward heads existed: no "reward_hidden_sizes" in its config
    old = MLPWorldModel(2, 2, hidden_sizes=(8,))
    payload = torch.load(save_world_model(old, tmp_path / "new_format.pt"), weights_only=True)
    del payload["config"]["reward_hidden_sizes"]
    payload["sha256"] = checkpoint_module._digest(
        payload["model_class"], payload["config"], payload["metadata"], payload["state_dict"]
    )
    torch.save(payload, tmp_path / "old.pt")
    restored = load_world_model(tmp_path / "old.pt")
    assert not restored.has_reward_head
    with pytest.raises(ValueError, match="no reward head"):
        restored.reward(torch.zeros(2), torch.zeros(2), torch.zeros(2))
    # a reward head's weights belong to the hash: tampering is refused
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["reward_net.0.weight"] += 1.0
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(CheckpointError, match="integrity"):
        load_world_model(tmp_path / "tampered.pt")


def test_warm_started_training_continues_from_the_previous_weights(reward_model) -> None:
    model, held_out = reward_model
    before = reward_error(model, held_out)
    warm = train_world_model(linear_reward_dataset(400, 2), epochs=1, lr=1e-5, init_model=model, seed=0, progress=False)
    assert warm is not model and warm.has_reward_head and warm.config == model.config
    assert reward_error(warm, held_out) == pytest.approx(before, rel=0.2)  # a cold start would be far off
    torch.testing.assert_close(warm.state_mean, model.state_mean)  # the normalisers are kept
    with pytest.raises(ValueError, match="init_model has reward head"):
        train_world_model(linear_reward_dataset(400, 2), epochs=1, init_model=model, reward=False, progress=False)


def test_the_loop_refits_from_scratch_on_all_its_data_unless_told_to_warm_start() -> None:
    """Each round's fit sees the grown data's scales (not round 0's) and runs every epoch (no held-out episode
    to stop on); ``warm_start`` keeps the previous model's normalisers and weights."""
    small = dict(hidden_sizes=(16, 16), epochs=3, retrain_epochs=2, min_train_steps=0, batch_size=100)
    first, _ = fit_models(linear_reward_dataset(200, 0), MBRLConfig(**small), 0)
    grown = linear_reward_dataset(400, 1)
    grown.observations[:] *= 3.0  # the agent's later states span a wider range than the seed data's
    refit, _ = fit_models(grown, MBRLConfig(**small), 1, (first, None))
    assert refit.training_history["epoch"] == [1, 2, 3] and refit.training_history["n_val"] == 0
    torch.testing.assert_close(refit.state_mean, torch.as_tensor(grown.observations.mean(0)), atol=1e-5, rtol=0)
    warm, _ = fit_models(grown, MBRLConfig(**small, warm_start=True), 1, (first, None))
    assert len(warm.training_history["epoch"]) == 2
    torch.testing.assert_close(warm.state_mean, first.state_mean)
    rollouts, _ = fit_models(grown, MBRLConfig(**small, rollout_steps=3), 1)
    assert rollouts.training_history["config"]["rollout_steps"] == 3
    with pytest.raises(ValueError, match="val_fraction"):
        MBRLConfig(val_fraction=1.0)


def test_td_value_of_a_constant_reward_is_its_discounted_sum() -> None:
    data = linear_reward_dataset(1000, 3)
    data.rewards[:] = -1.0  # no terminations: V = −1 / (1 − γ) = −10 everywhere
    value = train_value_function(data, discount=0.9, epochs=150, lr=3e-3, target_update=0.05, seed=0)
    with torch.no_grad():
        predictions = value(torch.as_tensor(data.observations[:100]))
    assert predictions.shape == (100,)
    assert float((predictions + 10.0).abs().max()) < 1.0, predictions[:5]


def test_a_learned_terminal_value_round_trips_and_plans(tmp_path: Path) -> None:
    import gymnasium as gym

    from mpc_grasp.data import collect_transitions

    data = collect_transitions("Pendulum-v1", 300, seed=0, exploration="random", progress=False)
    config = MBRLConfig(
        terminal_value=True,
        hidden_sizes=(32, 32),
        epochs=5,
        value_epochs=5,
        horizon=5,
        planner_options={"iterations": 5, "num_candidates": 4},
    )
    model, value = fit_models(data, config, round_index=0)
    assert value is not None and value.discount == config.value_discount
    restored = load_world_model(save_world_model(value, tmp_path / "value.pt"))
    states = torch.as_tensor(data.observations[:10])
    with torch.no_grad():
        torch.testing.assert_close(restored(states), value(states))
    agent = make_agent(model, config, gym.spaces.Box(-2, 2, (1,)), restored)
    assert agent.planner.terminal_value is restored and agent.planner.discount == config.value_discount
    action, _ = agent.predict(data.observations[0])
    assert np.isfinite(action).all() and agent.last_plan.info["predicted_return"].shape == (1,)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Reacher-v5", "InvertedDoublePendulum-v5"])
def test_known_gymnasium_rewards_match_their_envs(env_id: str) -> None:
    """``KNOWN_REWARDS``' formulas of Gymnasium's envs pay what the env pays, step by step (the double pendulum's
    is its reward while alive: the env drops the 10 on the step that ends the episode)."""
    import gymnasium as gym

    if env_id != "Pendulum-v1":
        pytest.importorskip("mujoco")
    env = gym.make(env_id)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    box = env.action_space
    for _ in range(20):
        action = rng.uniform(box.low, box.high).astype(np.float32) * (0.1 if "Double" in env_id else 1.0)
        next_obs, reward, terminated, *_ = env.step(action)
        predicted = KNOWN_REWARDS[env_id](torch.as_tensor(obs), torch.as_tensor(action), torch.as_tensor(next_obs))
        assert float(predicted) == pytest.approx(
            reward + (10.0 if terminated and "Double" in env_id else 0.0), abs=1e-4
        )
        if terminated:
            break
        obs = next_obs
    assert KNOWN_REWARDS["Pendulum-v1"] is pendulum_reward and KNOWN_REWARDS["Reacher-v5"] is reacher_reward


def test_cartpole_swingup_reward_matches_the_env() -> None:
    import gymnasium as gym
    import mpc_grasp.envs  # noqa: F401  (registers the env ids)

    env = gym.make("mpc_grasp/CartPoleSwingup-v0")
    obs, _ = env.reset(seed=5)
    rng = np.random.default_rng(1)
    rewards = []
    for _ in range(40):
        action = rng.uniform(-1, 1, 1).astype(np.float32)
        next_obs, reward, terminated, *_ = env.step(action)
        predicted = cartpole_swingup_reward(torch.as_tensor(obs), torch.as_tensor(action), torch.as_tensor(next_obs))
        assert float(predicted) == pytest.approx(reward, abs=1e-5)
        rewards.append(reward)
        obs = next_obs
        assert not terminated
    assert max(rewards) - min(rewards) > 0.01  # the check saw the reward change, not a constant


TINY = dict(
    env_kwargs={"max_episode_steps": 40},
    seed_steps=240,
    steps_per_round=80,
    eval_episodes=1,
    horizon=8,
    epochs=40,
    retrain_epochs=30,
    hidden_sizes=(64, 64),
    planner_options={"iterations": 12, "num_candidates": 4, "warm_iterations": 4, "sync_every": 2},
)
"""A small, fast Pendulum loop: 40-step episodes, horizon 8, small planner budgets (seconds per round)."""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("mbrl") / "run"
    return out, run_mbrl(MBRLConfig(rounds=1, **TINY), out, progress=False)


def test_one_round_lowers_model_error_on_the_agents_own_states(tiny_run) -> None:
    out, records = tiny_run
    assert [record.round for record in records] == [0, 1]
    assert [record.env_steps for record in records] == [240, 320]
    first, second = records
    assert first.model_rmse_before is None and second.model_rmse_before is not None
    assert second.model_rmse_after < second.model_rmse_before, second
    assert second.reward_rmse_after < second.reward_rmse_before, second
    for folder in ("round_000", "round_001"):
        assert {path.name for path in (out / folder).iterdir()} == {"model.pt", "dataset.npz", "record.json"}
    history = json.loads((out / "history.json").read_text())
    assert len(history["rounds"]) == 2 and history["config"]["env_id"] == "Pendulum-v1"
    assert (out / "learning_curve.png").stat().st_size > 0
    assert np.isfinite([record.mean_return for record in records]).all()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (mpc-grasp[ray])")
def test_evaluation_episodes_in_parallel_match_the_sequential_ones(tiny_run) -> None:
    """Two Ray workers run the same three episodes (same starts, same plans) as one process does."""
    out, _ = tiny_run
    config = MBRLConfig(rounds=1, **{**TINY, "eval_episodes": 3})
    model = load_world_model(out / "round_001" / "model.pt")
    action_space = gym.make("Pendulum-v1").action_space
    sequential = evaluate_return(make_agent(model, config, action_space), config)
    parallel = evaluate_return(make_agent(model, config, action_space), config, workers=2)
    assert parallel["episode_returns"] == sequential["episode_returns"]
    assert len(set(sequential["episode_returns"])) == 3  # three different starts
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        evaluate_return(make_agent(model, config, action_space), config, workers=0)


def test_the_loop_resumes_where_it_stopped(tiny_run, tmp_path: Path) -> None:
    source, _ = tiny_run
    out = tmp_path / "run"
    import shutil

    shutil.copytree(source, out)
    with pytest.raises(ValueError, match="resume"):
        run_mbrl(MBRLConfig(rounds=2, **TINY), out, progress=False)
    with pytest.raises(ValueError, match="differs in"):
        run_mbrl(MBRLConfig(rounds=2, **{**TINY, "horizon": 9}), out, resume=True, progress=False)
    saved = json.loads((out / "config.json").read_text())
    legacy = {key: value for key, value in saved.items() if key not in ("warm_start", "val_fraction")}
    (out / "config.json").write_text(json.dumps(legacy))  # saved before the loop refitted from scratch
    assert set(resume_conflicts(out, MBRLConfig(rounds=2, **TINY))) == {"warm_start", "val_fraction"}
    (out / "config.json").write_text(json.dumps(saved))
    # mark the finished rounds: a resumed run must load them, not recompute them
    for folder in ("round_000", "round_001"):
        record = json.loads((out / folder / "record.json").read_text())
        (out / folder / "record.json").write_text(json.dumps({**record, "mean_return": 12345.0}))
    (out / "round_002").mkdir()  # a round interrupted before its record: recomputed
    records = run_mbrl(MBRLConfig(rounds=2, **TINY), out, resume=True, progress=False)
    assert [record.round for record in records] == [0, 1, 2]
    assert [record.mean_return for record in records[:2]] == [12345.0, 12345.0]
    assert records[2].env_steps == 400 and records[2].mean_return != 12345.0
    assert (out / "round_002" / "record.json").is_file()


def test_an_interrupted_round_resumes_after_its_last_finished_phase(
    tiny_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in round 2's training keeps its collection; Ctrl-C in its evaluation keeps its training too; the
    resumed run redoes neither (the functions that would redo them fail the test)."""
    import shutil

    import mpc_grasp.rl.mbrl as loop

    source, _ = tiny_run
    out = tmp_path / "run"
    shutil.copytree(source, out)
    config = MBRLConfig(rounds=2, **TINY)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    def redone(*args, **kwargs):
        raise AssertionError("a finished phase was redone")

    with monkeypatch.context() as patch:
        patch.setattr(loop, "fit_models", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_mbrl(config, out, resume=True, progress=False)
    assert loop.interrupted_phase(out) == "training" and (out / "round_002" / "dataset.npz").is_file()
    with monkeypatch.context() as patch:
        patch.setattr(loop, "collect_agent_transitions", redone)
        patch.setattr(loop, "evaluate_return", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_mbrl(config, out, resume=True, progress=False)
    assert loop.interrupted_phase(out) == "evaluating" and (out / "round_002" / "model.pt").is_file()
    with monkeypatch.context() as patch:
        patch.setattr(loop, "collect_agent_transitions", redone)
        patch.setattr(loop, "fit_models", redone)
        records = run_mbrl(config, out, resume=True, progress=False)
    assert [record.round for record in records] == [0, 1, 2] and records[2].env_steps == 400
    assert records[2].model_rmse_before is not None and records[2].train_time_s > 0
    assert loop.interrupted_phase(out) is None and not (out / "round_002" / "phase.json").exists()


def test_the_cli_says_where_it_resumes_and_words_errors_in_flags(tiny_run, tmp_path: Path, capsys, monkeypatch) -> None:
    import shutil

    import mpc_grasp.cli.mbrl as cli_mbrl

    source, _ = tiny_run
    out = tmp_path / "run"
    shutil.copytree(source, out)
    tiny_flags = ["--env-kwarg", "max_episode_steps=40", "--seed-steps", "240", "--steps-per-round", "80"]
    tiny_flags += ["--eval-episodes", "1", "--epochs", "40", "--retrain-epochs", "30", "--hidden-sizes", "64,64"]
    for option in ("iterations=12", "num_candidates=4", "warm_iterations=4", "sync_every=2"):
        tiny_flags += ["--set", option]
    command = ["mbrl", "Pendulum-v1", "--out-dir", str(out), "--no-progress", *tiny_flags]

    def error_of(*flags: str) -> str:
        assert main([*command, *flags]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "resume=True" not in err
        return err

    assert "already holds rounds of a run: add --resume to continue it" in error_of("--rounds", "1", "--horizon", "8")
    err = error_of("--rounds", "1", "--horizon", "9", "--resume")
    assert f"cannot --resume in {out}: its run used other settings: --horizon (saved 8, now 9)" in err
    assert "--seed-steps must be a positive integer, got 0" in error_of("--seed-steps", "0", "--resume")
    assert main([*command, "--rounds", "1", "--horizon", "8", "--resume"]) == 0  # both rounds done: nothing runs
    assert f"--resume: all 2 rounds in {out} are finished; nothing left to run" in capsys.readouterr().out
    monkeypatch.setattr(cli_mbrl, "run_mbrl", lambda *args, **kwargs: [])  # the line comes before any compute
    assert main([*command, "--rounds", "3", "--horizon", "8", "--resume"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"resuming at round 2 in {out}: rounds 0-1 are finished and kept, 2 to run"
    )


def test_the_cli_runs_a_tiny_loop(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    status = main(
        [
            "mbrl",
            "Pendulum-v1",
            "--rounds",
            "0",
            "--out-dir",
            str(out),
            "--seed-steps",
            "200",
            "--eval-episodes",
            "1",
            "--horizon",
            "5",
            "--hidden-sizes",
            "32,32",
            "--epochs",
            "5",
            "--env-kwarg",
            "max_episode_steps=20",
            "--set",
            "iterations=5",
            "--set",
            "num_candidates=4",
            "--no-progress",
        ]
    )
    assert status == 0, capsys.readouterr().err
    assert "round 0: 200 env steps" in capsys.readouterr().out
    assert (out / "round_000" / "model.pt").is_file() and (out / "history.json").is_file()
    assert json.loads((out / "config.json").read_text())["planner_options"] == {"iterations": 5, "num_candidates": 4}
    # a flag error exits with status 1 and a one-line message
    assert (
        main(["mbrl", "Pendulum-v1", "--out-dir", str(tmp_path / "x"), "--reward", "known", "--hidden-sizes", "a,b"])
        == 1
    )
    assert "--hidden-sizes" in capsys.readouterr().err


# --------------------------------------------------------------------------- recipes per env (MuJoCo InvertedPendulum-v5)


def test_recipes_build_per_env_id() -> None:
    assert mbrl_recipe("Pendulum-v1") == MBRLConfig()  # Pendulum's recipe is the defaults
    config = mbrl_recipe("InvertedPendulum-v5")
    assert config.env_id == "InvertedPendulum-v5" and config.reward == "known" and config.planner == "grasp"
    assert config.planner_options is None  # GRASP at its defaults: the recipe sets no planner budget
    assert KNOWN_REWARDS[config.env_id] is alive_bonus_reward and config.learn_termination is True
    assert mbrl_recipe("InvertedPendulum-v5", rounds=2, planner="mppi").rounds == 2
    double = mbrl_recipe("InvertedDoublePendulum-v5")  # the env's own reward while alive + the learned termination
    assert double.reward == "known" and double.learn_termination is True and not double.terminal_value
    assert KNOWN_REWARDS[double.env_id] is inverted_double_pendulum_reward and double.env_steps(double.rounds) == 20_000
    with pytest.raises(ValueError, match="no MBRL recipe"):
        mbrl_recipe("Reacher-v5")


def test_the_inverted_pendulum_reward_is_its_alive_bonus() -> None:
    # 1 per step, any leading shape, with a zero gradient to the actions (a planner's reward_fn)
    states = torch.full((3, 5, 4), 0.05)
    actions = torch.ones(3, 5, 1, requires_grad=True)
    reward = alive_bonus_reward(states, actions, states)
    assert reward.shape == (3, 5) and torch.equal(reward, torch.ones(3, 5))
    reward.sum().backward()
    assert actions.grad is not None and torch.equal(actions.grad, torch.zeros(3, 5, 1))


def test_a_tiny_inverted_pendulum_loop_sends_only_finite_actions(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("mujoco")
    from gymnasium.envs.mujoco.inverted_pendulum_v5 import InvertedPendulumEnv

    sent: list[np.ndarray] = []
    original_step = InvertedPendulumEnv.step

    def checked_step(self, action):
        sent.append(np.array(action, dtype=float, copy=True))
        assert np.isfinite(action).all(), f"non-finite action reached the env: {action}"
        return original_step(self, action)

    monkeypatch.setattr(InvertedPendulumEnv, "step", checked_step)
    config = mbrl_recipe(
        "InvertedPendulum-v5",
        rounds=1,
        env_kwargs={"max_episode_steps": 30},
        seed_steps=200,
        steps_per_round=30,
        eval_episodes=1,
        hidden_sizes=(32, 32),
        epochs=10,
        retrain_epochs=5,
        horizon=5,
    )
    records = run_mbrl(config, tmp_path / "run", progress=False)
    assert [record.env_steps for record in records] == [200, 230]
    assert len(sent) >= 200 + 30 + 2  # seed data, the agent's round and two evaluation episodes all stepped the env
    assert all(np.all(np.abs(action) <= 3.0) for action in sent)  # GraspMPC clips to the action space
    assert all(1.0 <= record.mean_return <= 30.0 for record in records)  # the env's own return: steps survived
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["config"]["reward"] == "known" and history["learned_termination"] is True
    assert all(record.learned_termination for record in records)  # the alive bonus plus the learned termination


def test_the_study_generalises_and_still_reads_the_pendulum_report(tmp_path: Path) -> None:
    from bench.suites.mbrl import MBRLStudyConfig, mbrl_markdown, plot_mbrl, sac_curve_run

    assert MBRLStudyConfig.for_env("Pendulum-v1") == MBRLStudyConfig()  # Pendulum's study is unchanged
    study = MBRLStudyConfig.for_env("InvertedPendulum-v5", rounds=2)
    assert study.main_reward == "known" and study.training_seeds == [0, 1, 2] and study.recipe().rounds == 2
    assert study.recipe(planner="mppi", seed=2).planner == "mppi"
    run = sac_curve_run([200, 400], 3, 0, seed=1, env_id="InvertedPendulum-v5")
    assert run.unit().settings["env_id"] == "InvertedPendulum-v5" and run.unit().settings["evaluation"] == "return"
    assert sac_curve_run([200], 3, 0, seed=0).budget == "curve"  # the Pendulum study's resume-log key
    # a report written before several envs and seeds: results/mbrl_pendulum.json renders as before
    old = json.loads((Path(__file__).resolve().parents[1] / "results" / "mbrl_pendulum.json").read_text())
    text = mbrl_markdown(old)
    assert "| 1200 | -162 ± 57 |" in text and "learned reward 1200" in text
    assert plot_mbrl(old, tmp_path / "old.png").stat().st_size > 0
    # a multi-seed report: the seed mean in bold, then each seed
    rounds = [
        {"env_steps": 200, "mean_return": value, "std_return": 0.0, "model_rmse_before": None} for value in (10.0, 30.0)
    ]
    config = mbrl_recipe("InvertedPendulum-v5").to_json()
    new = {
        "env_id": "InvertedPendulum-v5",
        "seeds": [0, 1],
        "eval_episodes": 3,
        "eval_seed": 0,
        "target_return": 1000.0,
        "loops": [
            {"label": "L", "role": "main", "seed": seed, "config": config, "rounds": [row]}
            for seed, row in enumerate(rounds)
        ],
        "sac_runs": [],
        "first_reaching_target": {"L": None},
        "wall_time_s": {},
    }
    assert "| 200 | **20** (10 / 30) |" in mbrl_markdown(new)


def test_the_cartpole_swingup_recipe_and_study() -> None:
    from bench.suites.mbrl import MBRLStudyConfig, exact_model_check

    config = mbrl_recipe("mpc_grasp/CartPoleSwingup-v0")
    assert config.planner == "grasp" and config.reward == "learned" and config.horizon == 50
    assert config.env_steps(config.rounds) == 10_000  # issue 15's budget: <= 10k env steps
    assert KNOWN_REWARDS[config.env_id] is cartpole_swingup_reward
    study = MBRLStudyConfig.for_env(config.env_id, eval_episodes=2)
    assert study.recipe().planner == "grasp" and study.recipe().planner_options is None  # GRASP at its defaults
    comparison = study.recipe(3, planner="cem")
    assert comparison.planner == "cem" and comparison.planner_options is None and comparison.rounds == 3
    with pytest.raises(ValueError, match="no exact model"):
        exact_model_check({"env_id": "Pendulum-v1", "planner": "grasp", "horizon": 5, "episodes": 1})


def test_final_evaluation_reports_the_last_models_return_with_either_reward(tiny_run) -> None:
    from bench.suites.mbrl import final_evaluation

    out, records = tiny_run
    config = MBRLConfig(rounds=1, **TINY).to_json()
    rows = [
        final_evaluation(
            {
                "env_id": "Pendulum-v1",
                "config": config,
                "run_dir": str(out),
                "round": "round_001",
                "episodes": 1,
                "reward": reward,
            }
        )
        for reward in ("learned", "known")
    ]
    assert [row["reward"] for row in rows] == ["learned", "known"] and rows[0]["env_steps"] == records[-1].env_steps
    assert rows[0]["mean_return"] == pytest.approx(
        records[-1].mean_return, rel=1e-4
    )  # the loop's own evaluation, same seed
    assert rows[0]["success_rate"] is None  # Pendulum reports no success


def test_the_cli_takes_the_envs_recipe_and_the_flags_given() -> None:
    from mpc_grasp.cli.commands import build_parser
    from mpc_grasp.cli.mbrl import config_from_args

    def config(*flags: str) -> MBRLConfig:
        return config_from_args(build_parser().parse_args(["mbrl", *flags, "--out-dir", "x"]))

    assert config("mpc_grasp/CartPoleSwingup-v0") == mbrl_recipe("mpc_grasp/CartPoleSwingup-v0")  # no flags: the recipe
    assert config("Pendulum-v1") == MBRLConfig()
    assert config("MountainCarContinuous-v0") == MBRLConfig(
        env_id="MountainCarContinuous-v0"
    )  # no recipe: the defaults
    changed = config("mpc_grasp/CartPoleSwingup-v0", "--rounds", "2", "--planner", "cem", "--hidden-sizes", "64,64")
    assert changed.rounds == 2 and changed.hidden_sizes == (64, 64) and changed.horizon == 50
    assert changed.planner == "cem" and changed.planner_options is None
    assert config("Pendulum-v1", "--warm-start", "--retrain-epochs", "7", "--rollout-steps", "4") == MBRLConfig(
        warm_start=True, retrain_epochs=7, rollout_steps=4
    )
    tuned = config("mpc_grasp/CartPoleSwingup-v0", "--set", "warm_iterations=5")
    assert tuned.planner == "grasp" and tuned.planner_options == {"warm_iterations": 5}


def test_the_reward_planning_study_runs_the_exact_cartpole_and_resumes(tmp_path) -> None:
    """experiments/reward_planning.py's suite on a tiny budget: a row per variant with the options that ran,
    the report files, and a resumed run that reuses the logged units instead of planning again."""
    from bench.suites.reward_planning import RewardPlanningConfig, run_reward_planning

    config = RewardPlanningConfig(
        variants=("grasp_lifted", "cem_warm3"), episodes=1, horizon=4, out_dir=tmp_path, runs_dir=tmp_path
    )
    report = run_reward_planning(config, "test", progress=False)
    rows = {row["variant"]: row for row in report["rows"]}
    assert rows["grasp_lifted"]["options"] == {"lifted_updates": True} and rows["cem_warm3"]["options"] == {
        "warm_iterations": 3
    }
    for row in rows.values():
        assert row["episodes"] == 1 and len(row["episode_returns"]) == 1 and 0.0 <= row["episode_returns"][0] <= 250.0
    assert "| GRASP, lifted steps on" in (tmp_path / "reward_planning.md").read_text()
    assert (tmp_path / "reward_planning.png").stat().st_size > 0
    resumed = run_reward_planning(dataclasses.replace(config, resume=True), "test", progress=False)
    assert [row["episode_returns"] for row in resumed["rows"]] == [row["episode_returns"] for row in report["rows"]]
    assert resumed["total_time_s"] < report["total_time_s"]
    with pytest.raises(ValueError, match="unknown variant"):
        RewardPlanningConfig(variants=("grasp", "nope"))
