"""A small scripted world for the batch transforms' tests (tests/train/transforms/, tests/train/test_transforms.py):
batches built from records and token lists, a scorer (reward 1 iff the answer token comes first) and a
``StepContext`` whose ``sample`` follows each record's plan of right/wrong answers."""


import torch

from rlobj.rollout._batching import batch_from_rows
from rlobj.train.stages import Batch, Score, StepContext

ANSWER, WRONG = 5, 6


# --------------------------------------------------------------------------- a small scripted world
def make_batch(records, responses, group_ids, scores=None, extras=None) -> Batch:
    """One row per response (a list of token ids); prompt of a record = [10 + id]."""
    rollout = batch_from_rows([torch.tensor([10 + r["id"]]) for r in records],
                              [torch.tensor(t) for t in responses],
                              [torch.full((len(t),), -0.5) for t in responses], group_ids,
                              [True] * len(responses), pad_token_id=0)
    return Batch(rollout=rollout, records=list(records), scores=scores, extras=extras or {})


def score_rows(batch: Batch) -> list[Score]:
    """Reward 1 iff the response starts with the record's answer token; fields: acc, step_scores."""
    out = []
    for b, record in enumerate(batch.records):
        first = int(batch.rollout.response_ids[b, 0])
        reward = float(first == record.get("answer", ANSWER))
        fields = {"acc": reward}
        if "steps" in record:
            fields["step_scores"] = record["steps"][b % len(record["steps"])]
        out.append(Score(reward=reward, fields=fields))
    return out


class Script:
    """``sample(records, n, salt, **changes)``: record ``r`` answers with ``r["plan"][salt]`` (a list of
    right/wrong flags, cycled to ``n``), or ``r["greedy"]`` when greedy; every call is logged."""

    def __init__(self, group_size=2):
        self.group_size, self.calls = group_size, []

    def sample(self, records, n=None, salt=0, **changes):
        n = self.group_size if n is None else n
        self.calls.append(dict(ids=[r["id"] for r in records], n=n, salt=salt, **changes))
        rows, responses, groups = [], [], []
        for j, record in enumerate(records):
            flags = [record["greedy"]] if changes.get("greedy") else record["plan"].get(salt, [False])
            for k in range(n):
                right = flags[k % len(flags)]
                length = 1 + (k % 3)
                responses.append([ANSWER if right else WRONG] + [7] * (length - 1))
                rows.append(record)
                groups.append(j)
        return make_batch(rows, responses, groups, extras={"off_policy": torch.zeros(len(rows), dtype=torch.bool)})

    def score(self, batch):
        return Batch(rollout=batch.rollout, records=batch.records, scores=score_rows(batch), extras=batch.extras,
                     metrics=batch.metrics)


def context(script: Script, step: int = 0) -> StepContext:
    return StepContext(step=step, rl_updates=0, seed=0, rank=0, world_size=1, group_size=script.group_size,
                       engine=None, models=None, sample=script.sample, score=script.score,
                       encode=lambda text: [], decode=lambda rollout: [], pad_token_id=0)


def first_batch(script: Script, records) -> Batch:
    batch = script.score(script.sample(records, salt=0))
    script.calls.clear()
    return batch


def groups_of(batch: Batch) -> list[list[int]]:
    """Record ids per group (groups in order), checking that each group's rows are contiguous."""
    ids = batch.rollout.group_ids.tolist()
    order = list(dict.fromkeys(ids))
    starts = [ids.index(g) for g in order]
    for g, start in zip(order, starts):
        assert ids[start:start + ids.count(g)] == [g] * ids.count(g), f"group {g} is not contiguous: {ids}"
    return [[batch.records[i]["id"] for i in range(len(ids)) if ids[i] == g] for g in order]


R, W = True, False
