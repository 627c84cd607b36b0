"""Write docs/papers.md, the paper index, from the seed list and the table below.

Usage: ``.venv/bin/python docs/_tools/paper_index.py [path/to/seeds/papers.md]``. A row marked
``implemented`` may only name terms in ``rlobj.__all__`` (tests/docs/test_site.py checks the
written page); when a term lands, move its row from ``planned`` to ``implemented`` here and
run this script again.
"""

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "docs" / "_tools" / "seed_titles.md"  # titles of ../shared/seeds/papers.md

# API anchors of the names used below (autorefs identifiers; the build fails if one is wrong).
API = {
    "grpo": "rlobj.presets.papers.grpo", "dr_grpo": "rlobj.presets.papers.dr_grpo",
    "dapo": "rlobj.presets.papers.dapo", "rloo": "rlobj.presets.papers.rloo",
    "one_shot_rlvr": "rlobj.presets.papers.one_shot_rlvr",
    "top_entropy_mask": "rlobj.terms.masks.token_selection.top_entropy_mask",
    "k3_kl": "rlobj.terms.divergences.sampled_kl.k3_kl",
    "kl_penalty": "rlobj.terms.divergences.sampled_kl.kl_penalty",
    "entropy_bonus": "rlobj.terms.regularizers.entropy.entropy_bonus",
    "truncated_mask": "rlobj.terms.masks.token_selection.truncated_mask",
    "overlong_penalty": "rlobj.terms.rewards.shaping.overlong_penalty",
    "length_penalty": "rlobj.terms.rewards.shaping.length_penalty",
    "passk_advantage": "rlobj.terms.advantages.baselines.passk_advantage",
    "pass_at_k": "rlobj.eval.passk.pass_at_k", "maj_at_k": "rlobj.eval.passk.maj_at_k",
    "cot_pass_at_k": "rlobj.eval.cot.cot_pass_at_k",
    "compare_solve_rates": "rlobj.eval.solve_rates.compare_solve_rates",
    "dph_divergence": "rlobj.terms.divergences.dph.dph_divergence",
    "tree_value_advantage": "rlobj.terms.advantages.tree.tree_value_advantage",
    "turn_returns": "rlobj.terms.advantages.turns.turn_returns",
}
# faithful recipes (rlobj.presets.recipes; table on docs/recipes.md)
API.update({name: f"rlobj.presets.recipes.{name}" for name in (
    "lp_reg_recipe", "dph_rl_recipe", "one_shot_rlvr_recipe", "riskpo_recipe", "forking_tokens_recipe",
    "ulorl_recipe", "w_reinforce_recipe", "siren_recipe", "papo_recipe", "vppo_recipe", "pacs_recipe")})

