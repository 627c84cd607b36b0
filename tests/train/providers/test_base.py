"""Building providers from YAML names (rlobj/train/providers/base.py)."""



from rlobj.train.providers import build_providers


def test_providers_build_from_yaml_names():
    built = build_providers([{"AnswerIds": {"extract": "whole"}}, "PairwiseJudge",
                             "rlobj.train.providers.steps.ReasoningSteps", {"TokenInfluence": {"threshold": 0.3}}])
    assert [type(p).__name__ for p in built] == ["AnswerIds", "PairwiseJudge", "ReasoningSteps", "TokenInfluence"]
    assert built[0].extract == "whole" and built[3].threshold == 0.3


def test_policy_extras_providers_registered_as_defaults_and_built_by_name():
    from rlobj.train.providers import (
        PROVIDERS,
        HintedContext,
        InitialPolicyRows,
        NoisyBranchRows,
        OffPolicyRows,
        RLPRAnswerLogprobs,
        SelfRewardProbe,
        UnconditionedLogprobs,
        VisualDependency,
    )

    for cls in (RLPRAnswerLogprobs, UnconditionedLogprobs, SelfRewardProbe, HintedContext, OffPolicyRows,
                InitialPolicyRows, NoisyBranchRows, VisualDependency):
        assert all(PROVIDERS[slot] is cls for slot in cls.provides)
    built = build_providers([{"OffPolicyRows": {"tolerance": 0.5}}, "rlobj.train.providers.NoisyBranchRows",
                             {"RLPRAnswerLogprobs": {"open_tag": "="}}])
    assert built[0].tolerance == 0.5 and isinstance(built[1], NoisyBranchRows) and built[2].open_tag == "="

