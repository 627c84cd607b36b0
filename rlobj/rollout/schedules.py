r"""Per-position sampling-temperature schedules, applied inside the engines' sampling step.

A schedule maps the 0-based position $t$ of a response token (relative to the response start)
to a temperature multiplier $\tau_t > 0$. The engine divides that step's logits by $\tau_t$ and
then applies its own ``SamplingConfig.temperature`` $T$, top-k and top-p, so the sampled
distribution is
$$ \pi_{\text{sample}, t}(v) \propto \exp\big(z_{t,v} / (\tau_t T)\big)\,[v \in K_t] $$
and ``RolloutBatch.logp_rollout`` reports $\log \pi_{\text{sample}, t}$ of each sampled token: the
distribution actually sampled, per-position temperature included.

Exploratory Annealed Decoding (EAD): Yang et al., "Let it Calm: Exploratory Annealed Decoding
for Verifiable Reinforcement Learning", arXiv 2510.05251. Reference code
github.com/yangalan123/EAD-RLVR @ 1d7e156 (vLLM logits processor, ``negexp`` mode).

Training on annealed samples: the objective sees the engine's $\log\pi_\text{sample}$ as
``extras['logp_rollout']`` (the trainer puts it there), while ``logp_old`` is recomputed by the
trainer at the plain temperature $T$ (the EAD reference default: the mismatch is ignored). The
reference code's optional truncated importance-sampling correction
$w_t = \min(\pi_\text{old}(y_t)/\pi_\text{sample}(y_t), C)$ (``imp_ratio_cap``) is exactly
:class:`rlobj.truncated_is` (``grpo >> truncated_is(cap=C)``), which reads those two fields. The
other reference option (``old_policy_temperature_correction``: recompute ``logp_old`` with the
same per-position temperatures) is :func:`scheduled_sequence_logprobs`.

In a training run the schedule is chosen in YAML (``model.sampler: {ead: {schedule: {...}}}``,
:class:`rlobj.train.samplers.EADSampler`) and stepped with the number of RL updates. Both engines
apply it: ``HFEngine`` in its sampling loop, ``VLLMEngine`` through the per-request logits
processor :class:`rlobj.rollout.vllm_ead.ScheduleLogitsProcessor`.
"""

import math
from dataclasses import asdict, dataclass, replace

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rlobj.ops.typecheck import typechecked
from rlobj.rollout.logprobs import response_logits

__all__ = [
    "TemperatureSchedule",
    "ConstantTemperature",
    "EADSchedule",
    "ead_temperatures",
    "schedule_from_dict",
    "scheduled_sequence_logprobs",
]


