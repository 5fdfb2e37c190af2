"""``mpc-grasp`` command line: ``collect`` transitions, ``train`` a world model, and more.

Subcommands are pluggable: ``COMMANDS`` maps a name to ``"module:function"``, where the function
takes argparse's subparsers object, adds its parser and sets ``handler=callable(args) -> int``.
Add a command from another module by adding one entry (or calling :func:`register_command`);
modules are imported only when the parser is built.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mpc_grasp.parallel import add_parallel_arguments

__all__ = [
    "COMMANDS",
    "CLIError",
    "build_parser",
    "convert_option",
    "main",
    "parse_key_value",
    "plural",
    "register_command",
    "split_key_value",
]

# name -> "module:function"; the function adds a subparser (see module docstring)
COMMANDS: dict[str, str] = {
    "collect": "mpc_grasp.cli.commands:register_collect",
    "train": "mpc_grasp.cli.commands:register_train",
    "run": "mpc_grasp.cli.run:register_run",
    "mbrl": "mpc_grasp.cli.mbrl:register_mbrl",
}


class CLIError(Exception):
    """A user-facing command-line error: printed without a traceback, exit status 1."""


def register_command(name: str, target: str | Callable[[Any], None]) -> None:
    """Add (or replace) subcommand ``name``; ``target`` is ``"module:function"`` or the function."""
    if isinstance(target, str) and ":" not in target:
        raise ValueError(f"command target must look like 'package.module:function', got {target!r}")
    COMMANDS[name] = target  # type: ignore[assignment]


def _resolve(target: str | Callable[[Any], None]) -> Callable[[Any], None]:
    if callable(target):
        return target
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="mpc-grasp",
        description="World models and long-horizon planning (GRASP) for Gymnasium environments.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, target in COMMANDS.items():
        try:
            _resolve(target)(subparsers)
        except (ImportError, AttributeError) as error:  # a broken plug-in must not break the other commands
            print(f"mpc-grasp: warning: command {name!r} unavailable ({error})", file=sys.stderr)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mpc-grasp`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, TypeError) as error:
        print(f"mpc-grasp {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mpc-grasp {args.command}: interrupted", file=sys.stderr)
        return 130


# --------------------------------------------------------------------------- shared helpers


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``plural(1, "episode")`` -> ``"1 episode"``, ``plural(3, "episode")`` -> ``"3 episodes"``."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"


def split_key_value(items: Sequence[str] | None, flag: str | None = None) -> list[tuple[str, str]]:
    """``["layout=umaze"]`` -> ``[("layout", "umaze")]``: the raw strings, for callers that type them.

    A malformed item raises ``CLIError`` naming ``flag`` (e.g. ``"--set"``) when given.
    """
    pairs = []
    for item in items or ():
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"{flag + ': ' if flag else ''}expected KEY=VALUE, got {item!r}")
        pairs.append((key.strip(), raw))
    return pairs


def writable_folder(path: str | os.PathLike[str], flag: str, *, output: str | None = None) -> Path:
    """``path`` as a folder, created and checked writable before any compute: a ``CLIError`` naming ``flag``
    (and the ``output`` that would go there) when it is a file, cannot be created or is read-only."""
    folder = Path(path)
    where = f"{flag} {folder}" if output is None else f"{flag} {output}: its folder {folder}"
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"{where} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CLIError(f"{where} cannot be created: {error.strerror or error}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"{where} is not writable")
    return folder


def writable_file(path: str | os.PathLike[str], flag: str) -> Path:
    """``path`` checked as an output file before any compute (not a folder; its folder made and writable):
    a ``CLIError`` naming ``flag`` otherwise."""
    target = Path(path)
    if target.is_dir():
        raise CLIError(f"{flag} {target} is a folder, not a file")
    writable_folder(target.parent, flag, output=str(target))
    return target


def _json_or_text(raw: str) -> Any:
    """The JSON value of ``raw`` (numbers, true/false, null, lists), else ``raw`` itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_key_value(items: Sequence[str] | None, flag: str | None = None) -> dict[str, Any]:
    """``["layout=umaze", "frame_skip=2"]`` -> ``{"layout": "umaze", "frame_skip": 2}`` (JSON values, else strings)."""
    return {key: _json_or_text(raw) for key, raw in split_key_value(items, flag)}


class _Mismatch(Exception):
    """``raw`` does not fit an annotation; ``args[0]`` says what was expected."""


