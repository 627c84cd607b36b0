"""The generation engine of a run: the HF engine on the policy module, or vLLM (one per rank).

``rollout.engine: hf`` samples from the policy module itself (nothing to sync). ``rollout.engine:
vllm`` starts a colocated ``vllm.LLM`` from ``policy.model_path`` (a directory, or a hub id in
the local cache) or, for a model built here, from a directory rank 0 writes; under data
parallelism every rank drives its own engine through vLLM's external launcher (tensor parallel
ranks of one engine share a seed). A LoRA policy's engine starts from the merged weights.
"""

import copy
import os

import torch

from rlobj.rollout.vision import image_token_ids
from rlobj.train.policies import processor_of

__all__ = ["build_engine"]


def build_engine(module):
    """The engine ``module.cfg.rollout`` asks for, built for ``module``'s policy and tokenizer."""
    from rlobj.rollout import HFEngine

    rollout = module.cfg.rollout
    args = dict(rollout.engine_args or {})
    eos = module.tokenizer.eos_token_id
    pad = module.tokenizer.pad_token_id if module.tokenizer.pad_token_id is not None else eos
    if rollout.engine == "hf":
        processor = processor_of(module.tokenizer)  # rows with images: see rlobj.rollout.vision
        if processor is not None:
            args.setdefault("suppress_token_ids", image_token_ids(module.policy))
        engine = HFEngine(module.policy, eos_token_id=eos, pad_token_id=pad, **args)
        engine.processor = processor
        return engine
    from rlobj.rollout import VLLMEngine, save_model_directory

    world, rank = module.world_size, module.rank
    if world > 1:  # one colocated engine per data-parallel rank, in the trainer's processes
        llm_kwargs = dict(args.get("llm_kwargs") or {})
        llm_kwargs.setdefault("distributed_executor_backend", "external_launcher")
        args["llm_kwargs"] = llm_kwargs
        args.setdefault("seed", rank // int(args.get("tensor_parallel_size", 1)))
        # the launcher reads the torch.distributed environment (Lightning leaves RANK unset on rank 0)
        local = module.local_rank if module._trainer is not None else rank
        for key, value in (("RANK", rank), ("LOCAL_RANK", local), ("WORLD_SIZE", world)):
            os.environ.setdefault(key, str(value))
    path = module.cfg.policy.model_path
    if path is None:
        root = module.trainer.default_root_dir if module._trainer is not None else "."
        source = module.policy
        if module.cfg.policy.lora is not None:  # the engine samples from base + adapters
            source = copy.deepcopy(module.policy).merge_and_unload()
        path = f"{root}/engine_model"
        if rank == 0:  # every rank holds the same initial weights; transformers writes on rank 0 only
            save_model_directory(source, module.tokenizer, path)
        if world > 1:
            torch.distributed.barrier()
    return VLLMEngine(path, eos_token_id=eos, pad_token_id=pad, dtype=module.cfg.policy.dtype, **args)