IMPL, SUPP, PLAN, OUT = "implemented", "supported", "planned", "out of scope"
# number -> (status, what, recipe or "", names to link)
ROWS = {
    1: (PLAN, "issue 4: `lp_reg(tau, ...)` on the lazy vocab view (proxy from the old policy, replaces the clipped term on selected tokens)", "", []),
    2: (SUPP, "evaluation: CoT-pass@k (`rlobj.eval.cot_pass_at_k`) with a pluggable chain-of-thought judge: `RuleCotJudge` or the engine-backed LLM judge `EngineCotJudge`", "", ["cot_pass_at_k", "pass_at_k"]),
    3: (PLAN, "issue 5: backward / forward noisy-verifier corrections and the online false-negative-rate estimate (modules `rlobj/terms/rewards/noisy_verifier.py`, `rlobj/terms/advantages/noisy_verifier.py` in progress, not exported yet)", "", []),
    4: (SUPP, "a rollout strategy, not a term: `rlobj.rollout.LATREngine` with `LATRConfig` (branching at uncertain steps, lookahead pruning by edit distance or suffix match / ROUGE-L, mix-ratio schedule `MixSchedule`); example config `examples/configs/rollout/latr.yaml`; objective unchanged", "`grpo`", ["grpo"]),
    5: (SUPP, "multi-turn dialogue with a simulated user: `SimulatedUserEnvironment` (a second model on any rlobj engine plays a persona; its emotion score, judged each turn, is the reward) under the multi-turn sampler, see [Multi-turn rollouts and tools](how-to/multi-turn-tools.md); objective `grpo` or `turn_returns`. rlobj has no critic/GAE, so the PPO variant is out of scope", "`grpo`", ["grpo", "turn_returns"]),
    6: (SUPP, "objective `grpo` (8 rollouts per prompt, short window); the hard-focus curriculum is the `HardFocus` data strategy ([Data loops](data-loops.md))", "`grpo`", ["grpo", "HardFocus"]),
    7: (IMPL, "MCTS over reasoning steps as a sampler (`sampler: mcts`: UCT/PUCT, global frontier selection, entropy-chosen training paths, adaptive replay of solved problems, node and token budgets) and node values to per-token advantages as a term; see [Search in training](search-in-training.md) and `examples/configs/rollout/mcts.yaml`", "`tree_value_advantage >> clip_ratio(eps_high=0.28) >> token_mean` with `sampler: mcts`", ["tree_value_advantage"]),
    8: (PLAN, "issue 4: `forward_kl`, `js_divergence`, `f_divergence` against the initial policy. Today only a sampled-token KL to the initial policy exists", "`grpo >> kl_penalty(beta, against=\"init\")` (reverse-KL estimator, not the paper's mass-covering divergence)", ["kl_penalty"]),
    9: (SUPP, "self-verification task and reward: the `SelfVerification` transform has the policy critique its own solutions and rewards verdicts that match the outcome verifier; solutions and critiques train in one update ([Data loops](data-loops.md))", "", ["SelfVerification"]),
    10: (PLAN, "issue 5: LaSeR last-token self-rewarding score and auxiliary MSE loss", "", []),
    11: (IMPL, "policy gradient + entropy loss + k3 KL, composed from primitives (the dedicated preset is issue 6)", "`grpo >> k3_kl(beta=0.001) >> entropy_bonus(coef=0.001)`", ["grpo", "k3_kl", "entropy_bonus"]),
    12: (PLAN, "issue 5: RL-PLUS multiple importance sampling and exploration-based advantage", "", []),
    13: (PLAN, "issue 5: Token Hidden Reward reweighting", "", []),
    14: (SUPP, "multi-turn tool use: the multi-turn sampler with `ToolEnvironment` (JSON or fenced-code calls; sandboxed Python, calculator, BM25 retrieval), observation tokens masked out of the loss; VerlTool's math recipe as `examples/configs/multiturn/verltool_torl_math.yaml`; see [Multi-turn rollouts and tools](how-to/multi-turn-tools.md). Its asynchronous rollouts and multimodal observations are not reproduced", "`grpo`", ["grpo"]),
    15: (OUT, "flow rewards computed from a flow model on the policy's latent states; not planned", "", []),
    16: (SUPP, "a sampling schedule, not a term: `SamplingConfig(temperature_schedule=rlobj.rollout.EADSchedule())` anneals the temperature per position in `HFEngine` (log-probs of the annealed distribution); the optional truncated-IS correction is `truncated_is` on `extras['logp_rollout']`; example config `examples/configs/rollout/ead.yaml`", "`grpo >> truncated_is(cap=2.0)` (TIS optional)", ["grpo"]),
    17: (PLAN, "issue 5: Co-Reward majority-vote agreement across question views", "", []),
    18: (PLAN, "issue 5: VSRM step rewards", "", []),
    19: (SUPP, "the language-agnostic code verifier: `rlobj.verifiers.CodeExecution` with per-language `LanguageConfig` (stdin/stdout tests in a sandbox); objective `grpo`", "`grpo`", ["grpo"]),
    20: (IMPL, "GRPO with binary verification rewards (math verifier `rlobj.verifiers.MathVerifier`)", "`grpo`", ["grpo"]),
    21: (PLAN, "issue 5: RiskPO mixed Value-at-Risk objective and question bundling", "", []),
    22: (IMPL, "policy gradient only on the top-ρ entropy (forking) tokens, selected per micro-batch as the reference does", "`forking_tokens_recipe`", ["forking_tokens_recipe", "top_entropy_mask", "dapo"]),
    23: (SUPP, "evaluation: unbiased pass@k curves between checkpoints (`rlobj.eval.pass_at_k`, `plot_pass_at_k`) and per-problem solve-rate tables (`compare_solve_rates`)", "", ["pass_at_k", "compare_solve_rates"]),
    24: (SUPP, "objective `grpo`; math, code and logic-puzzle tasks come from `rlobj.data` generators and `rlobj.verifiers` (the paper's datasets are not bundled)", "`grpo`", ["grpo"]),
    25: (OUT, "video self-supervised tasks: no video modality in rlobj", "", []),
    26: (SUPP, "domain mixture weights refitted within one run from per-domain progress (`DomainMixture` data strategy); the paper's offline mixture predictor over pilot runs is not implemented ([Data loops](data-loops.md))", "", ["DomainMixture"]),
    27: (SUPP, "hundreds of rollouts per prompt: the `broad` sampler (`sampler: {broad: {chunk_size: C}}`, engine calls of at most C sequences) with `rollout.group_size` = N and `update.micro_batch_size` (global normaliser); example config `examples/configs/brorl.yaml`", "`grpo`", ["grpo"]),
    28: (SUPP, "synthesis from failure cases: the `WeaknessSynthesis` data strategy turns prompts the policy keeps failing into new problems through a synthesiser hook (`SimilarAddition` for sums; the LLM concept extraction of SwS is the hook's job), validated, deduplicated and logged with provenance ([Data loops](data-loops.md))", "", ["WeaknessSynthesis"]),
    29: (PLAN, "issue 5: CANON conditional advantage estimation", "", []),
    30: (PLAN, "issue 5: BRPO bootstrapped pairwise relative advantages (Writing-Zero); the pairwise judge is user code", "", []),
    31: (PLAN, "issue 3: the `sft` term for hybrid guidance (module `rlobj/terms/supervised.py` in progress, not exported yet); GHPO's difficulty detection is a batch step", "", []),
    32: (SUPP, "SELF curation: `rlobj.rollout.filters.self_curation` keeps the prompts whose greedy answer is wrong; then `grpo` on them (its forward-KL part: `grpo >> forward_kl()`)", "`grpo`", ["grpo"]),
    33: (SUPP, "RoRecomp: `rlobj.rollout.filters.rorecomp_priority` (shortest-correct and longest-incorrect responses per group) and `compensation_step` (FIFO replay buffer of the rest); alpha, buffer size and gate unverified", "`grpo`", ["grpo"]),
    34: (PLAN, "issue 5: Guide hint-conditioned importance ratio", "", []),
    35: (PLAN, "issues 5 and 6: VPPO trajectory advantage shaping and pivotal-token mask from a perception-view dependency score", "", []),
    36: (OUT, "training a binary-principle reward model; its judgments could feed rlobj through a verifier", "", []),
    37: (SUPP, "an analysis paper: its pass@k measurements use `rlobj.eval.pass_at_k`", "", ["pass_at_k"]),
    38: (PLAN, "issue 5: PPR ReNorm hybrid reward normalisation", "", []),
    39: (OUT, "next-segment reasoning on pre-training text scored by a generative reward model; not planned", "", []),
    40: (SUPP, "answer-consistency reward for text multiple choice: the `ShuffledConsistency` transform shuffles the options, asks again after the same reasoning and scales the reward of correct but inconsistent answers ([Data loops](data-loops.md))", "", ["ShuffledConsistency"]),
    41: (PLAN, "issue 6: UloRL dynamic masking of well-mastered positive tokens and segment rollouts", "", []),
    42: (OUT, "caption rewards from a vision-language model answering questions: vision modality and LLM-judge rewards", "", []),
    43: (OUT, "evolutionary data synthesis: data, not the objective", "", []),
    44: (SUPP, "synthetic verifiable puzzles: `rlobj.data` knights-and-knaves and countdown generators with `rlobj.verifiers.KnightsKnavesVerifier` / `CountdownVerifier` (not Enigmata's 36 tasks); objective `grpo`", "`grpo`", ["grpo"]),
    45: (SUPP, "MCTS with mean backup and rollout evaluation (`sampler: mcts`), step labels from node values (`labels: true`), a tiny process reward model trained on them (`rlobj.train.process_reward.ProcessRewardModel`) used as a scorer (`PRMScorer`: step scores, token rewards, online refit) and SFT on search-found correct paths interleaved with RL (`rlobj.train.SFTInterleave`); see [Search in training](search-in-training.md) and `examples/configs/rollout/propa.yaml`. The paper's first-error search has no separate counterpart in the authors' code", "`grpo` with `sampler: mcts`, `PRMScorer` and `SFTInterleave`", ["grpo"]),
    46: (SUPP, "DARS: `rlobj.rollout.filters.dars_extra_rollouts` allocates the second-pass rollouts (ET / HW schedules, caps 32 / 64); merge them into the groups and train `dr_grpo` (no std)", "`dr_grpo`", ["dr_grpo"]),
    47: (PLAN, "issue 5: Self-Aligned Reward", "", []),
    48: (PLAN, "issue 5: Conciseness Reward Function", "", []),
    49: (PLAN, "issue 5: CAPO token-level rewards from step critiques (critique producer pluggable)", "", []),
    50: (OUT, "proposer/solver self-play with a code executor; the sandbox (`rlobj.verifiers.CodeExecution`) exists, the self-play loop is not planned", "", []),
    51: (SUPP, "PROF: `rlobj.rollout.filters.prof_filter` keeps a balanced m per group by PRM/outcome consistency (BOTH / POS variants); then `grpo` on the kept rows", "`grpo`", ["grpo"]),
    52: (PLAN, "issue 6: VOGUE visual-uncertainty bonus on perception views", "", []),
    53: (PLAN, "issue 5: PSR / NSR / W-REINFORCE (module `rlobj/terms/advantages/sample_polarity.py` in progress, not exported yet)", "", []),
    54: (OUT, "training generative reward models; not the policy objective", "", []),
    55: (PLAN, "issue 5: AEPO adaptive exploration reward", "", []),
    56: (PLAN, "issue 5: GCPO contrastive masking and length reward", "", []),
    57: (PLAN, "issue 5: PACS supervised reformulation with class-balanced cross-entropy", "", []),
    58: (PLAN, "issue 3: the `sft` term so supervised and RL losses share one objective (module in progress, not exported yet)", "", []),
    59: (SUPP, "online curriculum from rollout accuracy (CLPO's bands) with revisits and a problem-restructuring hook (`DifficultyCurriculum` data strategy; no built-in rewriter); the half KL for hard prompts is `kl_penalty(scale_key=\"kl_scale\")` with the `DifficultyKLScale` provider ([Data loops](data-loops.md))", "", ["DifficultyCurriculum", "DifficultyKLScale"]),
    60: (SUPP, "IoU rewards for boxes: `rlobj.verifiers.BoxIoU`; objective `grpo` (no vision model is bundled)", "`grpo`", ["grpo"]),
    61: (OUT, "perception rewards judged by an LLM against visual annotations: vision modality", "", []),
    62: (OUT, "training a reasoning reward model; not the policy objective", "", []),
    63: (OUT, "the R3 reward from the policy's own likelihood of reference tokens is not covered by an issue yet (RLPR's probability reward, issue 5, is the closest)", "", []),
    64: (SUPP, "constrained beam search over a catalogue of items (`CatalogueBeamSampler`: distinct valid items per prompt, best first) and the rank-discounted ranking reward (`RankingScorer`); the penalty's form is our reading of the abstract ([Data loops](data-loops.md))", "", ["CatalogueBeamSampler", "RankingScorer"]),
    65: (SUPP, "evaluation: empirical-support preservation / shrinkage / expansion counts between two checkpoints (`rlobj.eval.compare_solve_rates`)", "", ["compare_solve_rates", "pass_at_k"]),
    66: (PLAN, "issue 6: PAPO implicit perception loss and double entropy loss on perception views", "", []),
    67: (PLAN, "issue 5: RLPR probability reward with its std filter", "", []),
    68: (SUPP, "hint length from a Rasch fit of per-prompt statistics aimed at a target solve rate (`HintScaffold` data strategy), fitted across steps rather than within one step ([Data loops](data-loops.md))", "", ["HintScaffold"]),
    69: (PLAN, "issue 4: `siren(...)` top-p mask, peak-entropy mask and self-anchored entropy regularizer", "", []),
    70: (SUPP, "the objective is GRPO-style with a chat reward model as the scorer; a reward model would be a user verifier", "`grpo`", ["grpo"]),
}