def convert_option(raw: str, annotation: Any) -> Any:
    """Parse the command-line text ``raw`` as a value of type ``annotation`` (int, float, bool, str,
    ``X | None``, ``tuple[...]``/``list[...]``, ``Literal``; anything else: the JSON value, else ``raw``).

    Raises ``ValueError("expected ...")`` naming the expected type, for callers to prefix with the flag.
    """
    try:
        return _convert(raw, _json_or_text(raw), annotation)
    except _Mismatch as mismatch:
        raise ValueError(f"expected {mismatch.args[0]}") from None


_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def _convert(raw: str, value: Any, annotation: Any) -> Any:
    """Recursive worker of :func:`convert_option`: ``value`` is ``raw`` parsed as JSON (or ``raw``)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        if value is None or raw.strip().lower() == "none":
            return None
        raise _Mismatch("null")
    if origin in (typing.Union, types.UnionType):
        for option in sorted(args, key=lambda a: a is not type(None)):  # null first: "none" is not a string
            try:
                return _convert(raw, value, option)
            except _Mismatch:
                continue
        raise _Mismatch(" or ".join(_describe(option) for option in args))
    if origin is typing.Literal:
        if value in args:
            return value
        raise _Mismatch(_describe(annotation))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if raw.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[raw.strip().lower()]
        raise _Mismatch(_describe(bool))
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        raise _Mismatch(_describe(int))
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch(_describe(float))
    if annotation is str:
        return value if isinstance(value, str) else raw
    if origin in (tuple, list) or annotation in (tuple, list):
        if not isinstance(value, list):
            raise _Mismatch(_describe(annotation))
        item_types = [a for a in args if a is not Ellipsis]
        if origin is tuple and item_types and Ellipsis not in args and len(item_types) != len(value):
            raise _Mismatch(_describe(annotation))
        try:
            items = [
                v
                if not item_types
                else _convert(json.dumps(v), v, item_types[i] if len(item_types) > 1 else item_types[0])
                for i, v in enumerate(value)
            ]
        except _Mismatch:
            raise _Mismatch(_describe(annotation)) from None
        return tuple(items) if (origin or annotation) is tuple else items
    return value  # Any, callables, classes: JSON as given; the callee validates


def _describe(annotation: Any) -> str:
    """Words for an annotation in error messages: int -> "an integer", ``float | None`` -> "a number or null"."""
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    if annotation in names:
        return names[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(option) for option in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin in (tuple, list) or annotation in (tuple, list):
        inner = [a for a in args if a is not Ellipsis]
        if not inner:
            return "a JSON list"
        if origin is tuple and Ellipsis not in args and len(inner) > 1:
            return f"a JSON list of {len(inner)} values"
        return f"a JSON list ({_describe(inner[0])} each)"
    return getattr(annotation, "__name__", str(annotation))


def _format_error_table(one_step: dict[str, Any], multi: dict[str, Any]) -> str:
    lines = [
        f"one-step RMSE {one_step['rmse']:.5f} (no-change baseline {one_step['no_change_rmse']:.5f}, "
        f"MAE {one_step['mae']:.5f}, n={one_step['n']})",
        f"{'horizon':>8} {'RMSE':>10} {'no-change':>10} {'windows':>8}",
    ]
    for h, rmse, base, count in zip(multi["horizons"], multi["rmse"], multi["no_change_rmse"], multi["n_windows"]):
        if rmse is None:
            lines.append(f"{h:>8} {'-':>10} {'-':>10} {count:>8}")
        else:
            lines.append(f"{h:>8} {rmse:>10.5f} {base:>10.5f} {count:>8}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- collect


def register_collect(subparsers: Any) -> None:
    """``mpc-grasp collect ENV_ID --steps N --out data.npz``."""
    p = subparsers.add_parser("collect", help="collect exploration transitions into an .npz dataset")
    p.add_argument("env_id", metavar="ENV_ID", help="Gymnasium env id, e.g. mpc_grasp/GridWorld-v0")
    p.add_argument("--steps", type=int, required=True, help="number of transitions to record")
    p.add_argument("--out", required=True, help="output .npz path")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-envs", type=int, default=1, help="parallel envs (gymnasium SyncVectorEnv)")
    p.add_argument("--exploration", choices=("random", "correlated"), default="correlated")
    p.add_argument("--env-kwarg", action="append", metavar="KEY=VALUE", help="env constructor kwarg (repeatable)")
    p.add_argument("--obs-key", default="observation", help="key of the state in dict observations")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--shards", type=int, default=None, help="collect as this many independent shards (seeds derived from --seed)"
    )
    add_parallel_arguments(p)
    p.set_defaults(handler=_run_collect)


def _run_collect(args: argparse.Namespace) -> int:
    from mpc_grasp.data import collect_transitions, collect_transitions_parallel

    writable_file(args.out, "--out")
    start = time.perf_counter()
    options = dict(
        num_envs=args.num_envs,
        exploration=args.exploration,
        obs_key=args.obs_key,
        env_kwargs=parse_key_value(args.env_kwarg, flag="--env-kwarg"),
    )
    if args.shards is None and args.backend == "local":
        dataset = collect_transitions(args.env_id, args.steps, seed=args.seed, progress=not args.no_progress, **options)
    else:  # sharded: in-process or as Ray tasks (--backend ray)
        dataset = collect_transitions_parallel(
            args.env_id,
            args.steps,
            args.shards or (args.workers or 2),
            seed=args.seed,
            backend=args.backend,
            address=args.address,
            num_workers=args.workers,
            progress=not args.no_progress,
            **options,
        )
    path = dataset.save(args.out)
    print(
        f"collected {plural(len(dataset), 'transition')} in {plural(dataset.num_episodes, 'episode')} from {args.env_id} "
        f"({time.perf_counter() - start:.1f} s) -> {path}"
    )
    return 0


# --------------------------------------------------------------------------- train


def register_train(subparsers: Any) -> None:
    """``mpc-grasp train DATA --out model.pt``."""
    p = subparsers.add_parser("train", help="train an MLP world model on a collected dataset")
    p.add_argument("data", metavar="DATA", help="dataset .npz from `mpc-grasp collect`")
    p.add_argument("--out", required=True, help="output checkpoint path (.pt)")
    p.add_argument("--env-id", default=None, help="refuse a dataset collected on another env")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256], metavar="SIZE")
    p.add_argument("--ensemble", type=int, default=1, help="ensemble size")
    p.add_argument(
        "--fourier-features", type=int, default=0, help="Fourier features of the state input (64 sharpens walls)"
    )
    p.add_argument("--activation", default="silu")
    p.add_argument("--loss", choices=("mse", "nll"), default="mse")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument(
        "--patience", type=int, default=25, help="early-stopping patience in epochs (0: run all epochs, keep the best)"
    )
    p.add_argument("--max-time", type=float, default=None, help="wall-time cap in seconds")
    p.add_argument("--val-fraction", type=float, default=0.1, help="episodes for early stopping")
    p.add_argument("--test-fraction", type=float, default=0.1, help="held-out episodes for the reported errors")
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 5, 10, 25, 50])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads while training")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import torch

    from mpc_grasp.data import load_dataset
    from mpc_grasp.models import multi_step_error, one_step_error, save_world_model, train_world_model

    if args.device != "cpu" and str(args.device).startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"device {args.device!r} requested but CUDA is not available")
    writable_file(args.out, "--out")
    dataset = load_dataset(args.data, expected_env_id=args.env_id)
    test = None
    train = dataset
    if args.test_fraction > 0:
        train, test = dataset.split(args.test_fraction, seed=args.seed + 1)
    model = train_world_model(
        train,
        hidden_sizes=tuple(args.hidden),
        ensemble_size=args.ensemble,
        fourier_features=args.fourier_features,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        val_fraction=args.val_fraction,
        patience=args.patience or None,
        max_time_s=args.max_time,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
        loss=args.loss,
        activation=args.activation,
        num_threads=args.threads,
    )
    history = model.training_history
    print(
        f"trained on {plural(history['n_train'], 'transition')} (val {history['n_val']}) in {history['wall_time_s']:.1f} s, "
        f"{plural(len(history['epoch']), 'epoch')}, best epoch {history['best_epoch']} ({history['stopped']})"
    )
    extra: dict[str, Any] = {"dataset_path": str(args.data)}
    if test is not None:
        one = one_step_error(model, test)
        multi = multi_step_error(model, test, horizons=args.horizons)
        extra["test_metrics"] = {"one_step": one, "multi_step": multi, "n_test": len(test)}
        print(f"held-out errors on {plural(len(test), 'transition')} ({plural(test.num_episodes, 'episode')}):")
        print(_format_error_table(one, multi))
    path = save_world_model(model, args.out, metadata=extra)
    print(f"saved world model -> {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
