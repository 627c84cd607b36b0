"""The sync stage: the policy's new weights into the generation engine (Hugging Face names)."""

__all__ = ["push_weights"]


def push_weights(policy, engine) -> None:
    """Load ``policy``'s current weights into ``engine`` (``engine.update_weights``).

    Under FSDP (v1) the full parameters are gathered first (``summon_full_params``) and the
    wrapper prefixes are stripped from the names. The HF engine shares the policy module, so its
    update is a no-op. A LoRA policy pushes merged weights
    (:func:`rlobj.train.adapters.merged_weights`). (The FSDP path is not exercised by the CPU test suite.)
    """
    if engine is None or getattr(engine, "model", None) is policy:
        return  # no engine, or one that samples from the policy module itself
    from rlobj.train.adapters import is_lora, merged_weights

    if is_lora(policy):  # LoRA: the base plus the adapters' deltas, under the base model's names
        engine.update_weights(merged_weights(policy))
        return
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    except ImportError:  # pragma: no cover - torch without distributed
        FSDP = None
    if FSDP is not None and any(isinstance(m, FSDP) for m in policy.modules()):
        with FSDP.summon_full_params(policy, writeback=False):
            named = [(name.replace("_fsdp_wrapped_module.", ""), p.detach()) for name, p in policy.named_parameters()]
            engine.update_weights(named)
        return
    engine.update_weights(policy.named_parameters())
