"""The ``neurorl`` command (user guide: ``docs/cli.md``).

Subcommands
-----------
``neurorl list``
    Registered tasks and agents, with each agent's parameters.
``neurorl simulate AGENT TASK``
    Simulate subjects; write trials, latents and parameters to one netCDF file (groups ``trials``, ``latents``,
    ``params``) and optionally the trials as CSV.
``neurorl fit DATA --agent A [--agent B ...]``
    Fit every agent to the choices (and RTs) in DATA (CSV with its JSON sidecar, or netCDF) by MLE, MAP or EM-MAP;
    write one netCDF file with a group per model (estimates, evidence, pointwise log-likelihood, predicted policy)
    plus figures.
``neurorl fit-bayes DATA --agent A [--agent B ...] [--priors hbayesdm]``
    Hierarchical Bayesian fit (NUTS) of every agent with neurorl's or hBayesDM's priors; one netCDF file with each
    model's posterior (ArviZ groups), summary, LOO and hBayesDM's LOOIC.
``neurorl compare FIT.nc [FIT.nc ...]``
    AIC/BIC/Laplace table, random-effects BMS with protected exceedance probabilities, optionally Laplace
    PSIS-LOO (:mod:`neurorl.fitting.loo`); netCDF plus a figure.
``neurorl design --agent A --agent B --task T [--task T2] --trials N [N ...]``
    Model recovery over task designs x trials per subject (:mod:`neurorl.fitting.design`): accuracy with its
    interval, confusion per design, the cheapest design reaching a target; netCDF plus a figure.
``neurorl recover --agent A [--agent B ...] --task TASK``
    Parameter recovery (one agent) or model recovery (several); netCDF plus figures.
``neurorl decode NEURAL.nc --trials DATA --latents v v_soft``
    Which latent the units encode: held-out encoding scores per unit and time bin, with pseudosession nulls; netCDF
    plus the time-course figure.
``neurorl report DIR``
    A self-contained HTML report (figures embedded) of the outputs in DIR.
``neurorl demo``
    The whole pipeline on the bundled dataset (fit, compare, recover, decode, report) in a few minutes.

Exit codes: 0 success; 2 bad arguments or input (the message names the file and what is wrong, no traceback);
1 internal failure (a bug or a numerical failure; ``--debug`` shows the traceback).

Output files carry the root attribute ``neurorl_output`` (``"fit"``, ``"compare"``, ``"recover"``, ``"decode"``)
so that ``neurorl report`` finds them in a directory whatever their names.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

from ..results import read_compare, read_decode, read_fit, read_recover
from . import bayes as _bayes_cmd
from . import decode as _decode_cmd
from . import demo as _demo_cmd
from . import fit as _fit_cmd
from . import study as _study_cmd
from . import tools as _tools_cmd
from ._common import DEMO_AGENTS, DEMO_TASK, UsageError, parse_agent_spec, read_data
from .tools import summarize

__all__ = [
    "DEMO_AGENTS",
    "DEMO_TASK",
    "UsageError",
    "build_parser",
    "main",
    "parse_agent_spec",
    "read_compare",
    "read_data",
    "read_decode",
    "read_fit",
    "read_recover",
    "run",
    "summarize",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``neurorl`` command (every option has its help text)."""
    p = argparse.ArgumentParser(
        prog="neurorl",
        description="Reinforcement-learning models of behaviour and neural data: simulate, fit, compare, recover, "
                    "decode, report. Start with `neurorl demo`; see docs/cli.md.",
        epilog="Exit codes: 0 success, 2 bad arguments or input files, 1 internal failure.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (_tools_cmd, _fit_cmd, _bayes_cmd, _study_cmd, _decode_cmd, _demo_cmd):
        module.register(sub)
    return p


def _showwarning(command):
    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if "could not link to a BLAS" in text:
            return
        name = category.__name__
        print(f"neurorl {command}: warning ({name}): {text}", file=sys.stderr)
    return show


def main(argv=None) -> int:
    """Run the ``neurorl`` command; returns the exit code (0 ok, 2 bad input/arguments, 1 internal failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an argparse error (2, message already printed)
        return int(exc.code or 0)
    args._argv = ["neurorl", *argv]
    debug = getattr(args, "debug", False)
    with warnings.catch_warnings():
        warnings.showwarning = _showwarning(args.command)
        try:
            if hasattr(args, "workers"):
                from ..parallel import from_args

                with from_args(args):
                    return args.func(args)
            return args.func(args)
        except UsageError as exc:
            if debug:
                raise
            print(f"neurorl {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except np.linalg.LinAlgError as exc:
            if debug:
                raise
            print(f"neurorl {args.command}: numerical failure (LinAlgError: {exc}); try another --optimizer or "
                  "simplify the model (fix parameters with fix.PARAM=VALUE); --debug shows the traceback",
                  file=sys.stderr)
            return 1
        except (ValueError, TypeError, FileNotFoundError) as exc:
            if debug:
                raise
            print(f"neurorl {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"neurorl {args.command}: interrupted", file=sys.stderr)
            return 1
        except Exception as exc:
            if debug:
                raise
            print(f"neurorl {args.command}: internal error ({type(exc).__name__}: {exc}); this is a bug -- "
                  "rerun with --debug and report the traceback", file=sys.stderr)
            return 1


def run() -> None:
    """Entry point of the ``neurorl`` executable: :func:`main`, then a fast exit.

    Every output is complete (written to a temporary name and renamed into place) when :func:`main` returns, so
    the interpreter's teardown -- 0.2-0.4 s once JAX's runtime is loaded -- is skipped after flushing the
    standard streams (``os._exit``).
    """
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    run()