# Rewards from models (issue 17): scorers on docs/how-to/rewards-from-models.md.
_RM = "[Rewards from models](how-to/rewards-from-models.md)"
API.update({name: f"rlobj.train.{module}.{name}" for module, names in (
    ("judges", ("PointwiseJudge", "PairwiseLLMJudge", "PrincipleJudge", "ThinkingJudge")),
    ("model_scorers", ("SequenceClassifierRM",)),
    ("reward_model_tasks", ("SentenceJudge", "PreferenceTask", "PreferenceVerdict")),
    ("paper_rewards", ("RLBFFJudge", "RLMTReward", "WritingZeroJudge", "PerceptionJudge", "NextSegmentJudge",
                       "CaptionUtility", "R3Reward", "FlowReward"))) for name in names})
API["EngineCotJudge"] = "rlobj.eval.cot.EngineCotJudge"
ROWS.update({
    2: (SUPP, "evaluation: CoT-pass@k (`rlobj.eval.cot_pass_at_k`) with a pluggable chain-of-thought judge: `RuleCotJudge` or the engine-backed LLM judge `EngineCotJudge` (tested through a real tiny model; " + _RM + ")", "", ["cot_pass_at_k", "pass_at_k", "EngineCotJudge"]),
    15: (SUPP, "the scorer `FlowReward`, checked against the authors' code (Jinghaoleven/RLFR@1589879): a velocity field fitted by flow matching on the policy's latents of reference responses at depth 0.25/0.5/0.75, conditioned on the previous token; token rewards = minus 0.01 x the min-max normalised, thresholded (0.6), top-15 debiased velocity deviation at t = 0.8, next to a verifier's outcome reward; the field is a small MLP fitted in-run, not the authors' pre-trained AdaLN MLP (" + _RM + ")", "`grpo`", ["FlowReward"]),
    36: (SUPP, "the scorer `RLBFFJudge`: Yes/No judgements of binary principles by a judge model, mean P(Yes) or binary (" + _RM + "); training the reward model itself is out of scope", "`grpo`", ["RLBFFJudge", "PrincipleJudge"]),
    39: (SUPP, "the scorer `NextSegmentJudge`: a generative reward model judges the predicted next segment against the real one (" + _RM + "); the segmentation of pre-training text is data preparation", "`grpo`", ["NextSegmentJudge"]),
    42: (SUPP, "the scorer `CaptionUtility`: a second, vision-free LLM answers the row's multiple-choice questions from the caption; the reward is its accuracy (" + _RM + "); no vision model is bundled", "`grpo`", ["CaptionUtility"]),
    61: (SUPP, "the scorer `PerceptionJudge`: a judging LLM checks the response against each textual visual annotation; the reward is the fraction judged consistent (" + _RM + ")", "`grpo`", ["PerceptionJudge"]),
    54: (SUPP, "the scorer `SentenceJudge`: TRM's sentence-level reward, a judge assesses each answer sentence for faithfulness to the documents, then for correctness (" + _RM + "); training the TRM itself is out of scope", "`grpo`", ["SentenceJudge"]),
    62: (SUPP, "RM-R1's task format: `PreferenceTask` turns preference pairs into prompts (answer order drawn per row) and `PreferenceVerdict` checks the policy's [[A]]/[[B]] verdict, so the policy trains as a reasoning reward model (" + _RM + ")", "`grpo`", ["PreferenceTask", "PreferenceVerdict"]),
    63: (SUPP, "the scorer `R3Reward`: DRO v1 section 4.1.3, the policy's log-probs of the reference outcome after its reasoning weighted by w(sigma_j), the tokens' spread over the group (the paper gives no formula for w; rlobj uses sigma_j / sum sigma), optionally minus the log-probs under the masked reasoning, or with the decaying propagation factor at the group's most varying tokens (rlobj's choice of reflective tokens) (" + _RM + "); both stages of the R3 data filter of section 4.2.2 as the transform `R3Filter` (rlobj.train.transforms.r3; per step, not per dataset round; no 10% carry-over)", "`grpo`", ["R3Reward"]),
    70: (SUPP, "the scorer `RLMTReward`: a sequence-classification preference reward model (its own tokenizer and chat template) on the answer after `</think>` (" + _RM + ")", "`grpo`", ["RLMTReward", "SequenceClassifierRM"]),
})


