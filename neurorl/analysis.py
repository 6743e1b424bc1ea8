"""Output conventions shared by the analysis scripts in ``analyses/``.

Each analysis script is a single file with a ``@dataclass Args`` (every field has a default; the
fields ``seed``, ``quick``, ``out_root``, ``docs_dir`` and ``docs`` are expected), a ``QUICK`` dict of
smaller settings and a ``main(args)``. This module holds what the scripts share:

* :func:`parse_args` -- an ``Args`` instance from the command line (``--field value``; booleans as
  ``--flag/--no-flag``).
* :func:`output_dir` -- ``<root>/<script>_seed<seed>/`` (created).
* :class:`AnalysisOutput` -- applies ``--quick``, chooses the output and docs folders, saves figures,
  rebuilds the command line and writes the markdown result (``result.md`` and, unless ``--quick`` or
  ``--no-docs``, ``docs/analyses/<name>.md`` with figures under ``docs/analyses/img/<name>_*.png``).
* :func:`bootstrap_ci` -- percentile bootstrap interval of a mean over subjects.

Example::

    output = AnalysisOutput("my_analysis", args, quick=QUICK, repo=REPO)
    args = output.apply_quick()
    output.save(fig, "curve")
    output.write("Title", {"What was run": f"`{output.command()}`", "Figures": ""}, [("curve", "caption")])

Assumptions
-----------
[A] ``--quick`` replaces only the fields still at their default value, so an explicit option wins.
[A] A quick run writes no docs page unless ``docs_dir`` is given, so that it cannot overwrite the
    committed pages.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["AnalysisOutput", "bootstrap_ci", "output_dir", "parse_args"]

#: ``Args`` fields that choose where outputs go, not what is computed (left out of the command line;
#: ``docs`` stays in the markdown argument table)
_PLACEMENT = ("out_root", "docs_dir", "docs")


def output_dir(script: str, seed: int, root: str | Path = "out") -> Path:
    """``<root>/<script>_seed<seed>/`` (created). ``script`` may be a path (its stem is used)."""
    d = Path(root) / f"{Path(script).stem}_seed{int(seed)}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def parse_args(args_cls, argv: Sequence[str] | None = None):
    """Build an ``args_cls`` dataclass from the command line (``--field value``; bools as ``--flag/--no-flag``)."""
    parser = argparse.ArgumentParser(description=(args_cls.__doc__ or "").strip().splitlines()[0] if args_cls.__doc__
                                     else None)
    for f in dataclasses.fields(args_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        opt = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(opt, dest=f.name, action=argparse.BooleanOptionalAction, default=default)
        else:
            typ = type(default) if default is not None else str
            parser.add_argument(opt, dest=f.name, type=typ, default=default)
    return args_cls(**vars(parser.parse_args(argv)))


def bootstrap_ci(values, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """2.5-97.5 % bootstrap interval of the mean over the first axis (subjects).

    Parameters
    ----------
    values : array_like, shape (n_subjects, ...)
        One row per subject; NaNs are ignored in the means.
    n_boot : int
        Number of bootstrap resamples of the subjects (with replacement).
    rng : numpy.random.Generator
        Source of the resamples.

    Returns
    -------
    numpy.ndarray, shape (2, ...)
        Lower and upper percentiles of the resampled means.
    """
    v = np.asarray(values, float)
    idx = rng.integers(0, v.shape[0], (n_boot, v.shape[0]))
    boots = np.array([np.nanmean(v[i], axis=0) for i in idx])
    return np.nanpercentile(boots, [2.5, 97.5], axis=0)


class AnalysisOutput:
    """Where and how one analysis script writes its results.

    Parameters
    ----------
    name : str
        The script's name (``analyses/<name>.py``); prefixes the docs page and its figures.
    args : dataclass instance
        The script's arguments (all fields with defaults; ``seed``, ``quick``, ``out_root``,
        ``docs_dir`` and ``docs`` among them).
    quick : mapping, optional
        Field values of a ``--quick`` run (see :meth:`apply_quick`).
    repo : path, optional
        Repository root: default outputs go to ``<repo>/results`` and docs to
        ``<repo>/docs/analyses`` (default: the current directory).
    dpi : int
        Resolution of the saved figures (default 90).

    Attributes
    ----------
    args : dataclass instance
        The arguments, with the quick settings once :meth:`apply_quick` has run.
    """

    def __init__(self, name: str, args, *, quick: Mapping | None = None, repo: str | Path | None = None,
                 dpi: int = 90):
        self.name = name
        self.args = args
        self.quick = dict(quick or {})
        self.repo = Path(repo) if repo is not None else Path.cwd()
        self.dpi = dpi
        self._dirs = None

    @classmethod
    def start(cls, name: str, args, *, quick: Mapping | None = None, repo: str | Path | None = None):
        """Begin an analysis run: select matplotlib's file-only backend (``Agg``), build the output and apply the
        ``--quick`` settings. Returns the output; its ``args`` are the settings the run uses."""
        import matplotlib

        matplotlib.use("Agg")
        out = cls(name, args, quick=quick, repo=repo)
        out.apply_quick()
        return out

    def apply_quick(self):
        """With ``args.quick``, set the quick values of the fields still at their defaults; return the args."""
        if self.args.quick:
            defaults = type(self.args)()
            changes = {k: v for k, v in self.quick.items() if getattr(self.args, k) == getattr(defaults, k)}
            self.args = dataclasses.replace(self.args, **changes)
        return self.args

    def dirs(self) -> tuple[Path, Path | None]:
        """``(out, docs)``, created on the first call.

        ``out`` is ``<out_root or repo/results>/<name>_seed<seed>``; ``docs`` is ``docs_dir`` (or
        ``repo/docs/analyses``) with an ``img`` folder, or None with ``--no-docs`` or in a quick run
        without ``docs_dir``.
        """
        if self._dirs is None:
            a = self.args
            out = output_dir(self.name, a.seed, root=a.out_root or self.repo / "results")
            docs = None
            if a.docs and (a.docs_dir or not a.quick):
                docs = Path(a.docs_dir) if a.docs_dir else self.repo / "docs" / "analyses"
                (docs / "img").mkdir(parents=True, exist_ok=True)
            self._dirs = (out, docs)
        return self._dirs

    def save(self, fig, name: str) -> None:
        """Save ``fig`` as ``out/<name>.png`` (and ``docs/img/<script>_<name>.png``) and close it."""
        import matplotlib.pyplot as plt

        from .results import atomic_output

        out, docs = self.dirs()
        for path in [out / f"{name}.png"] + ([docs / "img" / f"{self.name}_{name}.png"] if docs is not None else []):
            with atomic_output(path) as tmp:
                fig.savefig(tmp, format="png", dpi=self.dpi)
        plt.close(fig)

    def command(self) -> str:
        """The command line that reproduces the run: ``python analyses/<name>.py`` and the non-default options.

        The seed is always listed; the output placement fields (``out_root``, ``docs_dir``, ``docs``) never.
        """
        defaults = dataclasses.asdict(type(self.args)())
        parts = [f"python analyses/{self.name}.py"]
        for k, v in dataclasses.asdict(self.args).items():
            if k in _PLACEMENT or (v == defaults[k] and k != "seed"):
                continue
            opt = "--" + k.replace("_", "-")
            parts.append(opt if v is True else (f"--no-{k.replace('_', '-')}" if v is False else f"{opt} {v}"))
        return " ".join(parts)

    def write(self, title: str, sections: Mapping[str, str], figures: Sequence[tuple[str, str]]) -> None:
        """Write ``out/result.md`` (and ``docs/<name>.md``).

        The page is ``# title``, then one ``## heading`` per entry of ``sections`` in order, then
        ``## Arguments`` (a table of ``args`` without ``out_root`` and ``docs_dir``). The body of a
        section named ``"Figures"`` is replaced by the ``figures`` (``(name, caption)`` pairs saved by
        :meth:`save`), linked relative to the page.
        """
        out, docs = self.dirs()

        def render(prefix):
            lines = [f"# {title}", ""]
            for head, body in sections.items():
                if head == "Figures":
                    body = "\n\n".join(f"![{cap}]({prefix}{n}.png)\n\n*Figure {i + 1}.* {cap}"
                                       for i, (n, cap) in enumerate(figures))
                lines += [f"## {head}", "", body.rstrip(), ""]
            lines += ["## Arguments", "", "| name | value |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in dataclasses.asdict(self.args).items()
                      if k not in ("out_root", "docs_dir")]
            return "\n".join(lines) + "\n"

        from .results import atomic_output

        pages = [(out / "result.md", "")] + ([(docs / f"{self.name}.md", f"img/{self.name}_")] if docs is not None
                                             else [])
        for path, prefix in pages:
            with atomic_output(path) as tmp:
                tmp.write_text(render(prefix))
