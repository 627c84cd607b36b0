"""Evaluation: unbiased pass@k, maj@k, CoT-pass@k, solve-rate tables between checkpoints, plots."""

from rlobj.eval.cot import (
    JUDGE_TEMPLATE,
    CotJudge,
    EngineCotJudge,
    RuleCotJudge,
    cot_pass_at_k,
    cot_pass_at_k_mean,
    judge_samples,
)
from rlobj.eval.passk import maj_at_k, pass_at_k, pass_at_k_mean
from rlobj.eval.plots import (
    TRAINING_CURVES,
    pass_at_k_curve,
    plot_pass_at_k,
    plot_training_curves,
    read_metrics_csv,
)
from rlobj.eval.solve_rates import (
    SUPPORT_CLASSES,
    ProblemSolveRates,
    SolveRateComparison,
    compare_solve_rates,
)
from rlobj.eval.table import format_table

__all__ = [
    "JUDGE_TEMPLATE", "SUPPORT_CLASSES", "TRAINING_CURVES", "CotJudge", "EngineCotJudge", "ProblemSolveRates",
    "RuleCotJudge", "SolveRateComparison", "compare_solve_rates", "cot_pass_at_k", "cot_pass_at_k_mean",
    "format_table", "judge_samples", "maj_at_k", "pass_at_k", "pass_at_k_curve", "pass_at_k_mean",
    "plot_pass_at_k", "plot_training_curves", "read_metrics_csv",
]
