r"""Per-position temperature schedules (EAD) inside vLLM's v1 sampler (imported only with vLLM).

Exploratory Annealed Decoding (Yang et al., arXiv 2510.05251) divides the logits of response
position $t$ by $\tau_t$ (:class:`~rlobj.rollout.schedules.TemperatureSchedule`). In vLLM 0.32 the
v1 sampler runs, for random sampling: logits (float32) -> non-argmax-invariant processors ->
``/ T`` (``SamplingParams.temperature``) -> **argmax-invariant processors** -> top-k / top-p ->
sample, and ``logprobs_mode="processed_logprobs"`` reports the log-softmax of the logits after
top-k / top-p. :class:`ScheduleLogitsProcessor` is an argmax-invariant processor (dividing by
$\tau_t > 0$ never changes the arg-max), so it runs right after the temperature and before top-k /
top-p: the sampled distribution is $\propto \exp(z_v / (T \tau_t))$ on the kept set, exactly the
one ``HFEngine`` samples and :func:`~rlobj.rollout.engine.sampling_logprobs` describes, and the
reported log-probs are those of it.

The processor is registered once when the engine is built (``vllm.LLM(...,
logits_processors=[ScheduleLogitsProcessor])``) and reads each request's schedule from
``SamplingParams.extra_args[SCHEDULE_KEY]`` (the plain-data :meth:`TemperatureSchedule.to_dict`
form); requests without it are untouched. The position $t$ of the token being sampled is the
length of the request's running list of output tokens (vLLM hands the processor a reference to
that list when the request joins the batch).
"""

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from rlobj.rollout.schedules import TemperatureSchedule, schedule_from_dict

__all__ = ["SCHEDULE_KEY", "ScheduleLogitsProcessor"]

#: key of ``SamplingParams.extra_args`` holding a ``TemperatureSchedule.to_dict()``
SCHEDULE_KEY = "rlobj_temperature_schedule"


def _schedule_of(params: SamplingParams) -> TemperatureSchedule | None:
    extra = params.extra_args or {}
    data = extra.get(SCHEDULE_KEY)
    if data is None:
        return None
    try:
        return schedule_from_dict(dict(data))
    except (TypeError, ValueError) as error:
        raise ValueError(f"SamplingParams.extra_args[{SCHEDULE_KEY!r}]: {error}") from error


class ScheduleLogitsProcessor(LogitsProcessor):
    r"""Divide each scheduled request's logits by $\tau_t$ at response position $t$ (argmax-invariant)."""

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams):
        schedule = _schedule_of(sampling_params)
        if schedule is not None and sampling_params.temperature < 1e-5:
            raise ValueError(
                f"SamplingParams.extra_args[{SCHEDULE_KEY!r}]: a temperature schedule needs random "
                "sampling (temperature > 0); greedy requests skip argmax-invariant processors")

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool) -> None:
        self.device = device
        # batch index -> (schedule, reference to the request's running output token list)
        self.requests: dict[int, tuple[TemperatureSchedule, list[int]]] = {}

    def is_argmax_invariant(self) -> bool:
        """Dividing logits by a positive number keeps the arg-max."""
        return True

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        def new_state(params, prompt_ids, output_ids):
            schedule = _schedule_of(params)
            return None if schedule is None else (schedule, output_ids)

        process_dict_updates(self.requests, batch_update, new_state)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.requests:
            return logits
        by_schedule: dict[TemperatureSchedule, tuple[list[int], list[int]]] = {}
        for index, (schedule, output_ids) in self.requests.items():
            if index >= logits.shape[0]:
                continue
            rows, positions = by_schedule.setdefault(schedule, ([], []))
            rows.append(index)
            positions.append(len(output_ids))
        for schedule, (rows, positions) in by_schedule.items():
            tau = schedule.temperatures(torch.tensor(positions, dtype=torch.long))
            index = torch.tensor(rows, dtype=torch.long, device=logits.device)
            logits[index] = logits[index] / tau.to(device=logits.device, dtype=logits.dtype).unsqueeze(-1)
        return logits
