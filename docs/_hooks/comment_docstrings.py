"""Griffe extension: ``#:`` comments above a module attribute become its docstring.

It also reads a Google ``Example:`` section as ``Examples:``, whose doctest lines mkdocstrings
renders as code (``Example:`` alone would be an admonition holding plain text).

rlobj's paper presets (``rlobj/presets/papers.py``) are documented Sphinx-style, with ``#:``
comment lines right above the assignment. Griffe reads only string docstrings, so without
this extension the API page would show the presets' values but not their documentation.
"""

import ast
import re

import griffe

_EXAMPLE_HEADER = re.compile(r"^(\s*)Example:[ \t]*$", flags=re.M)


class CommentDocstrings(griffe.Extension):
    """Give an undocumented attribute the ``#:`` comment block that precedes it, and read a
    Google ``Example:`` section as ``Examples:`` (so its ``>>>`` lines render as code)."""

    def on_instance(self, *, node: ast.AST | griffe.ObjectNode, obj: griffe.Object,
                    agent: griffe.Visitor | griffe.Inspector, **kwargs) -> None:
        if obj.docstring is not None and "Example:" in obj.docstring.value:
            obj.docstring.value = _EXAMPLE_HEADER.sub(r"\1Examples:", obj.docstring.value)

    def on_attribute_instance(self, *, node: ast.AST | griffe.ObjectNode, attr: griffe.Attribute,
                              agent: griffe.Visitor | griffe.Inspector, **kwargs) -> None:
        if attr.docstring is not None or attr.lineno is None or not isinstance(node, ast.AST):
            return
        try:
            lines = attr.lines_collection[attr.filepath]
        except (KeyError, TypeError):
            return
        comment: list[str] = []
        index = attr.lineno - 2  # the line above the assignment, 0-based
        while index >= 0 and lines[index].lstrip().startswith("#:"):
            comment.insert(0, lines[index].lstrip()[2:].removeprefix(" "))
            index -= 1
        if comment:
            attr.docstring = griffe.Docstring("\n".join(comment), parent=attr, lineno=index + 2)
