"""Building providers from YAML names (rlobj/train/providers/base.py)."""



from rlobj.train.providers import build_providers


def test_providers_build_from_yaml_names():
    built = build_providers([{"AnswerIds": {"extract": "whole"}}, "PairwiseJudge",
                             "rlobj.train.providers.steps.ReasoningSteps", {"TokenInfluence": {"threshold": 0.3}}])
    assert [type(p).__name__ for p in built] == ["AnswerIds", "PairwiseJudge", "ReasoningSteps", "TokenInfluence"]
    assert built[0].extract == "whole" and built[3].threshold == 0.3
