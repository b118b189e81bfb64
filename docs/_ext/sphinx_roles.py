"""A griffe extension for the API reference (mkdocs.yml): the docstrings use
Sphinx's roles (``:class:`~regionproxy.X```, ``:meth:`y```), which
mkdocstrings would show as written; this turns each into inline code of the
name (its last part with ``~``), and a paragraph ending in ``::`` (a literal
block follows, indented: Markdown's code block too) into one ending in ``:``."""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

LITERAL = re.compile(r"(?<=\w)::$", re.M)
ROLE = re.compile(r":(?:py:)?(?:class|meth|attr|func|mod|exc|data|obj|const):`(?P<tilde>~?)(?P<name>[^`]+)`")


def _code(found: re.Match[str]) -> str:
    name = found["name"]
    return f"`{name.rsplit('.', 1)[-1] if found['tilde'] else name}`"


class SphinxRoles(Extension):
    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = LITERAL.sub(":", ROLE.sub(_code, obj.docstring.value))
