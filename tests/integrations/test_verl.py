"""rlobj chains registered in verl (real verl 0.9.1, CPU): loss, gradient and advantages equal
verl's own functions from ``verl.trainer.ppo.core_algos`` in float64 within 1e-6."""

import sys

import numpy as np
import pytest
import torch

core_algos = pytest.importorskip("verl.trainer.ppo.core_algos")
from verl.workers.config import ActorConfig, PolicyLossConfig  # noqa: E402

from rlobj import (  # noqa: E402
    batch_whiten,
    clip_cov,
    clip_ratio,
    clipped_weight_pg,
    geometric_clip,
    group_baseline_whiten,
    group_mean_baseline,
    group_zscore,
    kl_cov,
    leave_one_out,
    seq_mean_token_mean,
    sequence_clip,
    soft_gate,
)
from rlobj.integrations.verl import LOSS_AGG_MODES, register  # noqa: E402
from rlobj.ops.errors import RlobjInputError  # noqa: E402

B, T = 10, 7


def _batch(seed=0, empty_row=True):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 3, 5, 1, 6, 7, 2, 4, 7, 5])
    mask = (torch.arange(T)[None, :] < lengths[:, None]).double()
    if empty_row:  # a fully masked row: verl leaves it out of the sequence counts
        mask[3] = 0.0
    old = -torch.rand(B, T, generator=gen, dtype=torch.float64) * 2 - 0.1
    logp = (old + 0.4 * torch.randn(B, T, generator=gen, dtype=torch.float64)).clamp(max=-0.01).requires_grad_()
    advantages = torch.randn(B, T, generator=gen, dtype=torch.float64) * mask
    advantages[:, :] = advantages[:, :1]  # one advantage per sequence
    return old, logp, advantages * mask, mask


def _actor(**fields):
    config = ActorConfig(strategy="fsdp", ppo_mini_batch_size=4, ppo_micro_batch_size_per_gpu=4,
                         use_dynamic_bsz=False, rollout_n=1, **fields)
    return config


def _run(fn, old, logp, advantages, mask, mode, config, metrics=None):
    logp.grad = None
    torch.manual_seed(1234)  # clip_cov draws with torch's global generator (rlobj: seed=None)
    loss, reported = fn(old_log_prob=old, log_prob=logp, advantages=advantages, response_mask=mask,
                        loss_agg_mode=mode, config=config)
    loss.backward()
    if metrics is not None:
        metrics.update(reported)
    return loss.detach(), logp.grad.clone()


LOSSES = [  # (verl loss_mode, actor fields, rlobj chain without aggregation)
    ("vanilla", {}, clip_ratio(eps_low=0.2, eps_high=0.2, dual_clip=3.0)),
    ("vanilla clip-higher 0.2/0.28, dual clip 3", {"clip_ratio_low": 0.2, "clip_ratio_high": 0.28},
     clip_ratio(eps_low=0.2, eps_high=0.28, dual_clip=3.0)),
    ("vanilla dual clip 10", {"clip_ratio_c": 10.0}, clip_ratio(eps_low=0.2, eps_high=0.2, dual_clip=10.0)),
    ("gspo", {"clip_ratio_low": 3e-4, "clip_ratio_high": 4e-4},
     sequence_clip(eps_low=3e-4, eps_high=4e-4, token_level=True)),
    ("cispo", {"clip_ratio_low": 1.0, "clip_ratio_high": 0.28}, clipped_weight_pg(eps_low=1.0, eps_high=0.28)),
    # verl's sapo always aggregates with seq-mean-token-mean, whatever loss_agg_mode says
    ("sapo", {}, soft_gate(tau_pos=1.0, tau_neg=1.05) >> seq_mean_token_mean()),
    # verl's geo_mean has one loss per sequence and averages them, whatever loss_agg_mode says
    ("geo_mean", {"clip_ratio_low": 0.4, "clip_ratio_high": 0.4}, geometric_clip(eps=0.4) >> seq_mean_token_mean()),
    # verl computes the covariance selection per call (micro-batch): scope="micro_batch"
    ("clip_cov", {"policy_loss": PolicyLossConfig(loss_mode="clip_cov", clip_cov_ratio=0.1, clip_cov_lb=0.05,
                                                  clip_cov_ub=5.0)},
     clip_cov(ratio=0.1, cov_low=0.05, cov_high=5.0, eps_low=0.2, eps_high=0.2, seed=None,  # verl: actor clip_ratio 0.2
              scope="micro_batch")),
    ("kl_cov", {"policy_loss": PolicyLossConfig(loss_mode="kl_cov", kl_cov_ratio=0.1, ppo_kl_coef=0.5)},
     kl_cov(ratio=0.1, beta=0.5, scope="micro_batch")),
]
CASES = [(name, fields, chain, mode) for name, fields, chain in LOSSES for mode in LOSS_AGG_MODES]