# Planned rows that become "implemented" by themselves once every name is in rlobj.__all__
# and the recipe builds (it is evaluated in rlobj's namespace): number -> (names, recipe, what).
WHEN_EXPORTED = {
    1: (["lp_reg_recipe", "lp_reg"], "lp_reg_recipe", "Lp-Reg: KL toward a min-p filtered proxy of the old policy on low-probability negative-advantage tokens, replacing the clipped term there; the recipe adds the reference's clip [0, 10] and token mean"),
    3: (["backward_correction", "forward_correction", "fn_rate_from_appeals"],
        "backward_correction(rho0=0.1, rho1=0.2) >> dr_grpo",
        "backward correction of the binary reward (shown; unbiased for the clean reward) or the forward correction `grpo.replace(group_zscore, forward_correction(rho1=0.2))`; `fn_rate_from_appeals` estimates the false-negative rate online from re-checked negatives"),
    8: (["dph_rl_recipe", "dph_divergence"], "dph_rl_recipe", "DPH-RL: the mass-covering divergence (forward KL or JS generator) evaluated on stored initial-policy samples of perfectly solved prompts (`dph_divergence`, no online reference model); `forward_kl` is a different, online-reference term"),
    10: (["self_reward_advantage", "self_reward_mse"],
         "grpo.replace(group_zscore, self_reward_advantage()) >> self_reward_mse()",
         "last-token self-rewarding score mixed into the advantage, plus its auxiliary MSE loss"),
    21: (["riskpo_recipe", "mvar_advantage"], "riskpo_recipe",
         "mixed Value-at-Risk advantage over question bundles (per-step quantiles as the released trainer; the tracker is `quantiles=\"track\"`), token mean"),
    31: (["sft"], "grpo >> sft()", "the `sft` term adds the supervised loss on guidance demonstrations to the RL objective; adaptive guidance (25/50/75% solution hints for all-wrong groups) is the guided_resample transform ([Data loops](data-loops.md))"),
    53: (["w_reinforce_recipe", "w_reinforce", "psr", "nsr"], "w_reinforce_recipe",
         "W-REINFORCE (the recipe: lambda 0.1, clip 0.2, token mean, entropy bonus 1e-4), or `psr()` / `nsr()` in its place"),
    57: (["pacs_recipe", "pacs_loss"], "pacs_recipe",
         "PACS: class-balanced cross-entropy on an RLOO-baselined policy score; replaces the PPO surrogate"),
    58: (["sft"], "grpo >> sft()", "supervised and RL losses in one objective; ground-truth injection into the groups is the ground_truth_rows transform, with sft on the injected tokens ([Data loops](data-loops.md))"),
    69: (["siren_recipe", "siren"], "siren_recipe", "SIREN top-p and peak-entropy masks with a self-anchored entropy regularizer (recipe: Dr. GRPO base, clip 0.2 with dual clip 3, per-micro-batch regulariser as the reference)"),
    # seed methods I (continued)
    17: (["co_reward"], "co_reward() >> grpo >> k3_kl(beta=0.005)",
         "Co-rewarding-I: reward = agreement with the majority answer of the rephrased twin question (label-free)"),
    18: (["vsrm_step_reward"], "vsrm_step_reward() >> grpo.replace(group_zscore, batch_whiten())",
         "VSRM step rewards = accuracy gain of each reasoning prefix (segmentation and sub-rollouts are the trainer's job)"),
    29: (["canon_advantage"], "dr_grpo.replace(group_mean_baseline, canon_advantage(metric=\"entropy\", mu=1.0))",
         "CANON: advantages against the other / own half of a median split on entropy or length"),
    30: (["brpo_advantage"], "grpo.replace(group_zscore, brpo_advantage())",
         "BRPO: pairwise verdict against a random in-group reference is the advantage, with the outlier filter; the judge is user code or the pairwise LLM judge `WritingZeroJudge` ([Rewards from models](how-to/rewards-from-models.md))"),
    38: (["ppr_renorm"], "ppr_renorm() >> grpo.replace(group_zscore, batch_whiten())",
         "PPR ReNorm: per-step reward r^p + r^o - 1 on token returns (no critic/GAE in rlobj)"),
    47: (["self_aligned_reward"], "self_aligned_reward(alpha=0.2) >> grpo",
         "Self-Aligned Reward: relative perplexity drop from conditioning on the question, added to the verifier reward"),
    48: (["conciseness_reward"], "conciseness_reward() >> grpo",
         "CRF: correctness-gated conciseness bonus from a conciseness reward model's score (alpha, annealing, difficulty unverified)"),
    55: (["aepo_reward"], "aepo_reward() >> grpo",
         "AEPO adaptive exploration reward for multi-answer outputs: 1/sqrt(N k) on success, -1/N on failure"),
    56: (["gcpo_reward"], "gcpo_reward() >> grpo",
         "GCPO group contrastive masking of the auxiliary-construction reward, plus a length reward"),
    67: (["rlpr_reward"], "rlpr_reward(format_weight=0.1) >> grpo",
         "RLPR debiased probability of the reference answer; the std filter is `rlobj.rollout.filters.std_filter`"),
    # seed methods I (remaining)
    12: (["mis_exploration_pg"], "grpo.replace(clip_ratio, mis_exploration_pg()).replace(seq_mean_token_mean, constant_normalizer(4096))",
         "RL-PLUS: multiple-importance-sampling ratio and exploration-based advantage on external-demonstration tokens, unclipped PG on own tokens"),
    13: (["token_hidden_reward"], "grpo.replace(group_zscore, group_zscore() >> token_hidden_reward(p=0.2))",
         "Token Hidden Reward (or NTHR, `mode=\"nthr\"`) reweighting from a per-token influence score in extras; THR's threshold and rule unverified"),
    34: (["hint_clip_ratio"], "grpo.replace(clip_ratio, hint_clip_ratio())",
         "Guide: the ratio of a hint-guided rollout divides the hint-free policy by the hint-conditioned sampler"),
    35: (["vppo_recipe", "dependency_advantage_shaping", "pivotal_token_mask"],
         "vppo_recipe",
         "VPPO trajectory advantage shaping and pivotal-token gradient filter from `extras[\"visual_dependency\"]` (`visual_dependency_score` writes it)"),
    49: (["critique_token_advantage"], "grpo.replace(group_zscore, group_zscore() >> critique_token_advantage())",
         "CAPO-style token credit: tokens of steps flagged wrong by critique votes (producer is user code) get a penalty; combination rule unverified"),
    # seed methods II
    11: (["one_shot_rlvr_recipe", "one_shot_rlvr"], "one_shot_rlvr_recipe",
         "1-shot RLVR: GRPO advantages, PPO clip 0.2, entropy bonus 0.001, k3 KL 0.001, token mean (recipe: temperature 0.6, 8 samples)"),
    41: (["ulorl_recipe", "mastered_positive_mask"], "ulorl_recipe",
         "UloRL DMMPT: drop the policy loss of tokens with p >= 0.99 in reward-1 responses whose mean entropy is below 0.2 (normaliser unchanged, token mean); segment rollouts are a rollout-side item"),
    # seed methods II: perception views (rlobj.rollout.perception, rlobj.terms.*.perception)
    66: (["papo_recipe", "perception_kl", "double_entropy"],
         "papo_recipe",
         "PAPO implicit perception loss (k3 KL between the policy on the normal and on a patch-blackened / prompt-masked context, maximised; `estimator=\"full\"` for the exact full-vocabulary KL) and double entropy loss; the perturbed pass comes from `rlobj.rollout.perception.perception_forward` in `extras[\"logp_perturbed\"]`"),
    52: (["vogue_bonus"], "grpo.replace(group_zscore, group_zscore() >> vogue_bonus(lambda_u=0.1, cap=0.5))",
         "VOGUE visual-uncertainty advantage bonus from the full-vocabulary symmetric KL between the normal and the perturbed view on noisy-branch rollouts (`annealed_branch_probability`, `noisy_branch_rows`); reading unverified (no reference code), coefficients are placeholders"),
}

