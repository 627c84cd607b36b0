r"""Code-execution reward: run the completion's program on stdin/stdout test cases in the sandbox."""

from dataclasses import dataclass

from rlobj.verifiers.base import Sample, require_completion, require_field
from rlobj.verifiers.extract import extract_code
from rlobj.verifiers.sandbox import LANGUAGES, LanguageConfig, SandboxLimits, run_tests


@dataclass(frozen=True)
class CodeExecution:
    r"""Fraction of stdin/stdout test cases the completion's program passes (or all-or-nothing).

    $$ r = \frac{1}{T}\sum_{t=1}^{T} \mathbb{1}[\mathrm{run}(\mathrm{code}(y), x_t) = o_t]
       \qquad\text{or}\qquad r = \prod_{t=1}^{T} \mathbb{1}[\mathrm{run}(\mathrm{code}(y), x_t) = o_t] $$

    ``code(y)`` is the last fenced code block of the completion (or all of it); the test cases
    $(x_t, o_t)$ are ``sample[tests_key]``, a list of ``{"input": str, "output": str}``. Each case
    runs in its own subprocess under :class:`~rlobj.verifiers.sandbox.SandboxLimits` (see
    :mod:`rlobj.verifiers.sandbox` for what is and is not enforced). The language is
    ``language`` if set, else ``sample["language"]``, else ``"python"``; as in Agnostics
    (arXiv:2508.04865) a language is a short :class:`~rlobj.verifiers.sandbox.LanguageConfig`,
    and ``languages`` adds or overrides configs.

    Args:
        language: fixed language name, or ``None`` to read it from the sample.
        tests_key: sample field with the test cases. Default ``"tests"``.
        all_or_nothing: reward 1 only if every case passes (stops at the first failure).
            Default ``False`` (fraction passed).
        limits: per-run limits. Default ``SandboxLimits()`` (5 s, 512 MiB per case).
        languages: extra language configs, by name.

    The sandbox refuses to run when this host lacks a mechanism it needs (see
    :mod:`rlobj.verifiers.sandbox`); callers opt out explicitly with ``allow_missing``, as this
    example does for whatever :func:`~rlobj.verifiers.sandbox_capabilities` reports missing.

    Example:
        >>> from rlobj.verifiers import sandbox_capabilities
        >>> limits = SandboxLimits(allow_missing=sandbox_capabilities().missing)
        >>> verifier = CodeExecution(limits=limits)
        >>> sample = {"tests": [{"input": "2 3\n", "output": "5\n"}, {"input": "1 1\n", "output": "2\n"}]}
        >>> verifier("```python\nprint(sum(map(int, input().split())))\n```", sample)
        1.0
        >>> verifier("print(5)", sample)
        0.5

    References:
        Boruch-Gruszecki et al., "Agnostics: Learning to Code in Any Programming Language via
        Reinforcement with a Universal Learning Environment", arXiv:2508.04865.
    """

    language: str | None = None
    tests_key: str = "tests"
    all_or_nothing: bool = False
    limits: SandboxLimits = SandboxLimits()
    languages: tuple[LanguageConfig, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "languages", tuple(self.languages))
        if self.language is not None and self.language not in self._configs():
            raise ValueError(
                f"CodeExecution: argument 'language' must be one of {sorted(self._configs())}, got {self.language!r}"
            )

    def _configs(self) -> dict[str, LanguageConfig]:
        return {**LANGUAGES, **{config.name: config for config in self.languages}}

    def __call__(self, completion: str, sample: Sample) -> float:
        completion = require_completion(completion, "CodeExecution")
        tests = require_field(sample, self.tests_key, "CodeExecution")
        if not isinstance(tests, (list, tuple)) or not tests:
            raise ValueError(
                f"CodeExecution: sample[{self.tests_key!r}] must be a non-empty list of test cases, got {tests!r:.120}"
            )
        name = self.language or sample.get("language", "python")
        configs = self._configs()
        if name not in configs:
            raise ValueError(f"CodeExecution: unknown language {name!r}; known: {sorted(configs)}")
        outcomes = run_tests(
            extract_code(completion),
            configs[name],
            [dict(case) for case in tests],
            self.limits,
            stop_on_failure=self.all_or_nothing,
        )
        passed = sum(outcome.passed for outcome in outcomes)
        if self.all_or_nothing:
            return 1.0 if passed == len(outcomes) else 0.0
        return passed / len(outcomes)
