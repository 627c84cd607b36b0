"""CPU demonstration: RL with MCTS rollouts (DeepSearch) vs plain GRPO sampling at a matched token budget.

Task (``--task``): ``countdown`` (default; :class:`rlobj.train.countdown_steps.CountdownSteps`: three
numbers 1..``--high``, a target two operations away, answered by a written two-equation
derivation, one equation per search step, ``delimiter: " "``) or ``addition`` (operands
0..``--high``, fixed 2-token steps). Per seed: one tiny policy is warmed up with a short
supervised phase (weak on purpose: pass@1 well below 1, so groups often hold no correct
answer), then copied into the arms, trained for the same number of RL steps on the same prompts:

* ``plain``: ``group_size`` plain samples per prompt, ``grpo``;
* ``mcts``: ``sampler: mcts`` (``--width`` children, a per-prompt ``token_budget``) with
  ``--mcts-group`` training paths per prompt, ``tree_value_advantage >> clip_ratio >> token_mean``;
* ``mcts+informative``: the same with the ``informative_groups`` transform (groups whose paths
  all have the same reward are dropped, as GRPO's zero advantage does for plain groups);
* ``mcts+grpo``: the search's paths trained with plain ``grpo`` (outcome rewards only).

The token budget is matched on what each arm *samples* per prompt (plain: every sampled
response token; mcts: every token the search sampled, kept or cut, plus fill tokens); both are
measured and printed. pass@1 is the unbiased estimate from ``--eval-samples`` samples on
held-out problems. Prints one row per seed and arm and the mean.

    python benchmarks/search_in_training.py --seeds 0 1 2
"""

import argparse
import copy
import functools
import time

import torch

from rlobj.train import AdditionTask, RLModule
from rlobj.train.countdown_steps import CountdownSteps, DerivationVerifier
from rlobj.train.evaluation import evaluate_records

ARMS = ("plain", "mcts", "mcts+informative", "mcts+grpo")


def build(arm: str, seed: int, args) -> RLModule:
    common = dict(policy={"tiny_model": {"hidden_size": args.hidden, "layers": args.layers, "heads": 2, "seed": seed}},
                  evaluation={"samples": args.eval_samples, "k": [1]}, update={"grad_clip": 1.0}, seed=seed,
                  warmup={"steps": args.sft_steps, "lr": 1e-3, "objective": ["sft"]},
                  optimizer=functools.partial(torch.optim.AdamW, lr=args.lr, weight_decay=0.0))
    countdown = args.task == "countdown"
    if countdown:
        common["verifier"] = DerivationVerifier()
    length = 16 if countdown else 5
    if arm == "plain":
        return RLModule(objective="grpo", rollout={"group_size": args.plain_group, "max_new_tokens": length}, **common)
    search = {"config": {"width": args.width, "max_depth": 3, "step_tokens": args.step_tokens or (8 if countdown else 2),
                         "token_budget": args.token_budget, "frontier_scope": args.frontier_scope},
              "delimiter": " " if countdown else None}
    objective = "grpo" if arm == "mcts+grpo" else [
        "tree_value_advantage", {"clip_ratio": {"eps_low": 0.2, "eps_high": 0.28}}, "token_mean"]
    return RLModule(objective=objective, sampler={"mcts": search},
                    rollout={"group_size": args.mcts_group, "max_new_tokens": length},
                    transforms=["informative_groups"] if arm == "mcts+informative" else None, **common)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("countdown", "addition"), default="countdown")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--high", type=int, default=None, help="numbers up to high (default 9; addition 20)")
    parser.add_argument("--sft-steps", type=int, default=200)
    parser.add_argument("--rl-steps", type=int, default=40)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--plain-group", type=int, default=6)
    parser.add_argument("--mcts-group", type=int, default=4, help="training paths per prompt")
    parser.add_argument("--token-budget", type=int, default=None, help="per prompt (default: countdown 80, addition 26)")
    parser.add_argument("--step-tokens", type=int, default=None, help="most tokens per step (countdown 8, addition 2)")
    parser.add_argument("--frontier-scope", choices=("tree", "global"), default="tree")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--width", type=int, default=2, help="children per expansion")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--eval-prompts", type=int, default=64)
    parser.add_argument("--eval-samples", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    countdown = args.task == "countdown"
    if args.token_budget is None:
        args.token_budget = 80 if countdown else 26
    if countdown:
        high = args.high or 9
        train, held_out = CountdownSteps(seed=1, high=high), CountdownSteps(seed=1000, high=high)
    else:
        high = args.high or 20
        train, held_out = AdditionTask(seed=1, high=high), AdditionTask(seed=1000, high=high)
    evaluation = held_out.records(0, args.eval_prompts)
    rows = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        base = build("plain", seed, args)
        base.build()
        for step in range(args.sft_steps):
            base.sft_update(train.records(step * args.prompts, args.prompts))
        warm = copy.deepcopy(base.policy.state_dict())
        before = evaluate_records(base, evaluation)["pass@1"]
        for arm in args.arms:
            module = build(arm, seed, args)
            module.build()
            module.policy.load_state_dict(warm)
            tokens, search, fill, kept, start = 0.0, 0.0, 0.0, 0.0, time.perf_counter()
            for step in range(args.rl_steps):
                records = train.records((args.sft_steps + step) * args.prompts, args.prompts)
                metrics = module.rl_update(records, args.sft_steps + step)
                if arm == "plain":
                    tokens += metrics["response/length_mean"] * args.plain_group
                elif "search/tokens_per_prompt" not in metrics:
                    raise SystemExit(f"{arm}: no search metrics in step {step}")
                else:
                    tokens += metrics["search/tokens_per_prompt"]
                    search += metrics["search/search_tokens_per_prompt"]
                    fill += metrics["search/fill_tokens_per_prompt"]
                    kept += metrics["search/kept_tokens_per_prompt"]
            after = evaluate_records(module, evaluation)["pass@1"]
            row = {"seed": seed, "arm": arm, "pass@1 before": before, "pass@1 after": after,
                   "sampled tokens / prompt": tokens / args.rl_steps, "seconds": time.perf_counter() - start}
            if arm != "plain":
                row.update({"budget": float(args.token_budget), "search": search / args.rl_steps,
                            "fill": fill / args.rl_steps, "kept": kept / args.rl_steps})
            rows.append(row)
            print(" | ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    for arm in args.arms:
        mine = [r for r in rows if r["arm"] == arm]
        print(f"mean {arm}: pass@1 {sum(r['pass@1 after'] for r in mine) / len(mine):.3f} "
              f"(before {sum(r['pass@1 before'] for r in mine) / len(mine):.3f}), sampled tokens/prompt/step "
              f"{sum(r['sampled tokens / prompt'] for r in mine) / len(mine):.1f}", flush=True)
    return rows


if __name__ == "__main__":
    main()
