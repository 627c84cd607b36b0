"""Providers of the inputs terms read (see :mod:`rlobj.train.providers.base`)."""

from rlobj.train.providers.base import (
    PROVIDERS,
    TRAINER_SLOTS,
    Provider,
    build_providers,
    register_provider,
    required_slots,
    resolve_providers,
)
from rlobj.train.providers.policy import (
    LpRegProxy,
    PerturbedContext,
    ReferenceLogprobs,
    ReferenceViews,
    RolloutFields,
    TokenRewards,
)

__all__ = [
    "PROVIDERS",
    "TRAINER_SLOTS",
    "Provider",
    "build_providers",
    "register_provider",
    "required_slots",
    "resolve_providers",
    "LpRegProxy",
    "PerturbedContext",
    "ReferenceLogprobs",
    "ReferenceViews",
    "RolloutFields",
    "TokenRewards",
]

from rlobj.train.providers.batch_statistics import Accuracy, SirenAnchor  # noqa: E402
from rlobj.train.providers.scores import (  # noqa: E402
    AepoCandidates,
    AnswerIds,
    AppealCheck,
    AuxConstruction,
    ConcisenessScore,
    PairwiseJudge,
    RewardComponents,
)
from rlobj.train.providers.steps import ReasoningSteps, TokenInfluence  # noqa: E402

__all__ += ["AepoCandidates", "AnswerIds", "AppealCheck", "AuxConstruction", "ConcisenessScore", "PairwiseJudge",
            "RewardComponents", "ReasoningSteps", "TokenInfluence", "Accuracy", "SirenAnchor"]

from rlobj.train.providers.policy_extras import (  # noqa: E402
    GuidedSampler,
    HintedContext,
    RLPRAnswerLogprobs,
    SelfRewardProbe,
    UnconditionedLogprobs,
)
from rlobj.train.providers.policy_extras_rows import (  # noqa: E402
    InitialPolicyRows,
    InitialPolicySamples,
    NoisyBranchRows,
    OffPolicyRows,
    VisualDependency,
)

__all__ += ["GuidedSampler", "HintedContext", "RLPRAnswerLogprobs", "SelfRewardProbe", "UnconditionedLogprobs",
            "InitialPolicyRows", "InitialPolicySamples", "NoisyBranchRows", "OffPolicyRows", "VisualDependency"]

from rlobj.train.providers.tree import TreeValues  # noqa: E402

__all__ += ["TreeValues"]
from rlobj.train.providers.turns import TurnFields  # noqa: E402

__all__ += ["TurnFields"]
