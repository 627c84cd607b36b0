"""RISE's self-verification and ACRE's shuffled-option consistency on a scripted character policy,
then each trained for 2 RL steps from YAML on the tiny model."""

import math

import pytest
import torch
import yaml

from rlobj.data.tasks import TaskSource
from rlobj.ops.errors import RlobjInputError
from rlobj.rollout._batching import batch_from_rows
from rlobj.train.cli import run
from rlobj.train.stages import Batch, Score, StepContext
from rlobj.train.transforms.self_checks import SelfVerification, ShuffledConsistency, parse_verdict


def _batch(records, texts, groups):
    rollout = batch_from_rows([torch.tensor([1])] * len(texts), [torch.tensor([ord(c) for c in t]) for t in texts],
                              [torch.zeros(len(t)) for t in texts], groups, [True] * len(texts), pad_token_id=0)
    return Batch(rollout=rollout, records=list(records))


def _decode(rollout):
    return ["".join(chr(int(i)) for i, m in zip(row, mask) if m)
            for row, mask in zip(rollout.response_ids.tolist(), rollout.response_mask.tolist())]


class Scripted:
    """``sample`` answers each record with ``reply(record)`` (n times); calls are logged."""

    def __init__(self, reply):
        self.reply, self.calls = reply, []

    def sample(self, records, n=None, salt=0, **changes):
        n = n or 2
        self.calls.append(([r["prompt"] for r in records], n, changes))
        rows = [r for r in records for _ in range(n)]
        texts = [self.reply(r, k) for r in records for k in range(n)]
        return _batch(rows, texts, [j for j in range(len(records)) for _ in range(n)])

    def ctx(self):
        return StepContext(step=3, rl_updates=0, seed=0, rank=0, world_size=1, group_size=2, engine=None,
                           models=None, sample=self.sample, score=None, encode=lambda t: [], decode=_decode)


def test_parse_verdict_takes_the_first_word():
    assert parse_verdict("no, yes", "yes", "no") == 0.0
    assert parse_verdict("YES", "yes", "no") == 1.0
    assert parse_verdict("maybe", "yes", "no") is None


def test_self_verification_rewards_critiques_that_agree_with_the_verifier():
    # solution rows: group 0 = ["5", "4"] (rewards 1, 0), group 1 = ["9", "9"] (rewards 0, 0)
    records = [{"prompt": "2+3="}] * 2 + [{"prompt": "4+4="}] * 2
    batch = _batch(records, ["5", "4", "9", "9"], [0, 0, 1, 1])
    batch.scores = [Score(1.0), Score(0.0), Score(0.0), Score(0.0)]
    # the critic says "1" (correct) to everything except the solution "9" it calls "0"; row k = 1 says "?"
    policy = Scripted(lambda r, k: "?" if k == 1 else ("0" if r["prompt"].endswith("9=") else "1"))
    out = SelfVerification(template="{prompt}{solution}=", yes="1", no="0", samples=2)(policy.ctx(), batch)
    # the first response of each group is verified: "2+3=5" (target 1) and "4+4=9" (target 0)
    assert policy.calls == [(["2+3=5=", "4+4=9="], 2, {})]
    assert len(out) == 8 and out.rollout.group_ids.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert out.rewards.tolist() == [1, 0, 0, 0, 1, 0, 1, 0]  # critiques: right, unparsed, right, unparsed
    assert [r.get("verify_target") for r in out.records[4:]] == [1.0, 1.0, 0.0, 0.0]
    assert out.metrics == {"rise/verify_rows": 4.0, "rise/verify_accuracy": 0.5, "rise/verify_unparsed": 2.0}
    with pytest.raises(RlobjInputError, match="solution"):
        SelfVerification(template="{prompt}")
    with pytest.raises(RlobjInputError, match="distinct"):
        SelfVerification(yes="a", no="a")


MC = {"question": "3+4", "options": ["7", "8", "6"], "answer": "A", "prompt": "3+4 A.7 B.8 C.6"}


def test_permutations_move_an_option_and_depend_on_the_key():
    transform = ShuffledConsistency()
    for key in range(20):
        perm = transform.permutation(3, (key,))
        assert sorted(perm) == [0, 1, 2] and perm != [0, 1, 2]
    assert transform.permutation(3, (1,)) == transform.permutation(3, (1,))


