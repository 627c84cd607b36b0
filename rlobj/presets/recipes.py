r"""Faithful recipes: one per paper, the whole objective plus the training settings the paper's
reference code fixes, each setting beside the reference's value and where it is set.

A recipe's ``objective`` is an ordinary chain (``rlobj fit`` takes it by name:
``objective: lp_reg_recipe``); its ``trainer`` settings are the :class:`~rlobj.train.RLModule`
settings to put beside it in YAML (``rollout.group_size``, ``rollout.temperature``,
``optimizer.init_args.lr``, ...). Each
:class:`Setting` names the reference's value and the file and keys that set it; an objective
setting's rlobj value is read from the chain itself (:class:`FromChain`), so the generated page
(``docs/recipes.md``, ``docs/_tools/recipe_table.py``) always shows what the code does.

Where the law of the micro-batch (DESIGN §3.7) and a reference disagree, the term's default is
the law-abiding one and the reference's behaviour an option named for it; a recipe uses that
option, and its docstring says the gradient then depends on the micro-batch size.
"""

from dataclasses import dataclass
from typing import Any

from rlobj.algebra.aggregation import constant_normalizer, seq_mean_token_mean, token_mean
from rlobj.algebra.term import Term, as_terms, chain
from rlobj.presets.papers import one_shot_rlvr
from rlobj.terms.advantages import (
    dependency_advantage_shaping,
    group_mean_baseline,
    group_zscore,
    mvar_advantage,
    w_reinforce,
)
from rlobj.terms.divergences import dph_divergence, k3_kl, kl_penalty, perception_kl
from rlobj.terms.masks import (
    drop_zero_variance_groups,
    mastered_positive_mask,
    pivotal_token_mask,
    top_entropy_mask,
)
from rlobj.terms.regularizers import (
    double_entropy,
    entropy_bonus,
    lp_reg,
    sampled_entropy_bonus,
    siren,
)
from rlobj.terms.rewards import overlong_penalty
from rlobj.terms.surrogates import clip_cov, clip_ratio, kl_cov, pacs_loss

__all__ = ["FromChain", "Recipe", "Setting", "RECIPES", "dapo_recipe", "lp_reg_recipe", "forking_tokens_recipe",
           "siren_recipe", "one_shot_rlvr_recipe", "dph_rl_recipe", "w_reinforce_recipe", "riskpo_recipe",
           "ulorl_recipe", "clip_cov_recipe", "kl_cov_recipe", "papo_recipe", "vppo_recipe", "pacs_recipe"]


@dataclass(frozen=True)
class FromChain:
    """An objective setting read from the recipe's chain: ``attribute`` of its ``term`` primitive
    (``FromChain(clip_ratio, "eps_high")``), or the aggregation's name (``attribute=None``)."""

    term: type
    attribute: str | None = None

    def read(self, objective: Term) -> Any:
        found = [t for t in as_terms(objective) if isinstance(t, self.term)]
        if not found:
            raise LookupError(f"{objective.name if hasattr(objective, 'name') else objective}: no "
                              f"{self.term.__name__} in the chain")
        return type(found[-1]).__name__ if self.attribute is None else getattr(found[-1], self.attribute)


@dataclass(frozen=True)
class Setting:
    """One setting of a recipe: rlobj's value (a literal, or :class:`FromChain`), the reference's
    value, where the reference sets it, and why rlobj differs when it does (empty: it agrees)."""

    name: str
    rlobj: Any
    reference: Any
    where: str
    differs: str = ""

    def value(self, objective: Term) -> Any:
        return self.rlobj.read(objective) if isinstance(self.rlobj, FromChain) else self.rlobj


@dataclass(frozen=True)
class Recipe:
    """A paper's objective and training settings. ``trainer`` holds the RLModule arguments the
    recipe prescribes (the literal ``Setting`` values whose name is an RLModule argument)."""

    name: str
    paper: str
    reference: str
    objective: Term
    settings: tuple[Setting, ...]

    @property
    def trainer(self) -> dict[str, Any]:
        """The prescribed training settings as the ``model:`` section of a YAML config (grouped:
        ``rollout``, ``update``, ``optimizer``), e.g. ``{"rollout": {"group_size": 16}, "optimizer":
        {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-6}}}``."""
        out: dict[str, Any] = {}
        for s in self.settings:
            if isinstance(s.rlobj, FromChain) or s.name not in TRAINER_KEYS:
                continue
            group, field = TRAINER_KEYS[s.name]
            if group == "optimizer":
                out.setdefault("optimizer", {"class_path": "torch.optim.AdamW", "init_args": {}})["init_args"][field] = s.rlobj
            else:
                out.setdefault(group, {})[field] = s.rlobj
        return out

    def rows(self) -> list[tuple[str, Any, Any, str, str]]:
        """``(setting, rlobj value, reference value, where, differs)`` for the generated table."""
        return [(s.name, s.value(self.objective), s.reference, s.where, s.differs) for s in self.settings]


