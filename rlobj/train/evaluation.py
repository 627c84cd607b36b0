"""Evaluation of a module's policy: ``n`` samples per record, unbiased pass@k and maj@k."""

import torch

from rlobj.rollout import SamplingConfig
from rlobj.train.stages import Batch

__all__ = ["evaluate_records"]


def evaluate_records(module, records: list[dict], samples_out: list | None = None) -> dict[str, float]:
    """Sample ``evaluation.samples`` answers per record with ``module``; pass@k / maj@k for ``evaluation.k``.

    Counts are summed over data-parallel ranks (each rank evaluates its own records). With
    ``samples_out`` a list, one dict per record is appended: ``prompt``, ``responses``,
    ``correct`` (reward >= ``pass_threshold``), ``n`` and ``c``.
    """
    from rlobj.eval.passk import maj_at_k, pass_at_k

    hp = module.cfg.evaluation
    engine = module._ensure_engine()
    n = hp.samples
    sampling = module._sampling(0, salt=1_000_000_007, temperature=hp.temperature,
                                max_new_tokens=hp.max_new_tokens or module.cfg.rollout.max_new_tokens)
    sampling = SamplingConfig(**{**sampling.__dict__, "seed": module.hparams.seed * 17 + 5 + module.rank})
    sums = torch.zeros(2 * len(hp.k) + 2, dtype=torch.float64)
    if records:
        if getattr(module.sampler, "samples_evaluation", False):  # multi-turn: episodes, not completions
            ctx = module.context(0)
            ctx.sampling = sampling
            batch = module.sampler.sample(ctx, list(records), n)
            rollout = batch.rollout
        else:
            from rlobj.train.samplers import generate_records

            rollout = generate_records(engine, module.encode, records, n, sampling)
            batch = Batch(rollout=rollout, records=[records[g] for g in rollout.group_ids.tolist()])
        completions = module.decode_responses(rollout)
        # the run's scorer stage (any Scorer, not only a verifier's)
        rewards = [s.reward for s in module.scorer(module.context(0), batch)]
        for index in range(len(records)):
            rows = range(index * n, (index + 1) * n)
            correct = [rewards[r] >= hp.pass_threshold for r in rows]
            answers = [completions[r].strip() or None for r in rows]
            for j, k in enumerate(hp.k):
                sums[j] += pass_at_k(n, sum(correct), int(k))
                sums[len(hp.k) + j] += maj_at_k(answers[:k], correct[:k])
            sums[-2] += sum(correct) / n
            if samples_out is not None:
                samples_out.append({"prompt": records[index].get("prompt"),
                                    "responses": [completions[r] for r in rows],
                                    "correct": correct, "n": n, "c": int(sum(correct))})
        sums[-1] = len(records)
    if module.world_size > 1:
        torch.distributed.all_reduce(sums)
    total = max(float(sums[-1]), 1.0)
    result = {f"pass@{k}": float(sums[j]) / total for j, k in enumerate(hp.k)}
    result.update({f"maj@{k}": float(sums[len(hp.k) + j]) / total for j, k in enumerate(hp.k) if k > 1})
    result["mean_reward_rate"] = float(sums[-2]) / total
    return result
