"""Plain-text tables of evaluation results (before/after training)."""

from collections.abc import Mapping, Sequence

__all__ = ["format_table"]


def format_table(rows: Sequence[tuple[str, Mapping[str, float]]], columns: Sequence[str] | None = None,
                 digits: int = 3) -> str:
    """Format ``[(label, {metric: value})]`` as an aligned table; a last ``change`` row when 2+ rows.

    The change row is last minus first, in the same units (so pass@1 0.31 -> 0.58 shows +0.270).

    Example:
        >>> print(format_table([("before", {"pass@1": 0.25}), ("after", {"pass@1": 0.5})]))
        model   pass@1
        before   0.250
        after    0.500
        change  +0.250
    """
    if not rows:
        raise ValueError("format_table: rows must not be empty")
    columns = list(columns) if columns is not None else list(rows[0][1])
    body = [[label] + [f"{float(values[c]):.{digits}f}" if c in values else "-" for c in columns]
            for label, values in rows]
    if len(rows) > 1:
        first, last = rows[0][1], rows[-1][1]
        body.append(["change"] + [f"{float(last[c]) - float(first[c]):+.{digits}f}"
                                  if c in first and c in last else "-" for c in columns])
    header = ["model"] + columns
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = []
    for row in [header] + body:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
