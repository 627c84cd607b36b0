r"""The seven claims: which runs each needs (method x seed) and how its table and plots are made.

A *run* is one method trained from one seed's warm start through the Lightning trainer
(:func:`_testbed.fit`) and evaluated at the end; runs are cached as JSON under
``runs/reproductions/trace_runs/`` so a run shared by several claims (plain GRPO serves claims
1, 2 and 5) trains once. ``run_all.py`` schedules the runs and calls each claim's ``report``
when its runs are done. The predictions and the analysis applied here are written down, before
any full run, in ``docs/reproductions.md``.
"""

import json
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import _testbed as T
import lightning as L

from rlobj import (
    State,
    Term,
    backward_correction,
    forward_correction,
    gspo,
    k3_kl,
    nsr,
    psr,
    top_entropy_mask,
)
from rlobj.algebra.aggregation import token_mean
from rlobj.algebra.state import LossPart
from rlobj.algebra.term import as_terms, chain
from rlobj.ops.reductions import masked_mean
from rlobj.presets import (
    dapo_recipe,
    forking_tokens_recipe,
    grpo,
    lp_reg_recipe,
    siren_recipe,
    w_reinforce_recipe,
)
from rlobj.presets.seed_recipes import noisy_rlvr_recipe
from rlobj.terms.masks import top_fraction_mask
from rlobj.terms.surrogates import clip_ratio
from rlobj.train.trace_tasks import TraceVerifier