#: Training settings a recipe may prescribe -> their place among RLModule's grouped settings
#: (checked against rlobj.train.config in the tests).
TRAINER_KEYS = {"group_size": ("rollout", "group_size"), "temperature": ("rollout", "temperature"),
                "max_new_tokens": ("rollout", "max_new_tokens"), "mini_batch_size": ("update", "mini_batch_size"),
                "ppo_epochs": ("update", "ppo_epochs"), "lr": ("optimizer", "lr")}

EPS_LOW, EPS_HIGH = FromChain(clip_ratio, "eps_low"), FromChain(clip_ratio, "eps_high")
DUAL = FromChain(clip_ratio, "dual_clip")

# ------------------------------------------------------------------------------------------------
#: DAPO (Yu et al., arXiv 2503.14476). Reference: volcengine/verl ``recipe/dapo/test_dapo_7b.sh``
#: and ``recipe/dapo/dapo_ray_trainer.py``. The objective is the ``dapo`` preset: overlong
#: shaping (its factor 0.5 on 0/1 rewards equals verl's 1.0 on +1/-1 rewards), dynamic sampling
#: on the accuracy (plus the ``dynamic_sampling`` transform in the trainer), clip 0.2 / 0.28,
#: token mean, no KL.
dapo_recipe = chain(overlong_penalty(max_length=20480, buffer=4096, factor=0.5),
                    drop_zero_variance_groups(on="accuracy"), group_zscore(),
                    clip_ratio(eps_low=0.2, eps_high=0.28), token_mean(), name="dapo_recipe")

#: Lp-Reg (Huang et al., arXiv 2510.03222). Reference: CarlanLark/Lp-Reg-dev @ 8858da2,
#: ``recipe/lp_reg/Qwen3_14b_lp_reg_onpolicy_64gpu.sh`` (``clip_ratio_low=1.0``,
#: ``clip_ratio_high=9.0``, ``loss_agg_mode=token-mean``, ``minp_p_threshold=0.02``,
#: ``logp_neg_k_percent=0.01``, ``ppo_kl_coef=1``, ``n_resp_per_prompt=8``, ``lr 1e-6``,
#: ``temperature=1.0``). GRPO advantages, the clip is effectively off (ratio in [0, 10]).
lp_reg_recipe = chain(group_zscore(), clip_ratio(eps_low=1.0, eps_high=9.0), lp_reg(tau=0.02, rho=0.01, beta=1.0),
                      token_mean(), name="lp_reg_recipe")

#: Beyond the 80/20 rule (Wang et al., arXiv 2506.01939). Reference: Shenzhi-Wang/Beyond-the-80-20-Rule-RLVR,
#: ``recipe/rlvr_with_high_entropy_tokens_only/run_only_top20_high_entropy_tokens_dapo_qwen3_14b.sh``
#: (DAPO base: clip 0.2 / 0.28, dual-clip c = 3, token-mean, overlong shaping, dynamic
#: sampling; ``entropy_top_ratio=0.2``; n = 16; lr 1e-6) and ``core_algos.get_global_entropy_top_mask``
#: (selection per micro-batch on each rank). The recipe uses ``top_entropy_mask(scope=
#: "micro_batch")``, the reference's selection: **the gradient then depends on the micro-batch
#: size** (and the number of ranks); ``scope="batch"`` is the law-abiding default of the term.
forking_tokens_recipe = chain(overlong_penalty(max_length=20480, buffer=4096, factor=0.5),
                              drop_zero_variance_groups(on="accuracy"), group_zscore(),
                              clip_ratio(eps_low=0.2, eps_high=0.28, dual_clip=3.0),
                              top_entropy_mask(rho=0.2, scope="micro_batch"), token_mean(),
                              name="forking_tokens_recipe")

#: SIREN (arXiv 2509.25133). Reference: Linn3a/siren, ``exp_scripts/siren.sh``
#: (``entropy_coeff=0.005``, ``mask_ratio=0.8``, ``entropy_topp=0.8``, ``entropy_topk=10000``,
#: ``loss_agg_mode=seq-mean-token-sum-norm``, ``norm_adv_by_std_in_grpo=False``,
#: ``max_response_length=3072``, n = 8, lr 1e-6, temperature 1.0) and ``verl/trainer/config``
#: (``clip_ratio_low = clip_ratio_high = 0.2`` override the script's ``clip_ratio=0.28``;
#: dual-clip 3). The recipe uses ``siren(scope="micro_batch")``, the reference's
#: per-micro-batch regulariser: **the gradient then depends on the micro-batch size**.
siren_recipe = chain(group_mean_baseline(), clip_ratio(eps_low=0.2, eps_high=0.2, dual_clip=3.0),
                     siren(p=0.8, quantile=0.8, coef=0.005, scope="micro_batch", top_k=10000),
                     constant_normalizer(max_tokens=3072), name="siren_recipe")

