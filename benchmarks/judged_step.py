"""A judged RL step against a verifier-scored one, on the tiny model, side by side in one run.

Builds tiny judges locally (:func:`rlobj.train.tiny_judges.save_tiny_judge`: a sequence
classifier and a causal LM fitted to answer "7"), then times ``RLModule.rl_update`` on the same
addition prompts with four scorers, interleaved round by round so machine load hits all alike:
the exact-answer verifier, the sequence-classification reward model, the pointwise judge
(generated verdict) and the principle judge (Yes/No probability, 2 principles). Prints the median
step time of each and its ratio to the verifier-scored step, and the scorer's share.

Overlap rows: a code-execution verifier (one sandboxed subprocess per response,
:class:`rlobj.verifiers.CodeExecution`) composed with a pointwise judge in
:class:`~rlobj.train.RewardFunctions`, once with the judge run before the verifier
(``overlap: false``) and once with the judge on its worker thread while the verifier runs
(``overlap: true``); the judge either batched (one call) or one row per call (a slower judge).

    python benchmarks/judged_step.py --rounds 3
"""

import argparse
import statistics
import tempfile
import time

from rlobj.train import AdditionTask, RewardFunctions, RLModule, VerifierScorer
from rlobj.train.judges import PointwiseJudge, PrincipleJudge
from rlobj.train.model_scorers import SequenceClassifierRM
from rlobj.train.tiny_judges import save_tiny_judge


def code_check(completions, answer, **kwargs):
    """Code-execution reward: the response run as a Python program must print the answer."""
    from rlobj.verifiers import CodeExecution, sandbox_capabilities
    from rlobj.verifiers.sandbox import SandboxLimits

    verifier = CodeExecution(limits=SandboxLimits(allow_missing=sandbox_capabilities().missing))
    return [verifier(c, {"tests": [{"input": "", "output": a}]}) for c, a in zip(completions, answer)]


class Timed:
    """A scorer that times the scorer it wraps."""

    def __init__(self, scorer, seconds: list[float]):
        self.scorer, self.seconds, self.record = scorer, seconds, False

    def __call__(self, ctx, batch):
        began = time.perf_counter()
        out = self.scorer(ctx, batch)
        if self.record:
            self.seconds.append(time.perf_counter() - began)
        return out

    def close(self):
        self.scorer.close()


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    args = parser.parse_args(argv)
    root = tempfile.mkdtemp(prefix="judged_step_")
    rm_path = str(save_tiny_judge(f"{root}/rm", kind="classifier"))
    judge_path = str(save_tiny_judge(f"{root}/judge", reply="7"))
    scorers = {
        "verifier (ExactAnswer)": VerifierScorer(),
        "reward model (seq. classifier)": SequenceClassifierRM(rm_path, dtype="float32"),
        "pointwise judge (generated)": PointwiseJudge(judge_path, max_new_tokens=4),
        "principle judge (Yes/No, 2)": PrincipleJudge(judge_path, principles=["is correct", "is short"]),
        "code verifier (sandbox)": RewardFunctions([code_check]),
    }
    for label, batch in (("batched judge", 64), ("judge 1 row/call", 1)):
        for overlap in (False, True):
            judge = PointwiseJudge(judge_path, max_new_tokens=4, batch_size=batch, name="judge")
            scorers[f"code + {label}, {'overlap' if overlap else 'serial'}"] = RewardFunctions(
                [code_check, judge], overlap=overlap)
    modules = {}
    for name, scorer in scorers.items():
        module = RLModule(objective="grpo", scorer=scorer, seed=0,
                          policy={"tiny_model": {"hidden_size": 128, "layers": 2, "heads": 2, "seed": 0}},
                          rollout={"group_size": args.group, "max_new_tokens": args.max_new_tokens})
        module.build()
        modules[name] = module
    task = AdditionTask(seed=1)
    times: dict[str, list[float]] = {name: [] for name in scorers}
    score_times: dict[str, list[float]] = {name: [] for name in scorers}
    for name, module in modules.items():
        module.scorer = Timed(module.scorer, score_times[name])
    for step in range(args.rounds + 1):  # round 0 warms up (loads the judges)
        records = task.records(step * args.prompts, args.prompts)
        for name, module in modules.items():
            module.scorer.record = step > 0
            began = time.perf_counter()
            module.rl_update(records, step=step)
            if step:
                times[name].append(time.perf_counter() - began)
    base = statistics.median(times["verifier (ExactAnswer)"])
    print(f"tiny policy (hidden 128, 2 layers), {args.prompts} prompts x {args.group} responses, "
          f"{args.max_new_tokens} new tokens, median of {args.rounds} steps")
    print(f"{'scorer':40s} {'step s':>8s} {'vs verifier':>12s} {'scorer s':>9s}")
    out = {}
    for name in scorers:
        median = statistics.median(times[name])
        out[name] = median
        print(f"{name:40s} {median:8.3f} {median / base:11.2f}x {statistics.median(score_times[name]):9.3f}")
    for label in ("batched judge", "judge 1 row/call"):
        serial, overlapped = out[f"code + {label}, serial"], out[f"code + {label}, overlap"]
        print(f"code + {label}: overlapped / serial step = {overlapped / serial:.3f}")
    return out


if __name__ == "__main__":
    main()
