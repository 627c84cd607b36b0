"""Griffe extension: ``#:`` comments above a module attribute become its docstring.

rlobj's paper presets (``rlobj/presets/papers.py``) are documented Sphinx-style, with ``#:``
comment lines right above the assignment. Griffe reads only string docstrings, so without
this extension the API page would show the presets' values but not their documentation.
"""

import ast

import griffe


class CommentDocstrings(griffe.Extension):
    """Give an undocumented attribute the ``#:`` comment block that precedes it."""

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