def test_shuffled_consistency_scales_correct_but_inconsistent_answers():
    transform = ShuffledConsistency(template="{question}|{options}|{reasoning}|", inconsistent_scale=0.5)
    texts = ["because 7 Answer: A", "guess Answer: A", "Answer: B", "no answer"]
    batch = _batch([MC] * 4, texts, [0, 0, 0, 0])
    batch.scores = [Score(1.0), Score(1.0), Score(0.0), Score(0.0)]
    ctx = Scripted(lambda r, k: "").ctx()
    perms = [transform.permutation(3, (transform.salt, 0, 3, 0, row)) for row in range(3)]

    def reply(record, k):
        # row 0 answers the shown letter of option "7" (consistent); row 1 the letter of "8"; row 2 of "8"
        row = {"because 7": 0, "guess": 1, "": 2}[record["prompt"].split("|")[2]]
        wanted = {0: 0, 1: 1, 2: 1}[row]
        return "ABC"[perms[row].index(wanted)]

    policy = Scripted(reply)
    ctx = policy.ctx()
    out = transform(ctx, batch)
    (prompts, n, changes), = policy.calls
    assert n == 1 and changes == {"greedy": True, "max_new_tokens": 4} and len(prompts) == 3  # row 3 unparsed
    shown = prompts[0].split("|")[1].split("\n")
    assert [line[3:] for line in shown] == [MC["options"][i] for i in perms[0]]
    assert prompts[0].split("|")[2] == "because 7"
    # row 0 correct and consistent: 1; row 1 correct, inconsistent: 0.5; row 2 wrong: unchanged 0
    assert out.rewards.tolist() == [1.0, 0.5, 0.0, 0.0]
    assert [s.fields.get("acre_consistent") for s in out.scores] == [1.0, 0.0, 1.0, None]
    assert out.metrics == {"acre/checked": 3.0, "acre/consistency": pytest.approx(2 / 3)}
    assert batch.rewards.tolist() == [1.0, 1.0, 0.0, 0.0]  # the input batch is unchanged


def test_shuffled_consistency_needs_multiple_choice_records():
    batch = _batch([{"prompt": "x"}], ["Answer: A"], [0])
    batch.scores = [Score(1.0)]
    with pytest.raises(RlobjInputError, match="options"):
        ShuffledConsistency()(Scripted(lambda r, k: "A").ctx(), batch)
    with pytest.raises(RlobjInputError, match="group"):
        ShuffledConsistency(answer_pattern="Answer")
    with pytest.raises(RlobjInputError, match="reasoning"):
        ShuffledConsistency(template="{question}{options}")


class ChoiceTask(TaskSource):
    """Multiple-choice sums: which of three numbers is ``a+b``? Answer letter first."""

    def record(self, index):
        import random

        rng = random.Random(index)
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        options = [str(a + b), str(a + b + 1), str(a + b + 2)]
        rng.shuffle(options)
        letter = "ABC"[options.index(str(a + b))]
        prompt = f"{a}+{b} A{options[0]} B{options[1]} C{options[2]} "
        return {"prompt": prompt, "question": f"{a}+{b}", "options": options, "answer": letter,
                "completion": letter}


class LetterFirst:
    """Reward 1 when the completion starts with the record's answer letter."""

    def __call__(self, completion, record):
        return float(completion.strip()[:1] == record["answer"])


MODEL = {"policy": {"tiny_model": {"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0},
                    "tokenizer_chars": "0123456789+-*= ABC.|"},
         "rollout": {"group_size": 4, "max_new_tokens": 4}, "warmup": {"steps": 0, "eval_at_end": False},
         "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1.0e-3, "weight_decay": 0.0}},
         "seed": 0}


@pytest.mark.parametrize("name", ["rise", "acre"])
def test_self_checks_train_from_yaml(name, tmp_path):
    if name == "rise":
        transform = {"class_path": "rlobj.train.transforms.self_checks.SelfVerification",
                     "init_args": {"template": "{prompt}{solution}=", "yes": "1", "no": "0", "samples": 2}}
        data = {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 1}}
        verifier = {"class_path": "rlobj.train.ExactAnswer"}
    else:
        transform = {"class_path": "rlobj.train.transforms.self_checks.ShuffledConsistency",
                     "init_args": {"template": "{question} {options}|{reasoning}", "answer_pattern": "([ABC])"}}
        data = {"class_path": "train.transforms.test_self_checks.ChoiceTask"}
        verifier = {"class_path": "train.transforms.test_self_checks.LetterFirst"}
    config = {"seed_everything": 0,
              "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 2, "limit_val_batches": 0, "logger": False,
                          "enable_progress_bar": False, "enable_model_summary": False, "enable_checkpointing": False,
                          "default_root_dir": str(tmp_path)},
              "model": {**MODEL, "objective": "grpo", "transforms": [transform], "verifier": verifier},
              "data": {"train": data, "eval": data, "prompts_per_step": 3, "eval_size": 4}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    metrics = run(["fit", "--config", str(path)]).model.last_metrics
    assert math.isfinite(metrics["loss"])
    if name == "rise":
        assert metrics["rise/verify_rows"] == 6.0  # 3 groups x 1 solution x 2 critiques
    else:
        assert metrics["acre/checked"] >= 0.0 and "acre/consistency" in metrics
