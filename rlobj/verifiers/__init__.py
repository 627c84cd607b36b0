"""Reward functions for RLVR: ``verifier(completion, sample) -> float`` (plain Python, no torch).

See :mod:`rlobj.verifiers.base` for the protocol and :mod:`rlobj.verifiers.pool` for running
verifiers in worker processes with timeouts.
"""

from rlobj.verifiers.base import Sample, Verifier, validate_reward
from rlobj.verifiers.boxes import BoxIoU, box_iou, parse_box
from rlobj.verifiers.code import CodeExecution
from rlobj.verifiers.composite import WeightedSum
from rlobj.verifiers.extract import (
    EXTRACT_MODES,
    extract_answer,
    extract_code,
    last_boxed_content,
    last_number,
    tag_content,
)
from rlobj.verifiers.format_check import RegexFormat, TagFormat
from rlobj.verifiers.match import ExactMatch, NumericMatch, normalize_answer, parse_number
from rlobj.verifiers.math_verifier import MathVerifier, parse_gold
from rlobj.verifiers.pool import ScoreResult, VerifierPool, score_batch
from rlobj.verifiers.puzzles import (
    CountdownVerifier,
    KnightsKnavesVerifier,
    evaluate_expression,
    parse_knights_knaves,
    solve_countdown,
)
from rlobj.verifiers.sandbox import (
    LANGUAGES,
    LanguageConfig,
    SandboxLimits,
    SandboxUnavailable,
    language_available,
    outputs_match,
    run_program,
    run_tests,
    sandbox_capabilities,
    sweep_orphans,
)

__all__ = [
    "EXTRACT_MODES",
    "LANGUAGES",
    "BoxIoU",
    "CodeExecution",
    "CountdownVerifier",
    "ExactMatch",
    "KnightsKnavesVerifier",
    "LanguageConfig",
    "MathVerifier",
    "NumericMatch",
    "RegexFormat",
    "Sample",
    "SandboxLimits",
    "SandboxUnavailable",
    "ScoreResult",
    "TagFormat",
    "Verifier",
    "VerifierPool",
    "WeightedSum",
    "box_iou",
    "evaluate_expression",
    "extract_answer",
    "extract_code",
    "language_available",
    "last_boxed_content",
    "last_number",
    "normalize_answer",
    "outputs_match",
    "parse_box",
    "parse_gold",
    "parse_knights_knaves",
    "parse_number",
    "run_program",
    "run_tests",
    "sandbox_capabilities",
    "sweep_orphans",
    "score_batch",
    "solve_countdown",
    "tag_content",
    "validate_reward",
]

from rlobj.verifiers.visual import AttributeAnswer, BoxSetIoU, CountAnswer, match_boxes, parse_boxes  # noqa: E402

__all__ += ["AttributeAnswer", "BoxSetIoU", "CountAnswer", "match_boxes", "parse_boxes"]
