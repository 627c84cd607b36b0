"""Absolute Zero: sandbox validation of proposed tasks (counted statuses), hand-computed proposer
(learnability) and solver rewards, the buffer with dedup and provenance, 2 RL steps from YAML."""

import string

import pytest
import torch

from rlobj.data.tasks import AdditionTask
from rlobj.ops.errors import RlobjInputError
from rlobj.rollout._batching import batch_from_rows
from rlobj.train.absolute_zero import (
    AbsoluteZero,
    AbsoluteZeroScorer,
    check_solution,
    validate_proposal,
)
from rlobj.train.code_tasks import CodeRunner
from rlobj.train.data_loops import DataLoop
from rlobj.train.stages import Batch

from ._yaml_fit import fit_from_yaml

RUNNER = CodeRunner(wall_seconds=2.0)


def proposal(program: str, *inputs: str, message: str | None = None) -> str:
    text = f"```python\n{program}\n```\n" + "".join(f"```input\n{i}\n```\n" for i in inputs)
    return text + (f"```message\n{message}\n```\n" if message else "")


@pytest.mark.parametrize("text, status", [
    (proposal("def f(a):\n    return a * 2", "3"), "valid"),
    (proposal("import os\ndef f(a):\n    return os.listdir(a)", "'/'"), "banned_import"),
    (proposal("from subprocess import run\ndef f(a):\n    return run(a)", "'ls'"), "banned_import"),
    (proposal("def f(a):\n    return open(a).read()", "'/etc/passwd'"), "banned_name"),
    (proposal("def f(a):\n    return a.__class__.__bases__", "1"), "banned_name"),
    (proposal("def f(a) return a", "1"), "syntax_error"),
    (proposal("def g(a):\n    return a", "1"), "no_function_f"),
    (proposal("def f(a):\n    return a", "__import__('os').system('id')"), "input_not_literal"),
    (proposal("def f(a):\n    return 1 // a", "0"), "runtime_error"),
    (proposal("def f(a):\n    while True:\n        a += 1", "0"), "timeout"),
    (proposal("calls = [0]\ndef f(a):\n    calls[0] += 1\n    return a + calls[0]", "1"), "nondeterministic"),
    (proposal("def f(a):\n    return {a}", "1"), "valid"),
    (proposal("class A:\n    def __init__(self, a):\n        self.a = a\ndef f(a):\n    return A(a)", "1"),
     "nondeterministic"),  # the default repr holds the object's address
    (proposal("def f(a):\n    return range(a)", "1"), "output_not_literal"),
    ("f(x) = 2x", "format_error"),
])
def test_proposals_are_validated_in_the_sandbox_with_a_status(text, status):
    got, task = validate_proposal("deduction", text, RUNNER)
    assert got == status
    assert (task is not None) == (status == "valid")


def test_valid_tasks_carry_the_sandboxed_output():
    _, task = validate_proposal("abduction", proposal("def f(a, b):\n    return [b, a]", "1, 'x'"), RUNNER)
    assert task == {"kind": "abduction", "program": "def f(a, b):\n    return [b, a]", "input": "1, 'x'",
                    "output": "['x', 1]"}
    program = "def f(a):\n    return a[::-1]"
    status, task = validate_proposal("induction", proposal("", "'ab'", "[1, 2]", "'x'", "()", message="Reverse it."),
                                     RUNNER, program=program, count=4)
    assert status == "valid" and task["outputs"] == ["'ba'", "[2, 1]", "'x'", "()"]
    assert validate_proposal("induction", proposal("", "1", message="m"), RUNNER, program=program)[0] == "wrong_input_count"


