r"""RLFR's flow reward: a velocity field on the policy's latents, the reward from its velocity deviation.

"RLFR: Extending Reinforcement Learning for LLMs with Flow Environment" (2025). The choices below follow the authors' code, github.com/Jinghaoleven/RLFR at
commit 1589879eedd2a61917e387e6119f3e3519729989 (``openrlhf/openrlhf/models/actor_flow.py``,
``openrlhf/openrlhf/models/lmm_kits/flow_simple.py``, ``openrlhf/openrlhf/models/utils.py``,
``openrlhf/scripts/train_ray_RLFR_lm_qwen2.5_1.5B.sh``, ``LLaMA-Factory/src/llamafactory/model/
flow_model/flow_simple.py``):

* **latents**: the outputs of the decoder layers at the depth fractions ``0.25, 0.5, 0.75``
  (layer ``round(p L)``, the last layer when that is ``L``), each token's latent conditioned on
  the previous token's latent at the same layer (the authors' ``flow_context_mode: token_post``,
  shift 1) and on the layer's depth fraction; the score of a token is the mean over the layers;
* **timesteps**: the deviation at ``t = 0.8`` (``--rewarding_timesteps``), weighted by the
  authors' debias factor $t / (1 - t)$; the field is fitted with $t$ drawn logit-normal,
  $t = \mathrm{sigmoid}(u)$, $u \sim \mathcal N(0, 1)$;
* **mixing**: per response, the scores are min-max normalised over its tokens, those
  $\le$ ``threshold`` (0.6) are zeroed and only the ``top_k`` (15) largest kept; each kept token
  gets the token reward $-c\, s_k$ (``coef`` $c$ = 0.01), added to the verifier's outcome reward
  (the authors add it to the per-token rewards next to the outcome reward on the last token).

What differs: the field is a small MLP of $[x_t, z_{k-1}, t, \ell]$ (the authors use a DiT-style
residual MLP with adaptive layer norm, as wide as the policy); it is fitted on the reference
responses of the batches (the authors pre-train it offline on reference data, then keep
updating it on correct rollouts); and the advantage is the objective's: with ``group_zscore`` the
token rewards enter through the sequence sum (rlobj's :func:`sequence_rewards`), whereas the
authors group-normalise the outcome alone and add the flow rewards as returns-to-go (the
``batch_whiten`` family of rlobj reads token rewards that way).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.train.stages import Batch, Score, Scorer

__all__ = ["FlowReward", "VelocityField", "velocity_deviation", "flow_token_rewards", "flow_layers"]


class VelocityField(torch.nn.Module):
    r"""A small velocity field $v_\theta(x, t \mid c, \ell)$ on latents: an MLP of
    $[x; c; t; \ell]$ (``cond_dim`` = 0: no context $c$; ``hidden=0``: one linear map)."""

    def __init__(self, dim: int, hidden: int = 64, cond_dim: int = 0):
        super().__init__()
        inputs = dim + cond_dim + 2
        self.cond_dim = cond_dim
        if hidden == 0:
            self.net = torch.nn.Linear(inputs, dim)
        else:
            self.net = torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.SiLU(),
                                           torch.nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, layer: float | Tensor = 0.0) -> Tensor:
        rows = x.shape[0]
        parts = [x]
        if self.cond_dim:
            if cond is None:
                raise RlobjInputError("VelocityField: this field is conditioned on the previous latent (cond)")
            parts.append(cond.to(x.dtype))
        parts.append(torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1).expand(rows, 1))
        parts.append(torch.as_tensor(layer, dtype=x.dtype).reshape(-1, 1).expand(rows, 1))
        return self.net(torch.cat(parts, dim=-1))


def velocity_deviation(field: torch.nn.Module, z: Tensor, noise: Tensor, times: Sequence[float],
                       cond: Tensor | None = None, layer: float = 0.0) -> Tensor:
    r"""RLFR's debiased velocity deviation of latents ``z`` (``[n, d]``) in the flow ``field``.

    On the straight path $x_t = t\,z + (1 - t)\,\varepsilon$ from noise $\varepsilon$ (``noise``)
    the target velocity is $z - \varepsilon$; the deviation averages over the timesteps $T$ the
    squared error weighted by the authors' debias factor $t / (1 - t)$,

    $$ D(z) = \frac{1}{|T|} \sum_{t \in T} \frac{t}{1-t}\,\frac1d
       \big\| v_\theta(x_t, t \mid c, \ell) - (z - \varepsilon) \big\|^2 . $$

    Example:
        >>> import torch
        >>> field = VelocityField(1, hidden=0)
        >>> _ = torch.nn.init.zeros_(field.net.weight), torch.nn.init.zeros_(field.net.bias)
        >>> velocity_deviation(field, torch.tensor([[1.0]]), torch.tensor([[0.0]]), (0.5,)).tolist()
        [1.0]
    """
    if not times or not all(0.0 < float(t) < 1.0 for t in times):
        raise RlobjInputError(f"velocity_deviation.times: expected timesteps in (0, 1), got {list(times)!r}")
    total = torch.zeros(z.shape[0], dtype=z.dtype)
    for t in times:
        t = float(t)
        x = t * z + (1 - t) * noise
        error = ((field(x, torch.tensor(t), cond, layer) - (z - noise)) ** 2).mean(-1)
        total = total + t / (1 - t) * error
    return total / len(times)


def flow_token_rewards(scores: Tensor, coef: float, threshold: float | None = 0.6, top_k: int | None = 15,
                       normalize: bool = True) -> Tensor:
    r"""Token rewards from one response's flow scores ``[L]`` (the authors' post-processing).

    $s \leftarrow (s - \min s) / (\max s - \min s)$ (``normalize``; all 0 when the scores are
    equal), then $s_k \leftarrow 0$ where $s_k \le$ ``threshold``, then, when at least ``top_k``
    scores are non-zero, only the ``top_k`` largest are kept; the reward is $-c\,s$.

    Example:
        >>> import torch
        >>> flow_token_rewards(torch.tensor([1.0, 3.0, 2.0, 5.0]), coef=0.5, threshold=0.4, top_k=1).tolist()
        [-0.0, -0.0, -0.0, -0.5]
    """
    s = scores.double()
    if normalize:
        low, high = s.min(), s.max()
        s = (s - low) / (high - low) if float(high - low) > 0 else torch.zeros_like(s)
    if threshold is not None:
        s = torch.where(s > threshold, s, torch.zeros_like(s))
    if top_k is not None and int((s != 0).sum()) >= top_k:
        kept = torch.zeros_like(s)
        values, index = torch.topk(s, top_k)
        s = kept.scatter(0, index, values)
    return (-float(coef) * s).to(scores.dtype)


def flow_layers(fractions: Sequence[float], num_layers: int) -> list[int]:
    """Decoder layers hooked at depth ``fractions`` (the authors' rule: ``round(p * L)``, ``L - 1``
    when that is ``L``).

    Example:
        >>> flow_layers((0.25, 0.5, 0.75), 28)
        [7, 14, 21]
    """
    out = []
    for p in fractions:
        layer = round(float(p) * num_layers)
        out.append(num_layers - 1 if layer == num_layers else layer)
    return out


def _check(value, name: str, low: float, high: float | None = None, integer: bool = False, allow_none=False):
    if value is None and allow_none:
        return
    bad = isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
    if bad or not value >= low or (high is not None and not value <= high) or (not integer and not math.isfinite(value)):
        kind = "an int" if integer else "a number"
        raise RlobjInputError(f"FlowReward.{name}: expected {kind} >= {low}{'' if high is None else f' and <= {high}'}"
                              f", got {value!r}")


class FlowReward(Scorer):
    r"""RLFR's flow reward (module docstring: the authors' choices and what differs).

    A :class:`VelocityField` is fitted by flow matching (``fit_steps`` Adam steps) on the
    policy's latents of the reference responses ``record[reference_key]`` seen so far (first
    batch; again every ``refit_every`` steps). Each response token $k$ gets the score
    $s_k = \mathrm{mean}_\ell D(z^\ell_k)$ (:func:`velocity_deviation` at the layers
    :func:`flow_layers`, noise from a generator seeded by the run seed, step and row), turned
    into ``Score.token_rewards`` by :func:`flow_token_rewards`. ``Score.reward`` is the
    ``verifier``'s outcome reward (0 without one).

    Args:
        reference_key: the record key of the reference (expert) response.
        layers: depth fractions of the hooked decoder layers.
        context: condition each latent on the previous token's latent (``token_post``).
        hidden: the velocity MLP width.
        times: rewarding timesteps, in (0, 1).
        coef, threshold, top_k, normalize: the token reward (:func:`flow_token_rewards`;
            ``threshold``/``top_k`` None switch that step off).
        fit_steps, lr: flow-matching fit.
        refit_every: refit on the references seen so far every this many steps (0: fit once).
        seed: seed of the fit and of the scoring noise.
        verifier: the outcome reward ``verifier(completion, record)`` (a callable or
            ``{class_path, init_args}``), e.g. :class:`~rlobj.data.tasks.ExactAnswer`.
    """

    def __init__(self, reference_key: str = "completion", layers: Sequence[float] = (0.25, 0.5, 0.75),
                 context: bool = True, hidden: int = 64, times: Sequence[float] = (0.8,), coef: float = 0.01,
                 threshold: float | None = 0.6, top_k: int | None = 15, normalize: bool = True,
                 fit_steps: int = 100, lr: float = 1e-2, refit_every: int = 0, seed: int = 0, verifier: Any = None):
        if not layers or not all(isinstance(p, (int, float)) and 0.0 <= p <= 1.0 for p in layers):
            raise RlobjInputError(f"FlowReward.layers: expected depth fractions in [0, 1], got {layers!r}")
        if not times or not all(isinstance(t, (int, float)) and 0.0 < t < 1.0 for t in times):
            raise RlobjInputError(f"FlowReward.times: expected timesteps in (0, 1), got {times!r}")
        _check(coef, "coef", 0.0)
        _check(threshold, "threshold", 0.0, 1.0, allow_none=True)
        _check(top_k, "top_k", 1, integer=True, allow_none=True)
        _check(hidden, "hidden", 0, integer=True)
        _check(fit_steps, "fit_steps", 1, integer=True)
        _check(refit_every, "refit_every", 0, integer=True)
        self.reference_key, self.layers, self.context, self.hidden = reference_key, tuple(layers), bool(context), hidden
        self.times, self.coef, self.threshold, self.top_k = tuple(times), float(coef), threshold, top_k
        self.normalize, self.fit_steps, self.lr = bool(normalize), fit_steps, lr
        self.refit_every, self.seed = refit_every, seed
        self.verifier = None
        if verifier is not None:
            from rlobj.train.scorers import VerifierScorer

            self.verifier = VerifierScorer(verifier)
        self.field: VelocityField | None = None
        self.references: list[tuple[Tensor, Tensor, Tensor]] = []
        self.fitted_at: int | None = None
        self.name = "flow"

    def state_dict(self) -> dict:
        """The fitted field, the reference latents and the fit step (saved in checkpoints)."""
        return {"field": None if self.field is None else self.field.state_dict(), "references": list(self.references),
                "fitted_at": self.fitted_at}

    def load_state_dict(self, state: dict) -> None:
        self.references, self.fitted_at = [tuple(r) for r in state["references"]], state["fitted_at"]
        self.field = None
        if state["field"] is not None:
            dim = self.references[0][0].shape[-1]
            self.field = VelocityField(dim, self.hidden, dim if self.context else 0)
            self.field.load_state_dict(state["field"])
            self.field.requires_grad_(False)

    def latents(self, ctx, contexts: list[list[int]], targets: list[list[int]]) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per target: ``(z, cond, layer)``: ``[n_layers, len, d]`` latents of its tokens, the
        previous token's latents, and the layers' depth fractions ``[n_layers]`` (policy, no grad)."""
        from rlobj.rollout import left_pad_prompts

        policy = ctx.models.policy
        device = next(policy.parameters()).device
        total = int(policy.config.num_hidden_layers)
        hooked = flow_layers(self.layers, total)
        fractions = torch.tensor([h / total for h in hooked])
        out = []
        was_training = policy.training
        policy.eval()
        try:
            for context, target in zip(contexts, targets):
                ids, mask = left_pad_prompts([context + target], ctx.pad_token_id, int(policy.config.vocab_size))
                states = policy(input_ids=ids.to(device), attention_mask=mask.long().to(device),
                                output_hidden_states=True).hidden_states
                per_layer = torch.stack([states[h + 1][0] for h in hooked]).float().cpu()  # decoder layer h output
                start = per_layer.shape[1] - len(target)
                out.append((per_layer[:, start:], per_layer[:, start - 1:-1], fractions))
        finally:
            policy.train(was_training)
        return out

    def _rows(self, triples) -> tuple[Tensor, Tensor, Tensor]:
        z = torch.cat([t[0].reshape(-1, t[0].shape[-1]) for t in triples])
        cond = torch.cat([t[1].reshape(-1, t[1].shape[-1]) for t in triples])
        layer = torch.cat([t[2][:, None].expand(-1, t[0].shape[1]).reshape(-1) for t in triples])
        return z, cond, layer

    def fit(self, triples: list[tuple[Tensor, Tensor, Tensor]]) -> None:
        """Fit the velocity field by flow matching on reference latents (t logit-normal)."""
        z, cond, layer = self._rows(triples)
        generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            self.field = VelocityField(z.shape[-1], self.hidden, z.shape[-1] if self.context else 0)
        optimizer = torch.optim.Adam(self.field.parameters(), lr=self.lr)
        for _ in range(self.fit_steps):
            noise = torch.randn(z.shape, generator=generator)
            t = torch.sigmoid(torch.randn(z.shape[0], 1, generator=generator))
            x = t * z + (1 - t) * noise
            loss = ((self.field(x, t, cond if self.context else None, layer) - (z - noise)) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        self.field.requires_grad_(False)

    def token_scores(self, z: Tensor, cond: Tensor, layer: Tensor, generator: torch.Generator) -> Tensor:
        """$s_k$: the deviation averaged over the layers, ``[len]``."""
        per_layer = []
        for i in range(z.shape[0]):
            noise = torch.randn(z[i].shape, generator=generator)
            per_layer.append(velocity_deviation(self.field, z[i], noise, self.times,
                                                cond[i] if self.context else None, float(layer[i])))
        return torch.stack(per_layer).mean(0)

    @torch.no_grad()
    def __call__(self, ctx, batch: Batch) -> list[Score]:
        from rlobj.train.providers.scores import row_generator

        rollout = batch.rollout
        prompts = [rollout.prompt_ids[b][rollout.prompt_mask[b].bool()].tolist() for b in range(len(batch))]
        responses = [rollout.response_ids[b][rollout.response_mask[b].bool()].tolist() for b in range(len(batch))]
        refit = self.field is None or (self.refit_every and ctx.step - (self.fitted_at or 0) >= self.refit_every)
        if refit:
            seen = {}
            for b, record in enumerate(batch.records):
                if self.reference_key not in record:
                    raise RlobjInputError(f"FlowReward.reference_key: record {b} has no key {self.reference_key!r}")
                seen.setdefault(record["prompt"], (prompts[b], list(ctx.encode(str(record[self.reference_key])))))
            contexts, targets = zip(*seen.values())
            self.references.extend(self.latents(ctx, list(contexts), list(targets)))
            with torch.enable_grad():
                self.fit(self.references)
            self.fitted_at = ctx.step
        outcome = self.verifier(ctx, batch) if self.verifier is not None else [Score(0.0)] * len(batch)
        scores, deviations, kept = [], [], []
        for b, (z, cond, layer) in enumerate(self.latents(ctx, prompts, responses)):
            raw = self.token_scores(z, cond, layer, row_generator(self.seed, ctx.seed, ctx.step, b))
            token = flow_token_rewards(raw, self.coef, self.threshold, self.top_k, self.normalize)
            deviations.append(float(raw.mean()))
            kept.append(float((token != 0).sum()))
            scores.append(Score(reward=outcome[b].reward, token_rewards=token.tolist(),
                                fields={**outcome[b].fields, "flow_deviation": deviations[-1]}))
        rows = max(len(scores), 1)
        batch.metrics["flow/reward_mean"] = sum(sum(s.token_rewards) for s in scores) / rows
        batch.metrics["flow/deviation_mean"] = sum(deviations) / rows
        batch.metrics["flow/tokens_rewarded"] = sum(kept) / rows
        return scores

    def close(self) -> None:
        if self.verifier is not None:
            self.verifier.close()