RUNS = T.CACHE / "trace_runs"
RHO0, RHO1 = 0.1, 0.2
#: Evaluation sizes: samples per problem at the end of a run (pass@1 needs few, pass@k curves many).
SMALL_N, CURVE_N, LARGE_N = 16, 64, 128
MULTI_UPDATE = {"mini_batch_size": T.PROMPTS * T.GROUP // 4}  # 4 optimizer steps per rollout batch


def _without(objective, kind):
    return chain(*[t for t in as_terms(objective) if not isinstance(t, kind)], name=None)


class NoisyVerifier:
    r"""A verifier (default the trace verifier) with flips: $P(\tilde r=0\mid r=1)=\rho_1$, $P(\tilde r=1\mid r=0)=\rho_0$ (seeded)."""

    def __init__(self, rho0: float, rho1: float, seed: int, clean=None):
        self.rho0, self.rho1, self.rng = rho0, rho1, random.Random(seed)
        self.clean = clean if clean is not None else TraceVerifier()

    def __call__(self, completion: str, sample) -> float:
        reward = self.clean(completion, sample)
        flip = self.rng.random() < (self.rho1 if reward == 1.0 else self.rho0)
        return 1.0 - reward if flip else reward


@dataclass(frozen=True)
class bottom_entropy_mask(Term):
    r"""The complement of ``top_entropy_mask(rho, scope="micro_batch")``: train only on the other
    $1-\rho$ of the tokens (the 80/20 paper's "bottom 80%" ablation).

    $m^\text{pg}_{i,t} = m_{i,t}\,\mathbb 1[H_{i,t} \text{ not among the top } \lceil\rho N\rceil]$
    over the tokens of each micro-batch (no gradient through the selection); the policy loss is
    averaged over the selected tokens by the chain's aggregation, as for the top-20% mask.
    """

    reads: ClassVar[tuple[str, ...]] = ("part:policy", "entropy", "mask")
    writes: ClassVar[tuple[str, ...]] = ("part:policy",)
    rho: float = 0.2

    def __call__(self, state: State) -> State:
        policy = state.require_part("policy", "bottom_entropy_mask")
        entropy = state.token_entropy().detach()
        keep = state.mask & ~top_fraction_mask(entropy, state.mask, self.rho, "micro_batch")
        return state.add_part("policy", LossPart(policy.values, policy.mask & keep, "own")).add_metrics(
            **{"mask/bottom_entropy_frac": masked_mean(keep.float(), state.mask)})


@dataclass(frozen=True)
class Method:
    """One training configuration: the objective and the RLModule groups it changes."""

    objective: Any
    groups: dict = field(default_factory=dict)
    noisy: bool = False
    eval_n: int = SMALL_N
    curve_every: int = 0  # clean pass@1 every this many steps (0: only at the end)


#: Every method of every claim, by a stable key (the cache file name).
METHODS: dict[str, Method] = {
    "grpo": Method(grpo, eval_n=LARGE_N),
    "lp_reg_recipe": Method(lp_reg_recipe),
    "siren_recipe": Method(siren_recipe),
    "psr": Method(w_reinforce_recipe.replace(as_terms(w_reinforce_recipe)[0], psr()), eval_n=CURVE_N),
    "nsr": Method(w_reinforce_recipe.replace(as_terms(w_reinforce_recipe)[0], nsr()), eval_n=CURVE_N),
    "w_reinforce_recipe": Method(w_reinforce_recipe, eval_n=CURVE_N),
    "forking_top20": Method(forking_tokens_recipe),
    "forking_all": Method(_without(forking_tokens_recipe, top_entropy_mask)),
    "forking_bottom80": Method(forking_tokens_recipe.replace(top_entropy_mask(rho=0.2, scope="micro_batch"),
                                                             bottom_entropy_mask(rho=0.2))),
    "noisy_clean": Method(_without(noisy_rlvr_recipe, backward_correction), curve_every=10),
    "noisy_uncorrected": Method(_without(noisy_rlvr_recipe, backward_correction), noisy=True, curve_every=10),
    "noisy_backward": Method(noisy_rlvr_recipe, noisy=True, curve_every=10),
    "noisy_forward": Method(chain(forward_correction(rho1=RHO1), clip_ratio(eps_low=0.2, eps_high=0.2),
                                  k3_kl(beta=0.001), token_mean()), noisy=True, curve_every=10),
    "dapo_clip_higher": Method(dapo_recipe, groups={"update": MULTI_UPDATE}),
    "dapo_symmetric": Method(dapo_recipe.replace(clip_ratio(eps_low=0.2, eps_high=0.28),
                                                 clip_ratio(eps_low=0.2, eps_high=0.2)),
                             groups={"update": MULTI_UPDATE}),
    "gspo_epochs2": Method(gspo, groups={"update": {**MULTI_UPDATE, "ppo_epochs": 2}}),
    "grpo_epochs2": Method(grpo, groups={"update": {**MULTI_UPDATE, "ppo_epochs": 2}}),
}

#: Claim -> (folder name, the methods it compares with their labels).
CLAIMS: dict[str, dict[str, str]] = {
    "entropy_collapse": {"grpo": "GRPO", "lp_reg_recipe": "Lp-Reg (recipe)", "siren_recipe": "SIREN (recipe)"},
    "psr_nsr": {"grpo": "GRPO", "psr": "PSR", "nsr": "NSR", "w_reinforce_recipe": "W-REINFORCE (λ=0.1)"},
    "forking_tokens": {"forking_all": "all tokens", "forking_top20": "top-20% entropy",
                       "forking_bottom80": "bottom-80% entropy"},
    "noisy_verifier": {"noisy_clean": "clean reward", "noisy_uncorrected": "noisy, uncorrected",
                       "noisy_backward": "noisy + backward (recipe)", "noisy_forward": "noisy + forward"},
    "support_shrinkage": {"grpo": "GRPO"},
    "clip_higher": {"dapo_clip_higher": "DAPO clip 0.2/0.28", "dapo_symmetric": "symmetric clip 0.2/0.2"},
    "gspo_stability": {"grpo_epochs2": "GRPO (token ratio)", "gspo_epochs2": "GSPO (sequence ratio)"},
}


_VARIANT = "" if T.VARIANT == "uniform" else f"-{T.VARIANT}"  # the second run's cache paths unchanged


def _mode(smoke: bool) -> str:
    return "smoke" if smoke else "full"


def run_path(key: str, seed: int, steps: int, smoke: bool) -> Path:
    return RUNS / (_mode(smoke) + _VARIANT) / f"{key}_seed{seed}_steps{steps}.json"


def base_path(seed: int, smoke: bool) -> Path:
    return RUNS / (_mode(smoke) + _VARIANT) / f"base_seed{seed}.json"


class _CleanCurve(L.Callback):
    """Clean pass@1 on 32 held-out problems x 8 samples every ``every`` steps (noisy-verifier claim)."""

    def __init__(self, every: int, seed: int, size: int):
        self.every, self.seed, self.records, self.rows = every, seed, T.eval_records(seed, size), []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (batch_idx + 1) % self.every == 0:
            result, _ = T.evaluate(pl_module, self.records, 8, [1], seed=self.seed * 31 + batch_idx,
                                   verifier=TraceVerifier())
            self.rows.append((batch_idx + 1, result["pass@1"]))


def train_one(key: str, seed: int, steps: int, smoke: bool, threads: int = 1) -> dict:
    """Train method ``key`` from seed ``seed``'s warm start; history + final counts, cached as JSON."""
    import torch

    torch.set_num_threads(threads)
    T.quiet()
    path = run_path(key, seed, steps, smoke)
    if path.exists():
        return json.loads(path.read_text())
    method = METHODS[key]
    started = time.perf_counter()
    warm = T.warm_start(seed, steps=10 if smoke else T.WARMUP_STEPS, use_cache=True, smoke=smoke)
    groups = dict(method.groups)
    if method.noisy:
        groups["verifier"] = NoisyVerifier(RHO0, RHO1, seed=seed)
    module = T.rl_module(method.objective, seed, warm, **groups)
    size = 8 if smoke else T.EVAL_SIZE
    curve = _CleanCurve(max(1, method.curve_every if not smoke else 1), seed, 8 if smoke else 32) \
        if method.curve_every else None
    if curve is not None:
        module.build()
        curve.on_train_batch_end(None, module, None, None, -1)  # step 0
    rows = T.fit(module, T.rl_data(seed), steps, callbacks=[curve] if curve else [])
    n = 4 if smoke else method.eval_n
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= n]
    result, counts = T.evaluate(module, T.eval_records(seed, size), n, ks, seed=seed * 7 + 1,
                                verifier=TraceVerifier())
    keep = ("reward/mean", "entropy", "clip_frac", "kl/old_k3", "grad_norm", "response/length_mean", "pass_rate",
            "response/truncated_fraction", "kl/ref_k3")
    out = {"key": key, "seed": seed, "steps": steps, "n": n, "eval": result, "counts": counts,
           "history": [{k: r[k] for k in keep if k in r} for r in rows],
           "curve": curve.rows if curve is not None else [], "seconds": time.perf_counter() - started}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def base_one(seed: int, smoke: bool, threads: int = 1) -> dict:
    """The warm-started policy's pass@k (``LARGE_N`` samples per problem), cached."""
    import torch

    torch.set_num_threads(threads)
    T.quiet()
    path = base_path(seed, smoke)
    if path.exists():
        return json.loads(path.read_text())
    started = time.perf_counter()
    warm = T.warm_start(seed, steps=10 if smoke else T.WARMUP_STEPS, use_cache=True, smoke=smoke)
    module = T.rl_module(grpo, seed, warm)
    module.build()
    n = 4 if smoke else LARGE_N
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= n]
    result, counts = T.evaluate(module, T.eval_records(seed, 8 if smoke else T.EVAL_SIZE), n, ks,
                                seed=seed * 7 + 1, verifier=TraceVerifier())
    out = {"seed": seed, "n": n, "eval": result, "counts": counts, "seconds": time.perf_counter() - started}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


