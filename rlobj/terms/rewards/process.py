"""Process (step) rewards: terms that write ``token_rewards`` at the ends of reasoning steps or turns.

Both run in the batch stage before the advantage term; the advantage terms add the token
rewards to the outcome reward (:mod:`rlobj.terms.advantages.baselines`).

* :class:`ppr_renorm`: PPR's ReNorm of process and outcome rewards (arXiv 2509.25598).
* :class:`vsrm_step_reward`: VSRM step rewards from prefix accuracy gains (arXiv 2508.10293).
"""

from typing import Annotated

import torch

from rlobj.algebra.contract import Fraction, NonNegative, Range
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.terms._common import require_extra as _extra
from rlobj.terms.rewards.outcome import _check_unit

__all__ = ["ppr_renorm", "vsrm_step_reward"]


# --------------------------------------------------------------------------- PPR ReNorm
class ppr_renorm(Term,
                 stage="batch",
                 reads=("rewards", "token_rewards", "mask", "extras:step_ends", "extras:process_rewards"),
                 writes=("token_rewards",)):
    r"""PPR ReNorm: each judged turn's process reward shifted by the outcome, the outcome kept.

    $$\hat r_t = r^p_t + r^o - \beta$$

    at every step end $t$ but the last of a response ($r^p_t \in [0,1]$: the principle-based
    process reward model's score divided by its maximum; $r^o \in [0, 1]$: the outcome reward,
    the incoming ``rewards``; $\beta = 1$). The last step end is the answer turn: the process
    model does not judge it and it keeps the outcome alone, which stays in ``rewards`` (on the
    final token for token-return advantages such as ``batch_whiten``). A response with one step
    end or none gets the outcome only. With $\beta = 1$ a correct trajectory ($r^o = 1$) gets
    only non-negative step rewards and an incorrect one ($r^o = 0$) only non-positive ones
    (sign consistency), which is the point of ReNorm.

    Inputs: ``extras["step_ends"]`` (bool, ``"batch seq"``, True at the last token of each turn,
    the answer turn included, as the reference's ``turn_mask``) and ``extras["process_rewards"]``
    (float, ``"batch seq"``, read at the step ends but the last).

    Xu, Li, Xing, Zhang, Li, Shi, "Hybrid Reward Normalization for Process-supervised
    Non-verifiable Agentic Tasks" (PPR), arXiv 2509.25598. Reference: Zhuohao-Li/ppr @ 4b496fa,
    ``verl/trainer/main_ppo.py::RewardManager`` (outcome written at the last valid token;
    ``_apply_process_reward_optimizations``: every turn boundary but the last gets
    ``score + orm_score - beta``, rows with one boundary or none are skipped),
    ``verl/utils/reward_score/process_reward.py::write_tag_rewards`` (score / max_score) and
    ``examples/train_3b.sh`` (``process_reward_config.renorm_beta=1.0``). A turn whose process
    score could not be parsed keeps 0 there (so $r^o - \beta$); supply 0 for it.

    Args:
        beta: $\beta$, the shift (reference 1.0).

    Returns:
        The state with ``token_rewards`` += $\hat r$ at the judged step ends (no gradient),
        ``rewards`` unchanged, and the metrics ``ppr/step_reward`` (mean $\hat r$ over judged
        steps) and ``ppr/steps`` (mean judged steps per response).

    Example:
        >>> from rlobj import batch_whiten, grpo, group_zscore
        >>> recipe = ppr_renorm() >> grpo.replace(group_zscore, batch_whiten())
    """

    beta: NonNegative = 1.0

    def __call__(self, state: State) -> State:
        outcome = state.require("rewards").detach()
        shape = tuple(state.mask.shape)
        ends = _extra(state, "step_ends", "ppr_renorm", shape, "batch seq", "bool") & state.mask
        process = _extra(state, "process_rewards", "ppr_renorm", shape, "batch seq", "float")
        _check_unit("rewards", outcome, "ppr_renorm (the outcome reward r^o)")
        # the last step end of each row is the answer turn (the outcome's): not judged
        last = ends & (ends.long().flip(-1).cumsum(-1).flip(-1) == 1)
        judged = ends & ~last
        _check_unit("extras['process_rewards']", process, "ppr_renorm", where=judged)
        step = torch.where(judged, process.to(outcome.dtype) + outcome[:, None] - self.beta,
                           torch.zeros((), dtype=outcome.dtype))
        base = state.token_rewards if state.token_rewards is not None else torch.zeros_like(step)
        return state.update(token_rewards=base + step.detach()).add_metrics(
            **{"ppr/step_reward": step[judged].mean() if bool(judged.any()) else step.sum(),
               "ppr/steps": judged.sum(-1).to(outcome.dtype).mean()})