def test_solver_checks_by_hand():
    deduction = {"kind": "deduction", "program": "def f(a):\n    return a * 2", "input": "3", "output": "6"}
    assert check_solution(deduction, "<answer> 6 </answer>", RUNNER) == (True, True)
    assert check_solution(deduction, "<answer>7</answer>", RUNNER) == (True, False)
    assert check_solution(deduction, "6", RUNNER) == (False, False)  # no answer tags
    abduction = {**deduction, "kind": "abduction"}
    assert check_solution(abduction, "<answer>3</answer>", RUNNER) == (True, True)  # f(3) == 6, run in the sandbox
    assert check_solution(abduction, "<answer>4</answer>", RUNNER) == (True, False)
    assert check_solution(abduction, "<answer>__import__('os')</answer>", RUNNER) == (True, False)
    induction = {"kind": "induction", "program": "def f(a):\n    return a + 1", "inputs": ["1", "2", "3", "4"],
                 "outputs": ["2", "3", "4", "5"], "message": "m"}
    assert check_solution(induction, "<answer>def f(x):\n    return x + 1</answer>", RUNNER) == (True, True)
    # right on the given pairs only: the hidden pairs (inputs 3 and 4) decide
    assert check_solution(induction, "<answer>def f(x):\n    return {1: 2, 2: 3}.get(x)</answer>", RUNNER) == (True, False)
    assert check_solution(induction, "<answer>import os\ndef f(x):\n    return x + 1</answer>", RUNNER) == (True, False)
    assert check_solution(induction, "<answer>f = 1</answer>", RUNNER) == (False, False)


class FakeContext:
    """decode gives scripted texts: the batch's, then those of each ctx.sample call in order."""

    def __init__(self, texts, drawn, rollout=None):
        self.texts, self.drawn, self.asked, self.rollout = texts, list(drawn), [], rollout

    def decode(self, rollout):
        return self.texts if rollout is self.rollout else self.last

    def sample(self, records, n=None, salt=0):
        self.asked.append((records, n))
        self.last = [text for group in self.drawn.pop(0) for text in group]
        groups = [g for g, group in enumerate(records) for _ in range(n)]
        return Batch(rollout=rows(groups), records=[r for r in records for _ in range(n)])


def rows(groups):
    count = len(groups)
    return batch_from_rows([torch.tensor([3])] * count, [torch.tensor([4])] * count, [torch.zeros(1)] * count,
                           groups, [True] * count, 0)


def test_proposer_and_solver_rewards_by_hand():
    double = {"kind": "deduction", "program": "def f(a):\n    return a * 2", "input": "3", "output": "6"}
    records = [{"prompt": "p", "azr": {"role": "propose", "kind": "deduction"}}] * 4 + \
              [{"prompt": "s", "azr": {"role": "solve", "kind": "deduction", "task": double}}] * 3
    texts = [proposal("def f(a):\n    return a + 1", "5"),   # valid: f(5) = 6; solved 2 of 4 -> 1 - 1/2
             proposal("def f(a):\n    return a - 1", "5"),   # valid, solved 4 of 4 -> learnability 0
             proposal("def f(a):\n    return a", "5"),       # valid, solved 0 of 4 -> learnability 0
             proposal("import os\ndef f(a):\n    return a", "5"),  # invalid
             "<answer>6</answer>", "<answer>7</answer>", "6"]
    drawn = [[["<answer>6</answer>", "<answer>6</answer>", "<answer>5</answer>", "no tags"],
              ["<answer>4</answer>"] * 4, ["<answer>0</answer>"] * 4]]
    batch = Batch(rollout=rows(list(range(7))), records=list(records))
    ctx = FakeContext(texts, drawn, batch.rollout)
    scores = AbsoluteZeroScorer(n_samples=4, wall_seconds=2.0)(ctx, batch)
    # learnability 1 - 0.5; then the format-aware rewards of the reference: -0.5 well formed but 0,
    # -1 invalid; solver: 1 right, -0.5 wrong, -1 no answer tags
    assert [s.reward for s in scores] == [0.5, -0.5, -0.5, -1.0, 1.0, -0.5, -1.0]
    assert [s.fields.get("solve_rate") for s in scores[:4]] == [0.5, 1.0, 0.0, -1.0]
    assert [s.fields.get("learnability") for s in scores[:4]] == [0.5, 0.0, 0.0, 0.0]
    assert len(ctx.asked) == 1 and ctx.asked[0][1] == 4 and len(ctx.asked[0][0]) == 3  # valid ones only
    assert "f(5)" in ctx.asked[0][0][0]["prompt"]
    assert [r["azr_result"]["status"] for r in batch.records[:4]] == ["valid"] * 3 + ["banned_import"]
    assert batch.metrics["azr/valid_proposals"] == 3.0 and batch.metrics["azr/solve_accuracy"] == 1 / 3


