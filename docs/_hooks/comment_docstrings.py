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
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", flags=re.S)


def _line_at(text: str, index: int) -> tuple[int, int]:
    """Start and end (exclusive, without the newline) of the line holding ``text[index]``."""
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    return start, len(text) if end == -1 else end


def isolate_display_math(text: str) -> str:
    r"""Put every ``$$ ... $$`` formula in a paragraph of its own (blank lines around it).

    pymdownx.arithmatex only treats ``$$`` as display math when it opens a block; a formula
    written inside a paragraph (``... as follows:\n$$ x $$\nwhere ...``) would otherwise reach
    the page as raw text, with Markdown mangling its ``_`` and ``\{``. The formula keeps the
    indentation of the line it starts on, so Google-style sections still parse.
    """
    pieces, position = [], 0
    for match in _DISPLAY_MATH.finditer(text):
        start, end = match.span()
        line_start, _ = _line_at(text, start)
        prefix = text[line_start:start]
        indent = prefix[: len(prefix) - len(prefix.lstrip())]
        before = text[position:start]
        if prefix.strip():  # text before the formula on its line
            # continuation lines of a Google-style item are indented deeper than the item
            _, end_of_formula_line = _line_at(text, end - 1)
            if end_of_formula_line < len(text):
                following_start, following_end = _line_at(text, end_of_formula_line + 1)
                following = text[following_start:following_end]
                deeper = following[: len(following) - len(following.lstrip())]
                if following.strip() and len(deeper) > len(indent):
                    indent = deeper
            before = before.rstrip(" ") + "\n\n" + indent
        elif line_start > 0:
            previous_start, previous_end = _line_at(text, line_start - 1)
            if text[previous_start:previous_end].strip():
                before = before[: len(before) - len(prefix)] + "\n" + prefix
        pieces.append(before + match.group(0))
        _, line_end = _line_at(text, end) if end < len(text) else (0, len(text))
        rest = text[end:line_end]
        if rest.strip():  # text after the formula on its line
            pieces.append("\n\n" + indent)
            position = end + len(rest) - len(rest.lstrip(" "))
        else:
            pieces.append(rest)
            position = line_end
            if line_end < len(text):
                next_start, next_end = _line_at(text, line_end + 1)
                if text[next_start:next_end].strip():
                    pieces.append("\n")
    pieces.append(text[position:])
    return "".join(pieces)


class CommentDocstrings(griffe.Extension):
    """Give an undocumented attribute the ``#:`` comment block that precedes it, read a Google
    ``Example:`` section as ``Examples:`` (so its ``>>>`` lines render as code), and put
    ``$$`` formulas written inside a paragraph into a block of their own."""

    def on_instance(self, *, node: ast.AST | griffe.ObjectNode, obj: griffe.Object,
                    agent: griffe.Visitor | griffe.Inspector, **kwargs) -> None:
        if obj.docstring is None:
            return
        value = obj.docstring.value
        if "Example:" in value:
            value = _EXAMPLE_HEADER.sub(r"\1Examples:", value)
        if "$$" in value:
            value = isolate_display_math(value)
        obj.docstring.value = value

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
