"""A generative judge through the real vLLM CPU engine: the same verdicts as through the HF engine."""

import pytest


@pytest.fixture(scope="module")
def fitted_judge(tmp_path_factory):
    from rlobj.train.tiny_judges import save_tiny_judge

    return str(save_tiny_judge(tmp_path_factory.mktemp("judge") / "seven", reply="7"))


def test_pointwise_judge_through_vllm_matches_the_hf_engine(fitted_judge):
    from rlobj.train.judges import PointwiseJudge

    records = [{"prompt": "1+1=", "answer": "2"}, {"prompt": "2+2=", "answer": "4"}]
    through_vllm = PointwiseJudge(fitted_judge, engine="vllm", engine_args={"max_model_len": 512})
    scores, metrics = through_vllm.score_texts(["2", "5"], records)
    assert through_vllm.last_outputs == ["7", "7"]  # the real vLLM engine's greedy verdicts
    assert [s.reward for s in scores] == [0.7, 0.7] and metrics["judge/failed_fraction"] == 0.0
    through_hf = PointwiseJudge(fitted_judge)
    through_hf.score_texts(["2", "5"], records)
    assert through_hf.last_outputs == through_vllm.last_outputs


def test_token_probability_verdicts_through_vllm_match_the_hf_engine(fitted_judge):
    """Yes/No and A/B verdicts from vLLM's prompt log-probabilities equal the HF forward's."""
    from rlobj.train.judges import PairwiseLLMJudge, PointwiseJudge, PrincipleJudge

    records = [{"prompt": "1+1=", "answer": "2", "completion": "2"}, {"prompt": "2+2=", "answer": "4", "completion": "4"}]
    shared = PointwiseJudge(fitted_judge, engine="vllm", engine_args={"max_model_len": 512})
    shared.load()  # one vLLM engine for both judges below (an engine start is most of this test's time)
    principles = ["is correct", "is short"]
    through_vllm = PrincipleJudge(fitted_judge, principles=principles, engine="vllm")
    through_vllm.judge = shared.judge
    vllm_scores, metrics = through_vllm.score_texts(["2", "5"], records)
    hf_scores, _ = PrincipleJudge(fitted_judge, principles=principles).score_texts(["2", "5"], records)
    assert metrics["principle_judge/failed_fraction"] == 0.0
    assert [s.reward for s in vllm_scores] == pytest.approx([s.reward for s in hf_scores], abs=1e-4)
    assert all(0.0 < s.reward < 1.0 for s in vllm_scores)
    pairwise = PairwiseLLMJudge(fitted_judge, engine="vllm")
    pairwise.judge = shared.judge
    straight = pairwise.compare(["1+1="], ["2"], ["5"], records[:1])[0]
    swapped = pairwise.compare(["1+1="], ["5"], ["2"], records[:1])[0]
    assert straight + swapped == pytest.approx(1.0, abs=1e-6)  # position swap, through vLLM
    hf = PairwiseLLMJudge(fitted_judge).compare(["1+1="], ["2"], ["5"], records[:1])[0]
    assert straight == pytest.approx(hf, abs=1e-4)
