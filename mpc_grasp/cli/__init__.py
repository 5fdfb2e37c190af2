"""The ``mpc-grasp`` command line: the parser and shared option parsing (``main``), ``run`` (GraspMPC on any
Gymnasium Box env) and the subcommands registered by the modules that own them."""

from mpc_grasp.cli.commands import CLIError, main

__all__ = ["CLIError", "main"]