def _check_number(owner: str, name: str, value, *, low: float | None = None,
                  low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        relation = ">" if low_open else ">="
        raise ValueError(f"{owner}.{name} must be {relation} {low}, got {value!r}")


def _check_int(owner: str, name: str, value, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}.{name} must be an int >= {low}, got {value!r}")


@dataclass(frozen=True)
class TemperatureSchedule:
    r"""Base class: a pure map from response positions $t$ to temperature multipliers $\tau_t$.

    Subclasses are frozen dataclasses (they pickle, compare by value and travel inside a frozen
    ``SamplingConfig``) and implement :meth:`temperatures`.
    """

    def temperatures(self, positions: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
        """float64 $\\tau_t$ for each 0-based response position (>= 0)."""
        raise TypeError(f"{type(self).__name__} must implement temperatures(positions)")

    def to_dict(self) -> dict:
        """Plain-data form (``{"kind": ..., **fields}``), e.g. for vLLM's per-request args."""
        return {"kind": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class ConstantTemperature(TemperatureSchedule):
    r"""$\tau_t = c$ at every position (``value`` $c > 0$, default 1.0: sampling unchanged)."""

    value: float = 1.0

    def __post_init__(self) -> None:
        _check_number("ConstantTemperature", "value", self.value, low=0.0, low_open=True)

    def temperatures(self, positions: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
        return torch.full(positions.shape, float(self.value), dtype=torch.float64,
                          device=positions.device)


@dataclass(frozen=True)
class EADSchedule(TemperatureSchedule):
    r"""Exploratory Annealed Decoding: explore at the beginning, exploit at the end.

    For response position $t$ (0-based) at training step $s$:
    $$ \tau_t = \begin{cases} 1 & t < c \\
       \max\big(1 + \tau_\max - e^{t / d_s},\ \tau_\min\big) & t \ge c \end{cases},\qquad
       d_s = \lambda \cdot \min(d_0 + \kappa s,\ d_\text{cap}). $$

    Yang et al., arXiv 2510.05251 (README formula; reference recipe
    ``recipe/ead/run_annealed_sampling.sh``). Defaults are the reference run:
    $\tau_\max = 1.2$ (``exploration_temp``), $\tau_\min = 0.1$ (``stability_temp``),
    $c = 10$ warm-up tokens, $d_0 = 25$ (``decay_freq``), $\kappa = 5$ per training step,
    $d_\text{cap} = 40000$. The reference *rollout* processor divides by $20 d_s$ while the
    paper formula has no factor 20 (a discrepancy of the reference code): ``d_scale``
    $\lambda = 20$ (default) reproduces the rollout, i.e. an effective $d = 500 + 100 s$ tokens
    (then $\tau_t = 1$ near $t \approx 91$ and reaches $\tau_\min$ near $t \approx 371$); use
    ``d_scale=1`` for the paper formula.

    Args:
        tau_max: exploration temperature $\tau_\max > 0$. Default 1.2.
        tau_min: floor $0 < \tau_\min \le \tau_\max$. Default 0.1.
        d0: initial decay length $d_0 > 0$ (tokens, before ``d_scale``). Default 25.
        slope: increase of $d$ per training step $\kappa \ge 0$. Default 5.
        cap: largest $d$ before ``d_scale``, $\ge d_0$. Default 40000.
        warmup: positions $t < c$ keep $\tau_t = 1$. Default 10.
        d_scale: multiplier $\lambda > 0$ of $d_s$. Default 20 (reference rollout).
        step: training step $s \ge 0$ (use :meth:`at_step` each step). Default 0.

    Example:
        >>> s = EADSchedule()
        >>> s.temperatures(torch.tensor([0, 9, 10, 91, 371, 2000])).round(decimals=3).tolist()
        [1.0, 1.0, 1.18, 1.0, 0.1, 0.1]
    """

    tau_max: float = 1.2
    tau_min: float = 0.1
    d0: float = 25.0
    slope: float = 5.0
    cap: float = 40000.0
    warmup: int = 10
    d_scale: float = 20.0
    step: int = 0

    def __post_init__(self) -> None:
        owner = "EADSchedule"
        _check_number(owner, "tau_max", self.tau_max, low=0.0, low_open=True)
        _check_number(owner, "tau_min", self.tau_min, low=0.0, low_open=True)
        if self.tau_min > self.tau_max:
            raise ValueError(
                f"{owner}: tau_min must be <= tau_max, got tau_min={self.tau_min}, "
                f"tau_max={self.tau_max}")
        _check_number(owner, "d0", self.d0, low=0.0, low_open=True)
        _check_number(owner, "slope", self.slope, low=0.0)
        _check_number(owner, "cap", self.cap, low=0.0, low_open=True)
        if self.cap < self.d0:
            raise ValueError(f"{owner}: cap must be >= d0, got cap={self.cap}, d0={self.d0}")
        _check_int(owner, "warmup", self.warmup)
        _check_number(owner, "d_scale", self.d_scale, low=0.0, low_open=True)
        _check_int(owner, "step", self.step)

    @property
    def decay(self) -> float:
        r"""The effective decay length $d_s = \lambda \min(d_0 + \kappa s, d_\text{cap})$."""
        return float(self.d_scale) * min(float(self.d0) + float(self.slope) * self.step,
                                         float(self.cap))

    def at_step(self, step: int) -> "EADSchedule":
        """The same schedule at training step ``step`` (slower cooling as ``step`` grows)."""
        return replace(self, step=step)

    def temperatures(self, positions: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
        t = positions.to(torch.float64)
        annealed = torch.clamp(1.0 + self.tau_max - torch.exp(t / self.decay), min=self.tau_min)
        return torch.where(t < self.warmup, torch.ones_like(t), annealed)


_KINDS = {"ConstantTemperature": ConstantTemperature, "EADSchedule": EADSchedule}


def schedule_from_dict(data: dict) -> TemperatureSchedule:
    """Rebuild a schedule from :meth:`TemperatureSchedule.to_dict` output."""
    if not isinstance(data, dict) or data.get("kind") not in _KINDS:
        raise ValueError(
            f"schedule_from_dict: expected a dict with kind in {sorted(_KINDS)}, got {data!r}")
    fields = {key: value for key, value in data.items() if key != "kind"}
    return _KINDS[data["kind"]](**fields)


def ead_temperatures(length: int, step: int = 0, tau_max: float = 1.2, tau_min: float = 0.1,
                     d0: float = 25.0, slope: float = 5.0, cap: float = 40000.0,
                     warmup: int = 10, d_scale: float = 20.0) -> Float[Tensor, " seq"]:
    r"""$\tau_0, \dots, \tau_{L-1}$ of :class:`EADSchedule` (same arguments, ``length`` $= L$).

    Example:
        >>> [round(v, 4) for v in ead_temperatures(12, warmup=10).tolist()[9:11]]
        [1.0, 1.1798]
    """
    _check_int("ead_temperatures", "length", length)
    schedule = EADSchedule(tau_max=tau_max, tau_min=tau_min, d0=d0, slope=slope, cap=cap,
                           warmup=warmup, d_scale=d_scale, step=step)
    return schedule.temperatures(torch.arange(length))


def check_schedule(schedule, owner: str = "SamplingConfig.temperature_schedule") -> None:
    """Raise unless ``schedule`` is None or a :class:`TemperatureSchedule`."""
    if schedule is not None and not isinstance(schedule, TemperatureSchedule):
        raise ValueError(
            f"{owner} must be a TemperatureSchedule (e.g. EADSchedule()) or None, got "
            f"{type(schedule).__name__}")


@typechecked
def scheduled_sequence_logprobs(
    model,
    prompt_ids: Int[Tensor, "batch prompt"],
    prompt_mask: Bool[Tensor, "batch prompt"],
    response_ids: Int[Tensor, "batch seq"],
    response_mask: Bool[Tensor, "batch seq"],
    schedule: TemperatureSchedule,
    temperature: float | int = 1.0,
    offsets: Int[Tensor, " batch"] | None = None,
) -> Float[Tensor, "batch seq"]:
    r"""Log-probs of response tokens at per-position temperatures $\tau_t T$ (differentiable).

    $$ \log \pi(y_t) = z_{t, y_t} / (\tau_t T) - \log \sum_v \exp\big(z_{t,v} / (\tau_t T)\big) $$
    with $\tau_t$ from ``schedule`` at response position ``offsets[b] + t`` (``offsets`` default
    0). This is EAD's ``old_policy_temperature_correction`` option (recompute ``logp_old`` with
    the rollout's temperatures) and equals an engine's ``logp_rollout`` under the same schedule
    when top-k and top-p are off. Positions come from the attention mask, as in
    :func:`~rlobj.rollout.logprobs.sequence_logprobs`.
    """
    check_schedule(schedule, "scheduled_sequence_logprobs: schedule")
    if not temperature > 0:
        raise ValueError(f"scheduled_sequence_logprobs: temperature must be > 0, got {temperature!r}")
    if prompt_ids.shape[0] != response_ids.shape[0]:
        raise ValueError(
            f"scheduled_sequence_logprobs: prompt batch {prompt_ids.shape[0]} must equal response "
            f"batch {response_ids.shape[0]}")
    batch, length = response_ids.shape
    logits = response_logits(model, prompt_ids, prompt_mask, response_ids, response_mask).float()
    start = torch.zeros(batch, dtype=torch.long, device=logits.device) if offsets is None \
        else offsets.to(logits.device)
    positions = start.unsqueeze(-1) + torch.arange(length, device=logits.device)
    tau = schedule.temperatures(positions.reshape(-1)).reshape(batch, length).float()
    logp_all = torch.log_softmax(logits / tau.unsqueeze(-1) / temperature, dim=-1)
    logp = logp_all.gather(-1, response_ids.unsqueeze(-1)).squeeze(-1)
    return logp.masked_fill(~response_mask, 0.0)
