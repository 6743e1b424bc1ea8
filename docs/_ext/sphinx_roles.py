"""Griffe extension for the docs build: render Sphinx cross-reference roles in neurorl's numpydoc docstrings.

neurorl's docstrings use Sphinx roles (:func:`simulate`, :class:`~neurorl.schema.EnvSpec`, :mod:`neurorl.io`).
mkdocstrings renders docstrings as Markdown, where these roles would show as literal text. This extension rewrites
each role, once the package is loaded, into an *optional* mkdocs-autorefs cross-reference: a link when the target is
documented on the site, plain code otherwise (external objects such as ``xarray.Dataset``, private helpers) -- never a
build warning. The target is resolved in the scope of the object whose docstring it is (so ``:func:`replay``` in
``neurorl.simulate`` links to ``neurorl.simulate.replay``). ``~`` shows the last component only, as in Sphinx.
Only the docs see the rewritten text; the source files are untouched.
"""

from __future__ import annotations

import html
import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc|const):`(?P<target>[^`<>]+?)`")


def _resolve(obj: Object, target: str) -> str:
    """Full dotted path of ``target`` as seen from ``obj`` (best effort; unresolved names are returned as given)."""
    target = target.lstrip(".")
    if target.startswith("neurorl"):
        return target
    head, _, rest = target.partition(".")
    scope = obj
    while scope is not None:
        try:
            path = scope.resolve(head)
        except Exception:  # griffe raises NameResolutionError (and may raise others on odd scopes)
            path = None
        if path:
            return f"{path}.{rest}" if rest else path
        scope = scope.parent
    return target


def rewrite(obj: Object, text: str) -> str:
    """Replace every Sphinx role in ``text`` by an optional autorefs reference."""

    def sub(match: re.Match) -> str:
        raw = match["target"].strip()
        short = raw.startswith("~")
        raw = raw.lstrip("~")
        title = raw.rsplit(".", 1)[-1] if short else raw
        identifier = _resolve(obj, raw)
        return f'<autoref identifier="{html.escape(identifier)}" optional><code>{html.escape(title)}</code></autoref>'

    return ROLE.sub(sub, text)


class SphinxRoles(Extension):
    """Rewrite Sphinx roles in every docstring of the loaded package (see the module docstring)."""

    def on_package(self, *, pkg: Object, **kwargs: Any) -> None:
        seen: set[int] = set()

        def visit(obj: Object) -> None:
            if id(obj) in seen or obj.is_alias:
                return
            seen.add(id(obj))
            if obj.docstring is not None and ":" in obj.docstring.value:
                obj.docstring.value = rewrite(obj, obj.docstring.value)
            for member in obj.members.values():
                visit(member)

        visit(pkg)
