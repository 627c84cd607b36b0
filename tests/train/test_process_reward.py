"""The process reward model of PROPA (rlobj/train/process_reward.py): it fits a toy labelled set and
orders it like the labels, saves and loads, refuses bad input; its examples are the search tree's
step labels after the prompt; the scorer learns from MCTS step labels and scores steps."""

import math

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.mcts import MCTSConfig, SearchTree, StepSample
from rlobj.train.process_reward import PRMExample, PRMScorer, ProcessRewardModel, prm_examples

from ._helpers import tiny_module
from ._propa_helpers import RECORDS, SEARCH, CountingVerifier


def toy_examples():
    # the label is the fraction of 7s in the last three tokens: 0, 1/3, 2/3 or 1
    out = []
    for a in range(3, 7):
        for pattern in ((a, a, a), (a, a, 7), (a, 7, 7), (7, 7, 7), (7, a, a), (a, 7, a)):
            out.append(PRMExample((3, 4) + pattern, pattern.count(7) / 3))
    return out


def test_prm_fits_a_toy_labelled_set_and_orders_it_like_the_labels():
    examples = toy_examples()
    prm = ProcessRewardModel(vocab_size=10, hidden_size=32, layers=1, heads=1, seed=0)
    before = prm.predict([e.ids for e in examples])
    losses = prm.fit(examples, epochs=40, lr=5e-3, batch_size=8, loss="mse")
    assert losses[-1] < 0.2 * losses[0], losses[::10]
    after = prm.predict([e.ids for e in examples])
    labels = torch.tensor([e.label for e in examples])
    assert (after - labels).abs().max() < 0.2 < (before - labels).abs().max()
    means = [float(after[labels == v].mean()) for v in (0.0, 1 / 3, 2 / 3, 1.0)]
    assert means == sorted(means) and means[-1] - means[0] > 0.6  # ordered as the labels
    bce = ProcessRewardModel(vocab_size=10, hidden_size=32, layers=1, heads=1, seed=0)
    history = bce.fit(examples, epochs=10, lr=5e-3, batch_size=8, loss="bce")
    assert history[-1] < history[0]


def test_prm_saves_loads_and_refuses_bad_input(tmp_path):
    prm = ProcessRewardModel(vocab_size=10, seed=3)
    prm.save(str(tmp_path / "prm"))
    again = ProcessRewardModel.load(str(tmp_path / "prm"))
    torch.testing.assert_close(again.predict([[3, 4, 5]]), prm.predict([[3, 4, 5]]))
    with pytest.raises(RlobjInputError, match="labels must lie in"):
        prm.fit([PRMExample((3,), 1.5)])
    with pytest.raises(RlobjInputError, match="loss must be"):
        prm.fit([PRMExample((3,), 0.5)], loss="l1")
    with pytest.raises(RlobjInputError, match="non-empty token sequences"):
        prm.predict([[]])
    with pytest.raises(RlobjInputError, match="has no prm.json"):
        ProcessRewardModel.load(str(tmp_path))
    with pytest.raises(RlobjInputError, match="PRMScorer.outcome"):
        PRMScorer(outcome="max")
    with pytest.raises(RlobjInputError, match=r"PRMScorer.train: unknown key\(s\) \['evry'\]"):
        PRMScorer(train={"evry": 2})


def test_prm_examples_are_the_tree_labels_after_the_prompt():
    tree = SearchTree(MCTSConfig(width=2, backup="mean"), paths=2, length_limit=8)
    a, b = tree.add_children(0, [StepSample((5,), (-0.1,), False), StepSample((6,), (-0.2,), False)])
    tree.backup(a, 1.0)
    tree.backup(a, 0.0)  # Q(a) = 1/2, b unvisited with a non-zero sibling: label 0
    examples = prm_examples(tree, [3, 4])
    assert [e.ids for e in examples] == [(3, 4, 5), (3, 4, 6)]
    assert [round(e.label, 4) for e in examples] == [round(math.log(6) / math.log(11), 4), 0.0]


def test_mcts_step_labels_reach_the_prm_scorer_which_learns_and_scores_steps():
    CountingVerifier.calls = 0
    scorer = PRMScorer(prm={"hidden_size": 64, "layers": 1, "heads": 1}, verifier=CountingVerifier(),
                       token_rewards=True, delimiter=None, train={"every": 1, "epochs": 2})
    module = tiny_module(sampler={"mcts": SEARCH}, scorer=scorer)
    ctx = module.context(0)
    batch = ctx.sample(RECORDS)
    searched = CountingVerifier.calls
    assert searched >= len(batch)  # every returned path was verified in the search
    labels, ends = batch.extras["step_labels"], batch.extras["step_ends"]
    assert (labels[~ends] == -1).all()
    assert ((labels[ends] >= 0) & (labels[ends] <= 1)).all()
    scored = ctx.score(batch)
    assert CountingVerifier.calls == searched  # reused: no second verification
    assert scored.metrics["verifier/reused_fraction"] == 1.0
    assert scorer.fits == 1 and len(scorer.examples) > 0 and scored.metrics["prm/examples"] > 0
    for row, score in enumerate(scored.scores):
        steps = int(ends[row].sum())
        assert len(score.fields["step_scores"]) == steps
        tokens = torch.tensor(score.token_rewards)
        on_ends = ends[row][batch.rollout.response_mask[row]]
        assert torch.allclose(tokens[on_ends], torch.tensor(score.fields["step_scores"]))
        assert (tokens[~on_ends] == 0).all()
        assert score.reward in (0.0, 1.0)
    metrics = module.update_on_batch(scored, ctx)
    assert math.isfinite(metrics["loss"])
    restored = PRMScorer(delimiter=None)  # checkpoint round trip: model, examples, counters
    restored.load_state_dict(scorer.state_dict())
    assert restored.fits == 1 and restored.examples == scorer.examples
    ids = [list(e.ids) for e in scorer.examples[:4]]
    torch.testing.assert_close(restored.prm.predict(ids), scorer.prm.predict(ids))