# faithful recipes, continued (rlobj.presets.seed_recipes): these rows point at their recipes
API.update({name: f"rlobj.presets.seed_recipes.{name}" for name in (
    "rl_plus_recipe", "canon_recipe", "laser_recipe", "rlpr_recipe", "co_reward_recipe", "sar_recipe",
    "noisy_rlvr_recipe", "guide_recipe", "ghpo_recipe", "aepo_recipe", "wirelessmath_recipe")})
WHEN_EXPORTED.update({
    3: (["noisy_rlvr_recipe", "backward_correction", "forward_correction", "fn_rate_from_appeals"], "noisy_rlvr_recipe",
        "backward correction of the binary reward (the recipe: rho0 0.1, rho1 0.2, leave-one-out baseline, KL 1e-3; paper only) or the forward correction `grpo.replace(group_zscore, forward_correction(rho1=0.2))`; `fn_rate_from_appeals` estimates the false-negative rate online from re-checked negatives"),
    10: (["laser_recipe", "self_reward_advantage", "self_reward_mse"], "laser_recipe",
         "last-token self-rewarding score mixed into the advantage, plus its auxiliary MSE loss (the recipe: the reference's coefficients after its warm-ups)"),
    12: (["rl_plus_recipe", "mis_exploration_pg"], "rl_plus_recipe",
         "RL-PLUS: multiple-importance-sampling ratio and exploration-based advantage on external-demonstration tokens, unclipped PG on own tokens; the recipe: no std, policy loss summed over the padded length, entropy bonus by token mean"),
    17: (["co_reward_recipe", "co_reward"], "co_reward_recipe",
         "Co-rewarding-I: reward = agreement with the majority answer of the rephrased twin question (label-free); the recipe adds GRPO, dual clip 3 and k3 KL 0.005"),
    29: (["canon_recipe", "canon_advantage"], "canon_recipe",
         "CANON: advantages against the other / own half of a median split on entropy or length (the recipe: entropy, pure inter-group, /8192, seq-mean-token-sum)"),
    47: (["sar_recipe", "self_aligned_reward"], "sar_recipe",
         "Self-Aligned Reward: relative perplexity drop from conditioning on the question, added to the verifier reward (the recipe: alpha 0.2, Dr. GRPO advantages, k3 KL 0.001)"),
    31: (["ghpo_recipe"], "ghpo_recipe",
         "GHPO's released code trains TRL's GRPO loss (no supervised term; `ghpo_recipe`: z-score eps 1e-4, clip 0.2, token mean, no KL) on prompts that carry 25 / 50 / 75 % of the reference solution when every rollout of a question fails; that prompt refinement is the `guided_resample` transform (transforms: {guided_resample: ...}, [Data loops](data-loops.md)); the earlier reading `grpo >> sft()` does not match the code"),
    34: (["guide_recipe", "hint_clip_ratio"], "guide_recipe",
         "Guide: the ratio of a hint-guided rollout divides the hint-free policy by the hint-conditioned sampler; the recipe adds the released code's off-policy shaping rho/(rho + gamma) with gamma the 0.9-quantile of the guided ratios, unclipped (`GuidedSampler` samples a fixed share with the hint; the reference re-rolls all-failed groups)"),
    55: (["aepo_recipe", "aepo_reward"], "aepo_recipe",
         "AEPO adaptive exploration reward for multi-answer outputs: 1/sqrt(N k) on success, -1/N on failure; the recipe uses the reference's RLOO advantages (not GRPO) and clip high 0.4"),
    67: (["rlpr_recipe", "rlpr_reward"], "rlpr_recipe",
         "RLPR debiased probability of the reference answer (the recipe: clip 0.2 / 0.27, entropy bonus 0.001); the std filter is `rlobj.rollout.filters.std_filter`"),
    20: (["wirelessmath_recipe", "grpo"], "wirelessmath_recipe",
         "GRPO with binary verification rewards (math verifier `rlobj.verifiers.MathVerifier`); the recipe: lr 1e-6, KL 0.01, T 1.0 (paper only: the authors' project page; clip, aggregation, KL estimator and group size not stated, marked unverified)"),
})
# faithful recipes, continued further (rlobj.presets.seed_recipes_2): VSRM and PPR
API.update({name: f"rlobj.presets.seed_recipes_2.{name}" for name in ("vsrm_recipe", "ppr_recipe")})
WHEN_EXPORTED.update({
    18: (["vsrm_recipe", "vsrm_step_reward"], "vsrm_recipe",
         "VSRM step rewards = accuracy gain of each reasoning prefix, a flat step borrowing the next non-flat gain (W 4, gamma 0.7, as the released code); steps and sub-rollouts from the `ReasoningSteps` provider; the recipe: clip 0.2 with dual clip 3, token mean, no KL, T 0.6, lr 1e-6, batch-whitened returns where the reference trains a critic (GAE)"),
    38: (["ppr_recipe", "ppr_renorm"], "ppr_recipe",
         "PPR ReNorm: every judged turn gets r^p + r^o - 1, the outcome stays on the last token (as the released code); the recipe: k1 KL 0.001 in the reward, clip 0.2, entropy bonus 0.001, token mean, lr 1e-6, batch-whitened returns where the reference trains a critic (GAE)"),
})
# data loops (rlobj.train; docs/data-loops.md)
API.update({"HardFocus": "rlobj.train.data_strategies.HardFocus", "DomainMixture": "rlobj.train.data_strategies.DomainMixture",
            "DifficultyCurriculum": "rlobj.train.data_strategies.DifficultyCurriculum",
            "HintScaffold": "rlobj.train.data_strategies.HintScaffold",
            "WeaknessSynthesis": "rlobj.train.synthesis.WeaknessSynthesis",
            "SelfVerification": "rlobj.train.transforms.self_checks.SelfVerification",
            "ShuffledConsistency": "rlobj.train.transforms.self_checks.ShuffledConsistency",
            "CatalogueBeamSampler": "rlobj.train.catalogue.CatalogueBeamSampler",
            "RankingScorer": "rlobj.train.catalogue.RankingScorer"})