#: 1-shot RLVR (Wang et al., arXiv 2504.20571). Reference: ypwang61/One-Shot-RLVR,
#: ``verl/trainer/config/ppo_trainer.yaml`` (``entropy_coeff: 0.001``, ``kl_loss_type:
#: low_var_kl``, ``kl_loss_coef: 0.001``) and ``scripts/train/training_1.5b_pi1_r128.sh``
#: (temperature 0.6, n = 8, batch 128, lr 1e-6, max response 3072). Same chain as ``one_shot_rlvr``.
one_shot_rlvr_recipe = chain(*as_terms(one_shot_rlvr), name="one_shot_rlvr_recipe")

#: DPH-RL (Li et al., arXiv 2509.07430). Reference: seamoke/DPH-RL, ``scripts/llama/forward_kl.sh``
#: (``sft_loss_coeff=0.01``, clip high 0.28, token-mean, n = 16, lr 1e-6, no reference KL) and
#: ``dp_actor.py`` (the divergence only on stored initial-policy samples of perfectly solved
#: prompts, ``dph_divergence``; no online reference model).
dph_rl_recipe = chain(group_zscore(), clip_ratio(eps_low=0.2, eps_high=0.28), dph_divergence(form="forward", eta=0.01),
                      token_mean(), name="dph_rl_recipe")

#: W-REINFORCE (Zhu et al., arXiv 2506.01347). Reference: TianHongZXY/RLVR-Decomposed,
#: ``run_qwen2.5-math-7b_psr_nsr.sh`` and ``core_algos.compute_psr_nsr_outcome_advantage``
#: (``positive_advantage_weight=0.1``, clip 0.2, token-mean, entropy bonus 1e-4, no KL, n = 8,
#: lr 1e-6, 1024 prompts per step, mini-batch 256 prompts).
w_reinforce_recipe = chain(w_reinforce(lam=0.1), clip_ratio(eps_low=0.2, eps_high=0.2), entropy_bonus(coef=1e-4),
                           token_mean(), name="w_reinforce_recipe")

#: RiskPO (Ren et al., arXiv 2510.00911). Reference: RTkenny/RiskPO, the DAPO-math script
#: (``quantile_down=0.2``, ``quantile_up=0.8``, ``bundle_size=5``, ``w_mix=1.5``,
#: ``credit_assign_mode=sum-mean``, ``norm_adv_by_std_in_grpo=True``, n = 10, lr 1e-6, no KL)
#: with verl's token-mean aggregation and clip 0.2; quantiles per step (see ``mvar_advantage``).
riskpo_recipe = chain(mvar_advantage(alpha=0.2, beta=0.8, w_mix=1.5, bundle_size=5), clip_ratio(eps_low=0.2, eps_high=0.2),
                      token_mean(), name="riskpo_recipe")

#: UloRL DMMPT (Du et al., arXiv 2507.19766; paper only, no training code released: Eq. 9-10,
#: tau 0.99, sigma 0.2, normaliser over all tokens, temperature 0.85, 8 samples per prompt).
ulorl_recipe = chain(group_zscore(), clip_ratio(eps_low=0.2, eps_high=0.2), mastered_positive_mask(tau=0.99, sigma=0.2),
                     token_mean(), name="ulorl_recipe")

#: Clip-Cov (Cui et al., arXiv 2505.22617). Reference: verl ``recipe/entropy/7b_clip_cov.sh``
#: (from PRIME-RL/Entropy-Mechanism-of-Reasoning-RL: ``clip_ratio_low=1``, ``clip_ratio_high=1``,
#: ``clip_cov_ratio=0.0002``, ``clip_cov_lb=1.0``, ``clip_cov_ub=5.0``, token-mean, n = 8,
#: lr 1e-6). The recipe uses ``scope="micro_batch"`` (covariance, count and draw per micro-batch
#: on each rank, as verl): **the gradient then depends on the micro-batch size**.
clip_cov_recipe = chain(group_zscore(), clip_cov(ratio=2e-4, cov_low=1.0, cov_high=5.0, eps_low=1.0, eps_high=1.0,
                                                 scope="micro_batch"),
                        token_mean(), name="clip_cov_recipe")

#: KL-Cov (same paper). Reference: verl ``recipe/entropy/7b_kl_cov.sh`` (``kl_cov_ratio=0.002``,
#: ``ppo_kl_coef=1``, token-mean). ``scope="micro_batch"`` as verl: **the gradient then depends
#: on the micro-batch size**.
kl_cov_recipe = chain(group_zscore(), kl_cov(ratio=2e-3, beta=1.0, scope="micro_batch"), token_mean(),
                      name="kl_cov_recipe")

