"""Shared by the PROPA tests (test_process_reward.py, test_interleave.py, test_propa.py): two addition
records, a small MCTS search configuration and a verifier that counts its calls."""

from rlobj.data.tasks import ExactAnswer

RECORDS = [{"prompt": "12+3=", "answer": "15", "completion": "15"}, {"prompt": "7+8=", "answer": "15", "completion": "15"}]
SEARCH = {"config": {"width": 2, "max_depth": 3, "step_tokens": 2, "token_budget": 40, "backup": "mean",
                     "reward_scale": 1.0, "reward_baseline": 0.0}, "delimiter": None, "labels": True}


class CountingVerifier(ExactAnswer):
    """ExactAnswer that counts its calls (one call = one verified response)."""

    calls = 0

    def __call__(self, completion, sample):
        type(self).calls += 1
        return super().__call__(completion, sample)
