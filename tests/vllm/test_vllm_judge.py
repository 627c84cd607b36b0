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
