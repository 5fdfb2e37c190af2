"""``mpc-grasp`` CLI: collect + train smoke test, clear errors, pluggable subcommands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mpc_grasp.cli import commands as cli
from mpc_grasp.data import load_dataset
from mpc_grasp.models import load_world_model


def test_collect_then_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "grid.npz"
    code = cli.main(
        [
            "collect",
            "mpc_grasp/GridWorld-v0",
            "--steps",
            "600",
            "--out",
            str(data),
            "--seed",
            "1",
            "--num-envs",
            "2",
            "--exploration",
            "random",
            "--env-kwarg",
            "layout=umaze",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "collected 600 transitions" in capsys.readouterr().out
    dataset = load_dataset(data)
    assert dataset.metadata["env_kwargs"] == {"layout": "umaze"} and dataset.metadata["exploration"] == "random"

    model_path = tmp_path / "model.pt"
    code = cli.main(
        [
            "train",
            str(data),
            "--out",
            str(model_path),
            "--epochs",
            "3",
            "--hidden",
            "16",
            "16",
            "--ensemble",
            "2",
            "--fourier-features",
            "8",
            "--seed",
            "0",
            "--horizons",
            "1",
            "5",
            "--env-id",
            "mpc_grasp/GridWorld-v0",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "one-step RMSE" in out and "no-change" in out and "saved world model" in out
    model = load_world_model(model_path)
    assert model.config["hidden_sizes"] == [16, 16] and model.config["ensemble_size"] == 2
    assert model.config["fourier_features"] == 8
    assert model.metadata["env_id"] == "mpc_grasp/GridWorld-v0"
    assert model.metadata["test_metrics"]["multi_step"]["horizons"] == [1, 5]


def test_user_errors_exit_nonzero_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["collect", "NoSuchEnv-v0", "--steps", "10", "--out", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err
    assert code == 1 and "unknown Gymnasium env id 'NoSuchEnv-v0'" in err and "Traceback" not in err

    code = cli.main(
        ["collect", "Pendulum-v1", "--steps", "10", "--out", str(tmp_path / "x.npz"), "--env-kwarg", "oops"]
    )
    assert code == 1 and "--env-kwarg: expected KEY=VALUE, got 'oops'" in capsys.readouterr().err

    code = cli.main(["train", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "m.pt")])
    assert code == 1 and "does not exist" in capsys.readouterr().err

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    code = cli.main(["train", str(bad), "--out", str(tmp_path / "m.pt")])
    assert code == 1 and "corrupt or truncated" in capsys.readouterr().err

    with pytest.raises(SystemExit) as exit_info:  # argparse usage errors exit with status 2
        cli.main(["collect", "Pendulum-v1"])
    assert exit_info.value.code == 2


def test_subcommands_are_pluggable(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def register(subparsers) -> None:
        parser = subparsers.add_parser("hello", help="say hello")
        parser.add_argument("--name", default="world")
        parser.set_defaults(handler=lambda args: print(f"hello {args.name}") or 0)

    monkeypatch.setitem(cli.COMMANDS, "hello", register)
    monkeypatch.setitem(cli.COMMANDS, "broken", "mpc_grasp.no_such_module:register")
    assert cli.main(["hello", "--name", "grasp"]) == 0
    captured = capsys.readouterr()
    assert "hello grasp" in captured.out and "command 'broken' unavailable" in captured.err
    with pytest.raises(ValueError, match="module:function"):
        cli.register_command("x", "not-a-target")
    assert cli.parse_key_value(["a=1", "b=umaze", "c=[1, 2]", "d=true"]) == {
        "a": 1,
        "b": "umaze",
        "c": [1, 2],
        "d": True,
    }


@pytest.mark.parametrize(
    ("raw", "annotation", "expected"),
    [
        ("4", int, 4),
        ("4.0", int, 4),
        ("0.1", float, 0.1),
        ("3", float, 3.0),
        ("true", bool, True),
        ("False", bool, False),
        ("null", int | None, None),
        ("none", float | None, None),
        ("0.3", float | None, 0.3),
        ("linear", str, "linear"),
        ("[1, 2]", tuple[float, ...], (1.0, 2.0)),
        ("[1, 2]", Any, [1, 2]),
        ("abc", Any, "abc"),
    ],
)
def test_convert_option_parses_to_the_annotated_type(raw: str, annotation: Any, expected: Any) -> None:
    value = cli.convert_option(raw, annotation)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("raw", "annotation", "message"),
    [
        ("abc", int, "expected an integer"),
        ("2.5", int, "expected an integer"),
        ("true", int, "expected an integer"),
        ("1", bool, "expected true or false"),
        ("fast", float, "expected a number"),
        ("far", float | None, "expected a number or null"),
        ('[1, "a"]', tuple[float, ...], "expected a JSON list (a number each)"),
    ],
)
def test_convert_option_names_the_expected_type(raw: str, annotation: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        cli.convert_option(raw, annotation)


def test_plural() -> None:
    assert [cli.plural(n, "episode") for n in (0, 1, 2)] == ["0 episodes", "1 episode", "2 episodes"]
    assert cli.plural(1, "plan") == "1 plan" and cli.plural(3, "child", "children") == "3 children"