# ------------------------------------------------------------------ analysis helpers
def entropy_series(run: dict) -> list[float]:
    return [h["entropy"] for h in run["history"] if "entropy" in h]


def head_tail(values: list[float], head: int = 5, tail: int = 10) -> tuple[float, float]:
    return statistics.mean(values[:head]), statistics.mean(values[-tail:])


def moving_average(values: list[float], width: int = 10) -> list[float]:
    return [statistics.mean(values[max(0, i - width + 1):i + 1]) for i in range(len(values))]


def max_drawdown(values: list[float]) -> float:
    """Largest fall of ``values`` below its running maximum."""
    peak, worst = -math.inf, 0.0
    for value in values:
        peak = max(peak, value)
        worst = max(worst, peak - value)
    return worst


def passk(counts: list[int], n: int, k: int) -> float:
    from rlobj.eval.passk import pass_at_k

    return sum(pass_at_k(n, c, k) for c in counts) / len(counts)


def direction(values: list[float], margin: float) -> tuple[int, int]:
    """(seeds with value > margin, seeds with value < -margin)."""
    return sum(v > margin for v in values), sum(v < -margin for v in values)


def verdict(ups: int, seeds: int) -> str:
    """Pre-registered rule: predicted direction in every seed -> held; in at most one -> not held; else inconclusive."""
    if ups == seeds:
        return "held"
    if ups <= 1:
        return "not held"
    return "inconclusive"