def test_buffer_takes_validated_tasks_once_with_provenance(tmp_path):
    strategy = AbsoluteZero(propose_fraction=0.5, references=1, wall_seconds=2.0)
    assert [len(strategy.buffers[k]) for k in ("deduction", "abduction", "induction")] == [1, 1, 1]
    loop = DataLoop(strategy, AdditionTask(seed=0), per_rank=6)
    chosen = loop.records(0)
    roles = [(r["azr"]["role"], r["azr"]["kind"]) for r in chosen]
    assert roles == [("propose", "deduction"), ("propose", "abduction"), ("propose", "induction"),
                     ("solve", "deduction"), ("solve", "abduction"), ("solve", "induction")]
    assert "def f(a):\n    return a" in chosen[2]["prompt"] and "Hello World" in chosen[0]["prompt"]
    task = {"kind": "deduction", "program": "def f(a):\n    return a + 1", "input": "5", "output": "6"}
    results = [{"status": "valid", "task": task, "learnability": 0.5}, {"status": "valid", "task": dict(task),
               "learnability": 0.25}, {"status": "banned_import", "task": None}, {"status": "timeout", "task": None}]
    rows_ = [{**chosen[0], "azr_result": r} for r in results] + chosen[3:]
    loop.observe(0, rows_, [0.5, 0.5, -1.0, -1.0, 1.0, 1.0, 1.0])
    assert strategy.metrics()["azr/added"] == 1.0 and strategy.metrics()["azr/duplicate"] == 1.0
    assert strategy.metrics()["azr/banned_import"] == 1.0 and strategy.metrics()["azr/timeout"] == 1.0
    assert strategy.log[-1] == {"id": "azr3", "kind": "deduction", "proposer": "azr-propose/deduction/0/0",
                                "step": 0, "learnability": 0.5}
    assert strategy.buffers["deduction"][-1]["id"] == "azr3"
    torch.save(loop.state_dict(), tmp_path / "loop.pt")
    restored = DataLoop(AbsoluteZero(wall_seconds=2.0, references=1), AdditionTask(seed=0), per_rank=6)
    restored.load_state_dict(torch.load(tmp_path / "loop.pt", weights_only=True))
    assert restored.state_dict() == loop.state_dict()
    assert restored.records(1) == loop.records(1)


def test_bad_settings_and_rows_are_named():
    with pytest.raises(RlobjInputError, match="kinds"):
        AbsoluteZero(kinds=["translation"])
    with pytest.raises(RlobjInputError, match="n_samples"):
        AbsoluteZeroScorer(n_samples=0)
    batch = Batch(rollout=rows([0]), records=[{"prompt": "1+1="}])
    with pytest.raises(RlobjInputError, match="no 'azr' role"):
        AbsoluteZeroScorer()(FakeContext(["2"], [], batch.rollout), batch)
    # rows of an evaluation set go to the given verifier
    scorer = AbsoluteZeroScorer(verifier="rlobj.train.ExactAnswer")
    assert [s.reward for s in scorer(FakeContext(["2"], [], batch.rollout), Batch(
        rollout=batch.rollout, records=[{"prompt": "1+1=", "answer": "2"}]))] == [1.0]


