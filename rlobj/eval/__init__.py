"""Evaluation: unbiased pass@k, maj@k, and before/after tables."""

from rlobj.eval.passk import maj_at_k, pass_at_k, pass_at_k_mean
from rlobj.eval.table import format_table

__all__ = ["format_table", "maj_at_k", "pass_at_k", "pass_at_k_mean"]
