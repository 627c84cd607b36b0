"""DAPO's dynamic sampling from YAML: every update trains on exactly the requested number of
informative groups; at the round cap the run warns (default) or stops with a clear error."""

import pytest

from rlobj.ops.errors import RlobjInputError
from rlobj.train import RLModule
from rlobj.train.cli import run

from ._yaml_fit import addition_data, write_fit_config

MODEL = {"policy": {"tiny_model": {"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0}},
         "rollout": {"group_size": 4, "max_new_tokens": 3}, "warmup": {"steps": 0, "eval_at_end": False},
         "objective": "dapo", "seed": 0}


def _config(tmp_path, model: dict, steps: int = 3) -> str:
    return write_fit_config(tmp_path, {**MODEL, **model}, addition_data(4), steps)


@pytest.fixture
def trained_batches(monkeypatch):
    """(groups, informative groups) of every batch that reached the update."""
    seen = []
    original = RLModule.update_on_batch

    def record(self, batch, ctx):
        groups = batch.rollout.group_ids
        rewards = batch.rewards
        informative = sum(bool(rewards[groups == g].std() > 0) for g in groups.unique())
        seen.append((len(groups.unique()), informative))
        return original(self, batch, ctx)

    monkeypatch.setattr(RLModule, "update_on_batch", record)
    return seen


def test_refill_trains_on_exactly_the_requested_informative_groups(tmp_path, trained_batches):
    model = {"verifier": {"class_path": "train._helpers.StartsWithDigit"},
             "transforms": [{"dynamic_sampling": {"groups": 3, "max_rounds": 8, "on_short": "error"}}]}
    cli = run(["fit", "--config", _config(tmp_path, model)])
    assert trained_batches == [(3, 3)] * 3
    metrics = cli.model.last_metrics
    assert metrics["dynamic_sampling/groups_kept"] == 3 and metrics["dynamic_sampling/rounds"] >= 1


def test_round_cap_errors_clearly(tmp_path):
    # ExactAnswer on an untrained model: every reward is 0, no group is informative
    model = {"transforms": [{"dynamic_sampling": {"max_rounds": 2, "on_short": "error"}}]}
    with pytest.raises(RlobjInputError, match="dynamic_sampling|DynamicSampling"):
        run(["fit", "--config", _config(tmp_path, model, steps=1)])


def test_round_cap_warns_and_skips_an_empty_step(trained_batches):
    # ExactAnswer on an untrained model: every reward is 0, no group is informative
    module = RLModule(**MODEL, transforms=[{"dynamic_sampling": {"max_rounds": 2}}])
    module.build()
    records = [{"prompt": "1+2=", "answer": "3"}, {"prompt": "4+4=", "answer": "8"}]
    with pytest.warns(UserWarning, match="only 0 of 2 requested groups had non-equal rewards after 2 rounds"):
        metrics = module.rl_update(records, step=0)
    assert trained_batches == []  # nothing informative: no update this step
    assert metrics["dynamic_sampling/groups_kept"] == 0 and module.rl_updates == 0