def test_absolute_zero_trains_two_rl_steps_from_yaml(tmp_path):
    chars = string.ascii_letters + string.digits + string.punctuation + " \n"
    model = {"policy": {"tiny_model": {"hidden_size": 64, "layers": 1, "heads": 2, "seed": 0},
                        "tokenizer_chars": chars},
             "rollout": {"group_size": 2, "max_new_tokens": 6}, "warmup": {"steps": 0, "eval_at_end": False},
             "scorer": {"class_path": "rlobj.train.absolute_zero.AbsoluteZeroScorer",
                        "init_args": {"n_samples": 2, "answer_tags": False, "wall_seconds": 2.0}},
             "seed": 0}
    data = {"train": {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 1}},
            "eval": {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 2}},
            "prompts_per_step": 6, "eval_size": 2,
            "strategy": {"class_path": "rlobj.train.absolute_zero.AbsoluteZero",
                         "init_args": {"propose_fraction": 0.5, "wall_seconds": 2.0}}}
    cli = fit_from_yaml(tmp_path, model, data)
    module, loop = cli.model, cli.datamodule.data_loop
    assert module.rl_updates >= 2
    batch = module.last_batch[0]
    assert {r["azr"]["role"] for r in batch.records} == {"propose", "solve"}
    # the untrained model's proposals are all rejected, each with a counted status
    assert sum(loop.strategy.counts.values()) == 2 * 3 * 2  # steps x propose prompts x group size
    assert all(k in ("format_error", "added", "duplicate") for k in loop.strategy.counts)
    assert {"azr0", "azr1", "azr2"} <= set(loop.stats.entries)  # the solver's tasks are tracked


def _two_rank_worker(rank: int, world: int, init: str, out: str):
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        loop = DataLoop(AbsoluteZero(propose_fraction=1.0, wall_seconds=2.0), AdditionTask(seed=0), per_rank=2)
        mine = loop.records(0, rank, world)  # propose prompts: slots 0, 1 on rank 0, slots 2, 3 on rank 1
        plus_one = {"kind": "deduction", "program": "def f(a):\n    return a + 1", "input": "5", "output": "6"}
        twice = {"kind": "abduction", "program": "def f(a):\n    return a * 2", "input": "5", "output": "10"}
        results = {0: [{"status": "valid", "task": plus_one, "learnability": 0.5}],
                   1: [{"status": "valid", "task": dict(plus_one), "learnability": 0.25},
                       {"status": "valid", "task": twice, "learnability": 0.75}, {"status": "banned_import", "task": None}]}
        rows = [{**mine[0], "azr_result": r} for r in results[rank]] + [mine[1]]
        loop.observe(0, rows, [0.0] * len(rows))
        gathered = [None] * world
        torch.distributed.all_gather_object(gathered, (loop.state_dict(), loop.strategy.metrics(),
                                                       [r["prompt_id"] for r in loop.records(1, rank, world)]))
        if rank == 0:
            torch.save(gathered, out)
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_absorb_every_ranks_proposals_in_rank_order(tmp_path):
    import os

    import torch.multiprocessing as mp

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    out = str(tmp_path / "out.pt")
    mp.start_processes(_two_rank_worker, args=(2, f"file://{tmp_path / 'rendezvous'}", out), nprocs=2, join=True,
                       start_method="fork")  # no re-import of the test module in the children
    (state0, metrics0, next0), (state1, metrics1, next1) = torch.load(out, weights_only=False)
    assert state0 == state1 and metrics0 == metrics1
    # rank 0's proposal first (azr3), rank 1's copy of it is a duplicate, its new task is azr4
    assert [(e["id"], e["proposer"]) for e in state0["strategy"]["log"][3:]] == [
        ("azr3", "azr-propose/deduction/0/0"), ("azr4", "azr-propose/induction/0/2")]
    assert metrics0["azr/added"] == 2.0 and metrics0["azr/duplicate"] == 1.0 and metrics0["azr/banned_import"] == 1.0
    assert len(next0) == len(next1) == 2 and next0 != next1  # each rank its own half of the same selection