API.update({"AbsoluteZero": "rlobj.train.absolute_zero.AbsoluteZero",
            "AbsoluteZeroScorer": "rlobj.train.absolute_zero.AbsoluteZeroScorer",
            "EvoSynTasks": "rlobj.train.evosyn.EvoSynTasks", "RankingStrategy": "rlobj.train.evosyn.RankingStrategy",
            "AnomalyGrounding": "rlobj.train.video_pretext.AnomalyGrounding",
            "ObjectCounting": "rlobj.train.video_pretext.ObjectCounting",
            "TemporalJigsaw": "rlobj.train.video_pretext.TemporalJigsaw",
            "VideoSSRReward": "rlobj.train.video_pretext.VideoSSRReward",
            "DifficultyKLScale": "rlobj.train.data_strategies.DifficultyKLScale"})
ROWS.update({
    25: (SUPP, "the three pretext tasks as data on synthetic frames (`AnomalyGrounding`, `ObjectCounting`, `TemporalJigsaw`: rows with `images`, answers right by construction) and the authors' smooth rewards (`VideoSSRReward`: interval IoU, relative count error, position distance); training on image rows needs a vision-language policy ([Data loops](data-loops.md))", "", ["AnomalyGrounding", "ObjectCounting", "TemporalJigsaw", "VideoSSRReward"]),
    43: (SUPP, "a sandboxed solutions x testings pass matrix, the authors' consistency fitness against human tests, island evolution of a ranking strategy (`RankingStrategy` parameters, not LLM-written code) and synthesis of kept (problem, testing, solution) instances with provenance as a task source (`EvoSynTasks`) ([Data loops](data-loops.md))", "", ["EvoSynTasks", "RankingStrategy"]),
    50: (SUPP, "proposer/solver self-play over deduction, abduction and induction tasks: the `AbsoluteZero` data strategy and `AbsoluteZeroScorer` (proposals validated in rlobj's sandbox, deduplicated and logged with provenance; learnability reward from fresh solver rollouts; the reference's format-aware penalties) ([Data loops](data-loops.md))", "", ["AbsoluteZero", "AbsoluteZeroScorer"]),
})