# --------------------------------------------------------------------------- VSRM
class vsrm_step_reward(Term,
                       stage="batch",
                       reads=("token_rewards", "mask", "extras:step_ends", "extras:step_accuracy",
                                        "extras:start_accuracy"),
                       writes=("token_rewards",)):
    r"""VSRM: each reasoning step is rewarded by the accuracy gain it brings.

    For the step ends $t_1 < \dots < t_K$ of a response (``extras["step_ends"]``), $a_k$ is the
    accuracy of $M$ answer-forced completions of the prefix ending at $t_k$
    (``extras["step_accuracy"]``, ``"batch seq"``, read at step ends) and $a_0$ that of the
    empty reasoning (``extras["start_accuracy"]``, ``" batch"``):

    $$d_k = a_k - a_{k-1},\qquad r_{t_k} = \begin{cases} d_k & |d_k| \ge \delta \\
      \gamma^{m-k}\, d_m & \text{else, } m \text{ the first later step with } |d_m| \ge \delta,
      \ m - k \le W \\ 0 & \text{else, when the } W \text{ next gains are flat too} \\
      \gamma^{K-k}\,(a_K - a_{k-1}) & \text{else (the flat run reaches the last step)}\end{cases}$$

    A step whose own gain is flat ($|d_k| < \delta$) borrows the first non-flat gain among the
    next $W$ steps, decayed by $\gamma$ per step of distance; a non-flat gain is its own
    reward (later gains are not added). $W = 0$ gives the plain gains, which telescope:
    $\sum_k r_{t_k} = a_K - a_0$. The step rewards are added to ``token_rewards``; the outcome
    reward stays in ``rewards`` (on the final token for token-return advantages such as
    ``batch_whiten``). Segmenting the response at cue words ("However", "So", "Wait", ...) and
    running the sub-rollouts are the trainer's job (``ReasoningSteps``); this term holds the
    arithmetic.

    Yue, Dong, Gao, He, Chai, Yin, Lin, "Promoting Efficient Reasoning with Verifiable Stepwise
    Reward", arXiv 2508.10293 (AAAI 2026). Reference: 1benwu1/VSRM-Efficient-LRMs @ e4e928b,
    ``verl/workers/rollout_postprocess.py::compute_step_reward`` (``gamma = 0.7``,
    ``MAX_LOOKAHEAD = 4``, flat when ``abs(delta) < 1e-5``): the defaults. The reference writes
    each step's reward on the step's *first* token (the split position, where the previous
    prefix ends); rlobj reads it at ``step_ends`` as the provider marks them.

    Args:
        lookahead: $W \ge 0$ later steps searched for a non-flat gain.
        gamma: $\gamma \in [0, 1]$, the decay per step of distance.
        flat: $\delta \ge 0$, gains below it in magnitude are flat.

    Example:
        >>> from rlobj import batch_whiten, grpo, group_zscore
        >>> recipe = vsrm_step_reward() >> grpo.replace(group_zscore, batch_whiten())
    """

    lookahead: Annotated[int, Range(ge=0)] = 4
    gamma: Fraction = 0.7
    flat: NonNegative = 1e-5

    def propagate(self, gains: list[float]) -> list[float]:
        """The step rewards of one response from its gains $d_1..d_K$ (the rule above)."""
        if self.lookahead == 0:
            return list(gains)
        out = []
        for k, gain in enumerate(gains):
            if abs(gain) >= self.flat:
                out.append(gain)
                continue
            m, skipped = k + 1, 0
            while skipped < self.lookahead and m < len(gains) and abs(gains[m]) < self.flat:
                m, skipped = m + 1, skipped + 1
            if skipped == self.lookahead:
                out.append(0.0)
            elif m < len(gains):
                out.append(self.gamma ** (m - k) * gains[m])
            else:  # the flat run reaches the last step: its (tiny) total change, decayed
                out.append(self.gamma ** (len(gains) - k - 1) * sum(gains[k:]))
        return out

    def __call__(self, state: State) -> State:
        shape = tuple(state.mask.shape)
        ends = _extra(state, "step_ends", "vsrm_step_reward", shape, "batch seq", "bool") & state.mask
        accuracy = _extra(state, "step_accuracy", "vsrm_step_reward", shape, "batch seq", "float").detach()
        start = _extra(state, "start_accuracy", "vsrm_step_reward", (state.batch_size,), "batch", "float").detach()
        _check_unit("extras['step_accuracy']", accuracy, "vsrm_step_reward", where=ends)
        _check_unit("extras['start_accuracy']", start, "vsrm_step_reward")
        dtype = state.logp.dtype if state.token_rewards is None else state.token_rewards.dtype
        steps = torch.zeros(shape, dtype=torch.float64, device=state.mask.device)
        for row in range(shape[0]):
            positions = ends[row].nonzero().flatten()
            if positions.numel() == 0:
                continue
            levels = torch.cat([start[row].double().reshape(1), accuracy[row, positions].double()])
            gains = (levels[1:] - levels[:-1]).tolist()  # d_k
            steps[row, positions] = torch.tensor(self.propagate(gains), dtype=torch.float64, device=steps.device)
        steps = steps.to(dtype)
        base = state.token_rewards if state.token_rewards is not None else torch.zeros_like(steps)
        return state.update(token_rewards=base + steps).add_metrics(
            **{"vsrm/step_reward": steps[ends].mean() if bool(ends.any()) else steps.sum(),
               "vsrm/steps": ends.sum(-1).float().mean()})