@pytest.mark.parametrize("name, fields, chain, mode", CASES, ids=[f"{c[0]}|{c[3]}" for c in CASES])
def test_policy_loss_matches_verl(name, fields, chain, mode):
    peer_name = name.split()[0]
    ours_name = f"rlobj_test_{abs(hash((name, mode)))}"
    register(ours_name, chain, advantage=False)
    # rlobj's sequence-level ratios refuse a row without tokens (verl divides by 1e-8 there)
    old, logp, advantages, mask = _batch(empty_row=peer_name not in ("gspo", "geo_mean"))
    for dp, info in ((1, {}), (2, {"dp_size": 2, "batch_num_tokens": 2 * int(mask.sum()),
                                   "global_batch_size": 2 * int(mask.any(-1).sum())})):
        config = _actor(**fields)
        config.global_batch_info.update(info)
        loss_peer, grad_peer = _run(core_algos.get_policy_loss_fn(peer_name), old, logp, advantages, mask, mode, config)
        metrics = {}
        loss_ours, grad_ours = _run(core_algos.get_policy_loss_fn(ours_name), old, logp, advantages, mask, mode,
                                    config, metrics)
        if peer_name in ("clip_cov", "kl_cov"):  # not vacuous: the covariance selection picked tokens
            assert metrics[f"rlobj/{peer_name}/frac"] > 0
        loss_error = float((loss_peer - loss_ours).abs())
        grad_error = float((grad_peer - grad_ours).abs().max())
        print(f"PARITY verl | {name} | {mode} | dp_size {dp} | loss {float(loss_peer):.6f} | "
              f"max|dloss| {loss_error:.2e} | max|dgrad| {grad_error:.2e}")
        assert float(grad_peer.abs().max()) > 0
        assert loss_error < 1e-6 and grad_error < 1e-6


def _rewards_and_index(singletons: bool):
    gen = torch.Generator().manual_seed(3)
    index = np.array(["a"] * 4 + ["b"] * 4 + (["c", "d"] if singletons else ["c"] * 2), dtype=object)
    lengths = torch.tensor([5, 3, 6, 2, 6, 6, 1, 4, 6, 3])
    mask = (torch.arange(6)[None, :] < lengths[:, None]).double()
    scores = torch.randint(0, 3, (10,), generator=gen).double()
    token_level = torch.zeros(10, 6, dtype=torch.float64)
    token_level[torch.arange(10), lengths - 1] = scores
    return token_level, mask, index


class _Algo(dict):
    def __getattr__(self, key):
        return self[key]


ADVANTAGES = [  # (verl estimator, rlobj term, singleton groups in the batch)
    ("grpo", group_zscore(eps=1e-6), False),
    ("grpo", group_zscore(eps=1e-6, singleton="verl"), True),
    ("grpo (norm_adv_by_std_in_grpo=False)", group_mean_baseline(singleton="verl"), True),
    ("rloo", leave_one_out(), False),
    ("rloo", leave_one_out(singleton="verl"), True),
    ("reinforce_plus_plus", batch_whiten(unbiased=True), False),
    ("reinforce_plus_plus_baseline", group_baseline_whiten(unbiased=True), False),
    ("reinforce_plus_plus_baseline", group_baseline_whiten(unbiased=True, singleton="verl"), True),
]