def promote(rlobj) -> None:
    """Move planned rows whose terms are now public to implemented (recipe checked by building it)."""
    for number, (names, recipe, what) in WHEN_EXPORTED.items():
        if not all(name in rlobj.__all__ for name in names):
            continue
        try:
            eval(recipe, {name: getattr(rlobj, name) for name in rlobj.__all__})  # noqa: S307
        except Exception as error:  # noqa: BLE001 - report and keep the row planned
            print(f"paper {number}: names are public but the recipe {recipe!r} fails: {error}")
            continue
        for name in names:  # the anchor is the defining module's (every exported term has one)
            API.setdefault(name, f"{getattr(rlobj, name).__module__}.{name}")
        ROWS[number] = (IMPL, what, f"`{recipe}`", names)


def seed_titles(path: Path) -> dict[int, str]:
    titles = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^## (\d+)\. (.+)$", line)
        if match:
            titles[int(match.group(1))] = match.group(2).strip()
    return titles


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def links(names: list[str]) -> str:
    return ", ".join(f"[`{name}`][{API[name]}]" for name in names) or "—"


HEADER = """# Paper index

The 70 papers rlobj was started from, each with its status:

- **implemented**: the method is a chain of terms that exist in `rlobj` today (only names in
  `rlobj.__all__` count); the recipe column is the one-line objective.
- **supported**: rlobj runs the method through a hook (a verifier, a data generator, the
  evaluation module) with an existing objective, but has no term of its own for it.
- **planned**: an open issue of this repository covers it (the issue number is given); until
  it lands, the row says what exists today.
- **out of scope**: rlobj does not plan it, and the row says why (most such papers are about
  data synthesis, reward-model training, other modalities or agent frameworks rather than the
  training objective).

Counts: {counts}.

| # | Paper | Status | What rlobj has | Recipe | API |
|---|---|---|---|---|---|
"""


