"""Output files: every write is atomic (an interrupted write leaves the old file, or none, and no temporary
file), and rendering prints no stray SDL lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.figure
import numpy as np
import PIL.Image
import pytest
import torch

from mpc_grasp.atomic import atomic_path, atomic_write_text
from mpc_grasp.control.episodes import quiet_renderer
from mpc_grasp.control.media import save_gif
from mpc_grasp.data import TransitionDataset
from mpc_grasp.models import MLPWorldModel, PixelDataset, save_world_model
from mpc_grasp.plotting import plt, save_figure

ROOT = Path(__file__).resolve().parents[1]


def _half_write(*args: Any, **kwargs: Any) -> None:
    """A serialiser that writes part of its file (its first path or handle argument), then fails (a full
    disk, a crash, Ctrl-C)."""
    target = next(arg for arg in args if isinstance(arg, (str, os.PathLike)) or hasattr(arg, "write"))
    if hasattr(target, "write"):
        target.write(b"partial")
    else:
        Path(target).write_bytes(b"partial")
    raise RuntimeError("interrupted mid-write")


def _dataset(path: Path) -> None:
    n = 6
    TransitionDataset(
        observations=np.zeros((n, 2)),
        actions=np.zeros((n, 1)),
        next_observations=np.zeros((n, 2)),
        terminated=np.zeros(n, bool),
        episode_ids=np.zeros(n, int),
        step_ids=np.arange(n),
    ).save(path)


def _pixel_dataset(path: Path) -> None:
    PixelDataset(np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 2), np.float32), np.zeros(4, np.int64)).save(path)


def _figure(path: Path) -> None:
    save_figure(plt.figure(), path)


def _gif(path: Path) -> None:
    save_gif([np.zeros((8, 8, 3), np.uint8)] * 2, path)


WRITERS: dict[str, tuple[Callable[[Path], None], str, Any, str]] = {
    # name: (write to path, file name, object whose serialiser is broken, its attribute)
    "dataset": (_dataset, "data.npz", np, "savez_compressed"),
    "pixel dataset": (_pixel_dataset, "pixels.npz", np, "savez_compressed"),
    "checkpoint": (lambda path: save_world_model(MLPWorldModel(2, 1, hidden_sizes=(4,)), path), "m.pt", torch, "save"),
    "figure": (_figure, "plans.png", matplotlib.figure.Figure, "savefig"),
    "gif": (_gif, "episode.gif", PIL.Image.Image, "save"),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_each_writer_writes_its_file(name: str, tmp_path: Path) -> None:
    write, file_name, _, _ = WRITERS[name]
    write(tmp_path / "sub" / file_name)
    assert [path.name for path in (tmp_path / "sub").iterdir()] == [file_name]
    assert (tmp_path / "sub" / file_name).stat().st_size > 0


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_an_interrupted_write_leaves_no_file_and_keeps_the_old_one(
    name: str, existing: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write, file_name, owner, attribute = WRITERS[name]
    target = tmp_path / file_name
    if existing:
        target.write_bytes(b"the previous run's file")
    monkeypatch.setattr(owner, attribute, _half_write)
    with pytest.raises(RuntimeError, match="interrupted mid-write"):
        write(target)
    assert [path.name for path in tmp_path.iterdir()] == ([file_name] if existing else [])
    if existing:
        assert target.read_bytes() == b"the previous run's file"


def test_atomic_write_text_survives_ctrl_c(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "summary.json", '{"old": true}')
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as temporary:
        temporary.write_text('{"new": ')
        raise KeyboardInterrupt
    assert target.read_text() == '{"old": true}' and [path.name for path in tmp_path.iterdir()] == ["summary.json"]


def test_the_package_writes_files_only_through_atomic_path() -> None:
    """Direct writes (``write_text``, ``savefig(path)``, ``np.savez(path)``, ...) bypass the atomic helper."""
    direct = re.compile(r"\.write_(text|bytes)\(|open\([^)]*['\"][wa]b?['\"]")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "mpc_grasp").rglob("*.py"))
        if path.name != "atomic.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if direct.search(line) and "atomic_path" not in line
    ]
    assert not found, found


def test_quiet_renderer_sets_a_private_runtime_folder_only_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    quiet_renderer()
    assert os.environ["XDG_RUNTIME_DIR"] == "/run/user/1234"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    quiet_renderer()
    folder = Path(os.environ["XDG_RUNTIME_DIR"])
    assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700
    quiet_renderer()
    assert os.environ["XDG_RUNTIME_DIR"] == str(folder)


def test_recording_frames_prints_no_sdl_runtime_dir_error() -> None:
    """Pendulum's pygame renderer, without XDG_RUNTIME_DIR, through run_episodes (what ``mpc-grasp run`` uses)."""
    script = (
        "import gymnasium as gym, numpy as np\n"
        "from mpc_grasp.control.episodes import run_episodes\n"
        "class Zero:\n"
        "    def predict(self, obs, deterministic=True):\n"
        "        return np.zeros(1, np.float32), None\n"
        "env = gym.make('Pendulum-v1', render_mode='rgb_array')\n"
        "records = run_episodes(env, Zero(), 1, max_steps=2, record_frames=1, progress=False)\n"
        "print(len(records[0].frames))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "SDL_VIDEODRIVER")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=clean, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3" and "XDG_RUNTIME_DIR" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["collect", "mpc_grasp/GridWorld-v0", "--steps", "50", "--out", "{blocked}/data.npz"],
        ["train", "{data}", "--out", "{blocked}/model.pt", "--epochs", "1"],
        ["mbrl", "Pendulum-v1", "--rounds", "1", "--out-dir", "{blocked}/out"],
    ],
    ids=["collect", "train", "mbrl"],  # run: tests/test_run_any_env.py
)
def test_an_output_under_a_file_fails_in_one_line_before_any_compute(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file where an output folder must go: one line naming the flag, and nothing computed (the compute
    entry points are replaced by ones that fail the test)."""
    import mpc_grasp.cli.mbrl as cli_mbrl
    import mpc_grasp.data as data
    import mpc_grasp.models as models
    from mpc_grasp.cli.commands import main

    def no_compute(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("computed before checking the output path")

    for module, name in ((data, "collect_transitions"), (models, "train_world_model"), (cli_mbrl, "run_mbrl")):
        monkeypatch.setattr(module, name, no_compute)
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    data_path = tmp_path / "data.npz"
    _dataset(data_path)
    argv = [part.format(blocked=blocked, data=data_path) for part in command]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(r"--out(-dir)? .*a_file.* (is a file, not a folder|cannot be created: Not a directory)$", err), err