@pytest.mark.parametrize("name, term, singletons", ADVANTAGES, ids=[f"{a[0]}|singletons={a[2]}" for a in ADVANTAGES])
def test_advantages_match_verl(name, term, singletons):
    token_level, mask, index = _rewards_and_index(singletons)
    ours_name = f"rlobj_adv_{abs(hash((name, repr(term), singletons)))}"
    register(ours_name, term, policy_loss=False)
    peer = core_algos.get_adv_estimator_fn(name.split()[0])
    kwargs = dict(token_level_rewards=token_level.clone(), response_mask=mask, index=index,
                  config=_Algo(gamma=1.0))
    if "norm_adv_by_std_in_grpo=False" in name:
        kwargs["norm_adv_by_std_in_grpo"] = False
    expected, _ = peer(**kwargs)
    got, _ = core_algos.get_adv_estimator_fn(ours_name)(token_level_rewards=token_level.clone(), response_mask=mask,
                                                         index=index, config=_Algo(gamma=1.0))
    error = float((expected - got).abs().max())
    print(f"PARITY verl | advantage {name} | {term!r} | singletons {singletons} | max|dA| {error:.2e}")
    assert float(expected.abs().max()) > 0 and error < 1e-6


def test_population_variance_differs_from_verl():
    """The default (population variance, OpenRLHF) is not verl's: the option is what matches."""
    token_level, mask, index = _rewards_and_index(False)
    register("rlobj_rpp_population", batch_whiten(), policy_loss=False)
    expected, _ = core_algos.get_adv_estimator_fn("reinforce_plus_plus")(
        token_level_rewards=token_level, response_mask=mask, config=_Algo(gamma=1.0))
    got, _ = core_algos.get_adv_estimator_fn("rlobj_rpp_population")(
        token_level_rewards=token_level, response_mask=mask, index=index, config=_Algo(gamma=1.0))
    assert float((expected - got).abs().max()) > 1e-3


def test_yaml_name_resolves_through_external_module(tmp_path, monkeypatch):
    """verl imports the user's module named in VERL_USE_EXTERNAL_MODULES when ``verl`` is imported
    (re-run here by reloading the package); the registered names then resolve."""
    import importlib

    import verl

    (tmp_path / "my_rlobj_objectives.py").write_text(
        "from rlobj import grpo\nfrom rlobj.integrations.verl import register\nregister('rlobj_grpo', grpo)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("VERL_USE_EXTERNAL_MODULES", "my_rlobj_objectives")
    with pytest.raises(ValueError):
        core_algos.get_policy_loss_fn("rlobj_grpo")
    importlib.reload(verl)
    assert core_algos.get_policy_loss_fn("rlobj_grpo").__name__ == "rlobj_policy_loss"
    assert core_algos.get_adv_estimator_fn("rlobj_grpo").__name__ == "rlobj_advantage"
    sys.modules.pop("my_rlobj_objectives", None)


def test_register_refuses_what_verl_cannot_feed():
    from rlobj import forward_kl, grpo

    with pytest.raises(RlobjInputError, match="vocab_ref"):
        register("rlobj_bad", grpo >> forward_kl(0.01))
    with pytest.raises(RlobjInputError, match="name"):
        register("", grpo)
    register("rlobj_rollout_is", grpo, advantage=False)
    old, logp, advantages, mask = _batch()
    with pytest.raises(RlobjInputError, match="rollout_is_weights"):
        core_algos.get_policy_loss_fn("rlobj_rollout_is")(old, logp, advantages, mask, "token-mean", _actor(),
                                                         torch.ones_like(mask))