#: PAPO (Wang et al., arXiv 2507.06448). Reference: MikeWangWZHL/PAPO @ fb63bf4 (EasyR1-based),
#: ``examples/papo_grpo/qwen2_5_vl_7b_grpo_papo.sh`` (``kl_prcp_coef=0.02``,
#: ``aug_entropy_loss_coef = ori_entropy_loss_coef = 0.05``), ``examples/configs/config_grpo_papo.yaml``
#: (``kl_penalty: low_var_kl``, ``kl_coef: 0.01``, ``kl_prcp_penalty: low_var_kl``, rollout
#: n = 5, temperature 1.0, lr 1e-6) and the EasyR1 actor defaults (``clip_ratio_low 0.2``,
#: ``clip_ratio_high 0.3``, ``clip_ratio_dual 3.0``, ``loss_avg_mode: token``). The masked-image
#: log-probs come from the old policy without gradient (``extras["logp_perturbed"]``).
papo_recipe = chain(group_zscore(), clip_ratio(eps_low=0.2, eps_high=0.3, dual_clip=3.0), perception_kl(gamma=0.02),
                    double_entropy(eta_orig=0.05, eta_perturbed=0.05), k3_kl(beta=0.01), token_mean(),
                    name="papo_recipe")

#: VPPO (Huang et al., arXiv 2510.09285). Reference: huaixuheqing/VPPO-RL (EasyR1-based),
#: ``examples/configs/train_vppo_7b.sh`` (``top_p_perception_tokens=0.4``,
#: ``advantage_scaling_min=0.9``, ``entropy_penalty_coef=0.06``, rollout n = 8),
#: ``examples/configs/config.yaml`` (``clip_ratio_low 0.2``, ``clip_ratio_high 0.28``,
#: ``disable_kl: true``, lr 1e-6, temperature 1.0) and the actor defaults (``clip_ratio_dual 3.0``,
#: ``loss_avg_mode: token``). The entropy *penalty* ``0.06 * token-mean(-logp)`` is
#: ``sampled_entropy_bonus(coef=-0.06)``. The dependency scores come in
#: ``extras["visual_dependency"]``.
vppo_recipe = chain(group_zscore(), dependency_advantage_shaping(beta_min=0.9),
                    clip_ratio(eps_low=0.2, eps_high=0.28, dual_clip=3.0), pivotal_token_mask(k=0.4),
                    sampled_entropy_bonus(coef=-0.06), token_mean(), name="vppo_recipe")

#: PACS (Li et al., arXiv 2509.02522). Reference: ritzz-ai/PACS, ``src/pacs/pacs_core_algos.py``
#: and ``scripts/pacs/pacs_beta_1.0.sh`` (``beta 1.0``, RLOO scores, ``use_weight=True``,
#: ``weight_mode=question``, n = 8, lr 1e-6, no KL, no entropy): the class-balanced
#: cross-entropy replaces the PPO surrogate; the row mean is the same under every aggregation.
pacs_recipe = chain(pacs_loss(beta=1.0, baseline="rloo", balanced=True), seq_mean_token_mean(), name="pacs_recipe")


def _s(name, rlobj, reference, where, differs=""):
    return Setting(name, rlobj, reference, where, differs)


def _agg(kind):
    return FromChain(kind)


#: The keys of verl's launch scripts for the settings :func:`_run` writes (``keys=VERL_KEYS``),
#: and those of its recipe scripts (DAPO's and its descendants': ``keys=RECIPE_SCRIPT_KEYS``).
VERL_KEYS = {"group_size": "rollout.n", "temperature": "rollout.temperature", "lr": "actor.optim.lr",
             "max_new_tokens": "data.max_response_length",
             "prompts per step / mini-batch": "train_batch_size, ppo_mini_batch_size"}
RECIPE_SCRIPT_KEYS = {"group_size": "n_resp_per_prompt", "temperature": "temperature", "lr": "actor.optim.lr",
                      "max_new_tokens": "max_response_length",
                      "prompts per step / mini-batch": "train_prompt_bsz, train_prompt_mini_bsz"}


def _run(script, group_size=None, temperature=None, lr=None, max_new_tokens=None, prompts=None, *,
         keys=VERL_KEYS, files=None):
    """The rollout and optimiser settings rlobj and a reference agree on, in that order: each row
    ``(name, value, value, "<script>: <key>")``; ``files`` names another file for some settings
    (``{"temperature": "ppo_trainer.yaml"}``); a setting left ``None`` has no row."""
    values = {"group_size": group_size, "temperature": temperature, "lr": lr,
              "max_new_tokens": max_new_tokens, "prompts per step / mini-batch": prompts}
    files = files or {}
    return tuple(_s(name, value, value, f"{files.get(name, script)}: {keys[name]}")
                 for name, value in values.items() if value is not None)