def render(seeds: Path) -> tuple[str, dict[str, int]]:
    """The text of docs/papers.md for the current rlobj, and the count of rows per status."""
    titles = seed_titles(seeds)
    missing = sorted(set(titles) ^ set(ROWS))
    if missing:
        raise SystemExit(f"paper numbers without a row or without a seed title: {missing}")
    import rlobj
    promote(rlobj)
    for number, (status, _, _, names) in ROWS.items():
        unknown = [n for n in names if n not in API]
        if unknown:
            raise SystemExit(f"paper {number}: no API anchor for {unknown}")
        if status == IMPL:
            not_public = [n for n in names if n not in rlobj.__all__]
            if not_public:
                raise SystemExit(f"paper {number}: implemented by names not in rlobj.__all__: {not_public}")
    counts = {s: sum(1 for row in ROWS.values() if row[0] == s) for s in (IMPL, SUPP, PLAN, OUT)}
    lines = [HEADER.format(counts=", ".join(f"{v} {k}" for k, v in counts.items()))]
    for number in sorted(ROWS):
        status, what, recipe, names = ROWS[number]
        if status == IMPL:
            status_cell = "**implemented** as " + ", ".join(f"`{n}`" for n in names)
        else:
            status_cell = f"**{status}**"
        lines.append(f"| {number} | {cell(titles[number])} | {status_cell} | {cell(what)} | "
                     f"{cell(recipe) or '—'} | {links(names)} |\n")
    return "".join(lines), counts


def main(seeds: Path) -> None:
    text, counts = render(seeds)
    (REPO / "docs" / "papers.md").write_text(text, encoding="utf-8")
    print(f"wrote docs/papers.md: {counts}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SEEDS)