def _clip(config, low, high, dual=None, aggregation=None, *, high_at=None):
    """PPO clip rows as verl's actor config sets them: ``clip_ratio_low`` in ``config`` (a path),
    the others in its file name (``high_at`` replaces the whole ``where`` of ``clip_ratio_high``);
    the dual clip and the aggregation (``loss_agg_mode``) get a row when given."""
    short = config.rsplit("/", 1)[-1]
    rows = [_s("clip eps_low", EPS_LOW, low, f"{config}: clip_ratio_low"),
            _s("clip eps_high", EPS_HIGH, high, high_at or f"{short}: clip_ratio_high")]
    if dual is not None:
        rows.append(_s("dual clip c", DUAL, dual, f"{short}: clip_ratio_c"))
    if aggregation is not None:
        rows.append(_s("aggregation", _agg(aggregation), aggregation.__name__, f"{short}: loss_agg_mode"))
    return tuple(rows)


#: EasyR1's actor defaults (PAPO, VPPO): dual clip 3 and the token mean.
EASYR1_ACTOR = (_s("dual clip c", DUAL, 3.0, "verl/workers/actor/config.py: clip_ratio_dual"),
                _s("aggregation", _agg(token_mean), "token_mean", "verl/workers/actor/config.py: loss_avg_mode=token"))


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("dapo_recipe", "DAPO, arXiv 2503.14476", "volcengine/verl recipe/dapo", dapo_recipe, (
        _s("clip eps_low", EPS_LOW, 0.2, "test_dapo_7b.sh: clip_ratio_low"),
        _s("clip eps_high", EPS_HIGH, 0.28, "test_dapo_7b.sh: clip_ratio_high"),
        _s("aggregation", _agg(token_mean), "token_mean", "test_dapo_7b.sh: loss_agg_mode=token-mean"),
        _s("overlong buffer", FromChain(overlong_penalty, "buffer"), 4096, "test_dapo_7b.sh: overlong_buffer_len"),
        _s("overlong factor (0/1 rewards)", FromChain(overlong_penalty, "factor"), 0.5,
           "test_dapo_7b.sh: overlong_penalty_factor=1.0 on +1/-1 rewards (reward_manager/dapo.py)"),
        _s("group filter metric", FromChain(drop_zero_variance_groups, "on"), "accuracy",
           "test_dapo_7b.sh: algorithm.filter_groups.metric=acc"),
        _s("KL", "none", "none", "test_dapo_7b.sh: use_kl_loss=False, use_kl_in_reward=False"),
        *_run("test_dapo_7b.sh", 16, 1.0, 1e-6, keys=RECIPE_SCRIPT_KEYS),
    )),
    Recipe("lp_reg_recipe", "Lp-Reg, arXiv 2510.03222", "CarlanLark/Lp-Reg-dev @ 8858da2", lp_reg_recipe, (
        _s("clip eps_low", EPS_LOW, 1.0, "recipe/lp_reg/Qwen3_14b_lp_reg_onpolicy_64gpu.sh: clip_ratio_low"),
        _s("clip eps_high", EPS_HIGH, 9.0, "same script: clip_ratio_high"),
        _s("aggregation", _agg(token_mean), "token_mean", "same script: loss_agg_mode=token-mean"),
        _s("proxy threshold tau", FromChain(lp_reg, "tau"), 0.02, "same script: minp_p_threshold"),
        _s("proxy mode", FromChain(lp_reg, "mode"), "minp", "ppo_trainer.yaml: regular_type"),
        _s("negative fraction rho", FromChain(lp_reg, "rho"), 0.01, "same script: logp_neg_k_percent"),
        _s("penalty beta", FromChain(lp_reg, "beta"), 1.0, "same script: ppo_kl_coef"),
        _s("KL to reference", "none", "none", "same script: use_kl_loss=False"),
        *_run("same script", 8, 1.0, 1e-6, prompts="256 / 256", keys=RECIPE_SCRIPT_KEYS),
    )),
    Recipe("forking_tokens_recipe", "Beyond the 80/20 Rule, arXiv 2506.01939",
           "Shenzhi-Wang/Beyond-the-80-20-Rule-RLVR @ 6f5dda6", forking_tokens_recipe, (
        _s("clip eps_low", EPS_LOW, 0.2, "run_only_top20_high_entropy_tokens_dapo_qwen3_14b.sh: clip_ratio_low"),
        _s("clip eps_high", EPS_HIGH, 0.28, "same script: clip_ratio_high"),
        _s("dual clip c", DUAL, 3.0, "ppo_trainer.yaml: clip_ratio_c"),
        _s("aggregation", _agg(token_mean), "token_mean", "same script: loss_agg_mode=token-mean"),
        _s("top entropy fraction rho", FromChain(top_entropy_mask, "rho"), 0.2, "same script: entropy_top_ratio"),
        _s("selection scope", FromChain(top_entropy_mask, "scope"), "micro_batch",
           "core_algos.py: get_global_entropy_top_mask on each micro-batch"),
        *_run("same script", 16, lr=1e-6, keys=RECIPE_SCRIPT_KEYS),
    )),
    Recipe("siren_recipe", "SIREN, arXiv 2509.25133", "Linn3a/siren @ 5cb224d", siren_recipe, (
        _s("advantages", FromChain(group_mean_baseline, None), "group_mean_baseline",
           "exp_scripts/siren.sh: norm_adv_by_std_in_grpo=False"),
        _s("clip eps_low", EPS_LOW, 0.2, "ppo_trainer.yaml: clip_ratio_low (wins over the script's clip_ratio=0.28)"),
        _s("clip eps_high", EPS_HIGH, 0.2, "ppo_trainer.yaml: clip_ratio_high"),
        _s("dual clip c", DUAL, 3.0, "ppo_trainer.yaml: clip_ratio_c"),
        _s("aggregation", _agg(constant_normalizer), "constant_normalizer", "siren.sh: loss_agg_mode=seq-mean-token-sum-norm"),
        _s("normaliser constant", FromChain(constant_normalizer, "max_tokens"), 3072, "siren.sh: max_response_length"),
        _s("coefficient lambda", FromChain(siren, "coef"), 0.005, "siren.sh: entropy_coeff"),
        _s("top-p", FromChain(siren, "p"), 0.8, "siren.sh: entropy_topp"),
        _s("top-k pre-truncation", FromChain(siren, "top_k"), 10000, "siren.sh: entropy_topk"),
        _s("peak quantile", FromChain(siren, "quantile"), 0.8, "siren.sh: mask_ratio"),
        _s("regulariser scope", FromChain(siren, "scope"), "micro_batch", "dp_actor.py: one regulariser per micro-batch"),
        *_run("siren.sh", 8, 1.0, 1e-6, keys=RECIPE_SCRIPT_KEYS),
    )),
    Recipe("one_shot_rlvr_recipe", "1-shot RLVR, arXiv 2504.20571", "ypwang61/One-Shot-RLVR @ 21ed529",
           one_shot_rlvr_recipe, (
        _s("clip eps_low", EPS_LOW, 0.2, "ppo_trainer.yaml: clip_ratio"),
        _s("clip eps_high", EPS_HIGH, 0.2, "ppo_trainer.yaml: clip_ratio"),
        _s("aggregation", _agg(token_mean), "token_mean", "dp_actor.py: token mean over the response mask"),
        _s("entropy bonus", FromChain(entropy_bonus, "coef"), 0.001, "ppo_trainer.yaml: entropy_coeff"),
        _s("KL (k3, in the loss)", FromChain(kl_penalty, "beta"), 0.001,
           "ppo_trainer.yaml: kl_loss_type=low_var_kl, kl_loss_coef"),
        _s("group_size", 8, 8, "scripts/train/training_1.5b_pi1_r128.sh: rollout.n"),
        *_run("same script", temperature=0.6, lr=1e-6, max_new_tokens=3072),
    )),
    Recipe("dph_rl_recipe", "DPH-RL, arXiv 2509.07430", "seamoke/DPH-RL @ 139a9b2", dph_rl_recipe, (
        _s("clip eps_high", EPS_HIGH, 0.28, "scripts/llama/forward_kl.sh: clip_ratio_high"),
        _s("aggregation", _agg(token_mean), "token_mean", "forward_kl.sh: loss_agg_mode"),
        _s("divergence", FromChain(dph_divergence, "form"), "forward", "forward_kl.sh: kl type (forward)"),
        _s("divergence weight eta", FromChain(dph_divergence, "eta"), 0.01, "forward_kl.sh: sft_loss_coeff"),
        _s("online reference KL", "none", "none", "forward_kl.sh: use_kl_loss=False"),
        *_run("forward_kl.sh", 16, lr=1e-6),
    )),
    Recipe("w_reinforce_recipe", "The Surprising Effectiveness of Negative Reinforcement, arXiv 2506.01347",
           "TianHongZXY/RLVR-Decomposed", w_reinforce_recipe, (
        _s("positive weight lambda", FromChain(w_reinforce, "lam"), 0.1,
           "run_qwen2.5-math-7b_psr_nsr.sh: positive_advantage_weight (recommended value)"),
        _s("clip eps_low", EPS_LOW, 0.2, "ppo_trainer.yaml: clip_ratio"),
        _s("clip eps_high", EPS_HIGH, 0.2, "ppo_trainer.yaml: clip_ratio"),
        _s("aggregation", _agg(token_mean), "token_mean", "ppo_trainer.yaml: loss_agg_mode=token-mean"),
        _s("entropy bonus", FromChain(entropy_bonus, "coef"), 1e-4, "run_qwen2.5-math-7b_psr_nsr.sh: entropy_coeff"),
        _s("KL", "none", "none", "same script: kl_loss_coef=0"),
        *_run("same script", 8, lr=1e-6, prompts="1024 / 256"),
    )),
    Recipe("riskpo_recipe", "RiskPO, arXiv 2510.00911", "RTkenny/RiskPO", riskpo_recipe, (
        _s("alpha / beta", f"{FromChain(mvar_advantage, 'alpha').read(riskpo_recipe)} / "
           f"{FromChain(mvar_advantage, 'beta').read(riskpo_recipe)}", "0.2 / 0.8",
           "DAPO-math script: quantile_down, quantile_up"),
        _s("bundle size", FromChain(mvar_advantage, "bundle_size"), 5, "DAPO-math script: bundle_size"),
        _s("w_mix", FromChain(mvar_advantage, "w_mix"), 1.5, "core_algos.py: w_mix"),
        _s("quantiles", FromChain(mvar_advantage, "quantiles"), "batch",
           "ray_trainer.py: per-bundle quantiles each step in effect (the script asks for track)"),
        _s("credit", FromChain(mvar_advantage, "credit"), "sum-mean", "DAPO-math script: credit_assign_mode"),
        _s("clip eps_low / eps_high", f"{EPS_LOW.read(riskpo_recipe)} / {EPS_HIGH.read(riskpo_recipe)}", "0.2 / 0.2",
           "verl default clip_ratio (not overridden; unverified)"),
        _s("aggregation", _agg(token_mean), "token_mean", "verl default loss_agg_mode=token-mean"),
        *_run("DAPO-math script", 10, lr=1e-6),
    )),
    Recipe("ulorl_recipe", "UloRL, arXiv 2507.19766", "liushulinle/ULORL (paper PDF only, no training code)", ulorl_recipe, (
        _s("mask tau", FromChain(mastered_positive_mask, "tau"), 0.99, "ULORL.pdf Sec. 3.2"),
        _s("target entropy sigma", FromChain(mastered_positive_mask, "sigma"), 0.2, "ULORL.pdf Sec. 3.2"),
        _s("aggregation", _agg(token_mean), "token_mean", "ULORL.pdf Eq. 9: 1 / sum_i |o_i|"),
        _s("clip eps_low / eps_high", f"{EPS_LOW.read(ulorl_recipe)} / {EPS_HIGH.read(ulorl_recipe)}", "not stated",
           "ULORL.pdf (no value given)", "the paper gives none; PPO's 0.2"),
        _s("group_size", 8, 8, "ULORL.pdf: 8 samples per prompt"),
        _s("temperature", 0.85, 0.85, "ULORL.pdf: rollout temperature"),
    )),
    Recipe("clip_cov_recipe", "The Entropy Mechanism of RL for Reasoning LMs, arXiv 2505.22617",
           "volcengine/verl recipe/entropy (PRIME-RL/Entropy-Mechanism-of-Reasoning-RL)", clip_cov_recipe, (
        _s("clip eps_low", FromChain(clip_cov, "eps_low"), 1.0, "7b_clip_cov.sh: clip_ratio_low"),
        _s("clip eps_high", FromChain(clip_cov, "eps_high"), 1.0, "7b_clip_cov.sh: clip_ratio_high"),
        _s("detached fraction", FromChain(clip_cov, "ratio"), 2e-4, "7b_clip_cov.sh: clip_cov_ratio"),
        _s("covariance bounds", f"{FromChain(clip_cov, 'cov_low').read(clip_cov_recipe)} / "
           f"{FromChain(clip_cov, 'cov_high').read(clip_cov_recipe)}", "1.0 / 5.0", "7b_clip_cov.sh: clip_cov_lb, clip_cov_ub"),
        _s("scope", FromChain(clip_cov, "scope"), "micro_batch", "core_algos.py: per micro-batch on each rank"),
        _s("aggregation", _agg(token_mean), "token_mean", "7b_clip_cov.sh: loss_agg_mode"),
        _s("lr", 1e-6, 1e-6, "7b_clip_cov.sh: actor.optim.lr"),
    )),
    Recipe("papo_recipe", "PAPO, arXiv 2507.06448", "MikeWangWZHL/PAPO @ fb63bf4", papo_recipe, (
        _s("clip eps_low", EPS_LOW, 0.2, "verl/workers/actor/config.py (EasyR1): clip_ratio_low"),
        _s("clip eps_high", EPS_HIGH, 0.3, "verl/workers/actor/config.py: clip_ratio_high"),
        *EASYR1_ACTOR,
        _s("perception KL gamma", FromChain(perception_kl, "gamma"), 0.02, "qwen2_5_vl_7b_grpo_papo.sh: KL_PRCP_COEF"),
        _s("perception KL estimator", FromChain(perception_kl, "estimator"), "k3",
           "config_grpo_papo.yaml: kl_prcp_penalty=low_var_kl"),
        _s("entropy loss (original)", FromChain(double_entropy, "eta_orig"), 0.05, "same script: ORI_ENTROPY_LOSS_COEF"),
        _s("entropy loss (masked)", FromChain(double_entropy, "eta_perturbed"), 0.05, "same script: AUG_ENTROPY_LOSS_COEF"),
        _s("KL to reference (k3, loss)", FromChain(kl_penalty, "beta"), 0.01, "config_grpo_papo.yaml: kl_coef, low_var_kl"),
        _s("group_size", 5, 5, "config_grpo_papo.yaml: worker.rollout.n"),
        _s("temperature", 1.0, 1.0, "config_grpo_papo.yaml: worker.rollout.temperature"),
        _s("lr", 1e-6, 1e-6, "config_grpo_papo.yaml: worker.actor.optim.lr"),
    )),
    Recipe("vppo_recipe", "VPPO, arXiv 2510.09285", "huaixuheqing/VPPO-RL @ a23c54b", vppo_recipe, (
        _s("clip eps_low", EPS_LOW, 0.2, "examples/configs/config.yaml: clip_ratio_low"),
        _s("clip eps_high", EPS_HIGH, 0.28, "examples/configs/config.yaml: clip_ratio_high"),
        *EASYR1_ACTOR,
        _s("pivotal token fraction k", FromChain(pivotal_token_mask, "k"), 0.4, "train_vppo_7b.sh: top_p_perception_tokens"),
        _s("advantage scaling minimum", FromChain(dependency_advantage_shaping, "beta_min"), 0.9,
           "train_vppo_7b.sh: advantage_scaling_min"),
        _s("entropy penalty", FromChain(sampled_entropy_bonus, "coef"), -0.06,
           "train_vppo_7b.sh: entropy_penalty_coef=0.06 (loss += 0.06 * mean(-logp))"),
        _s("KL to reference", "none", "none", "examples/configs/config.yaml: disable_kl: true"),
        _s("group_size", 8, 8, "train_vppo_7b.sh: rollout=8"),
        _s("temperature", 1.0, 1.0, "examples/configs/config.yaml: rollout temperature"),
        _s("lr", 1e-6, 1e-6, "examples/configs/config.yaml: actor.optim.lr"),
    )),
    Recipe("pacs_recipe", "PACS, arXiv 2509.02522", "ritzz-ai/PACS", pacs_recipe, (
        _s("score scale beta", FromChain(pacs_loss, "beta"), 1.0, "scripts/pacs/pacs_beta_1.0.sh: beta"),
        _s("group baseline", FromChain(pacs_loss, "baseline"), "rloo", "pacs_core_algos.py: RLOO scores (default)"),
        _s("class-balanced weights", FromChain(pacs_loss, "balanced"), True,
           "pacs_beta_1.0.sh: use_weight=True, weight_mode=question"),
        _s("PPO clip / KL / entropy", "none", "none", "pacs_actor.py: the BCE replaces the PPO loss; no KL, no entropy"),
        _s("group_size", 8, 8, "pacs_beta_1.0.sh: rollout.n"),
        _s("lr", 1e-6, 1e-6, "pacs_beta_1.0.sh: actor.optim.lr"),
    )),
    Recipe("kl_cov_recipe", "The Entropy Mechanism of RL for Reasoning LMs, arXiv 2505.22617",
           "volcengine/verl recipe/entropy (PRIME-RL/Entropy-Mechanism-of-Reasoning-RL)", kl_cov_recipe, (
        _s("KL fraction", FromChain(kl_cov, "ratio"), 2e-3, "7b_kl_cov.sh: kl_cov_ratio (from memory; unverified)"),
        _s("KL coefficient", FromChain(kl_cov, "beta"), 1.0, "7b_kl_cov.sh: ppo_kl_coef"),
        _s("scope", FromChain(kl_cov, "scope"), "micro_batch", "core_algos.py: per micro-batch on each rank"),
        _s("aggregation", _agg(token_mean), "token_mean", "7b_kl_cov.sh: loss_agg_mode"),
        _s("lr", 1e-6, 1e-6, "7b_kl_cov.sh: actor.optim.lr"),
    )),
)}
