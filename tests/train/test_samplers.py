"""The sampler stage (``model.sampler``): plain, EAD, LATR, UloRL segments and BroRL selected from the config."""

import functools
import math

import pytest
import torch

from rlobj.algebra import Objective
from rlobj.ops.errors import RlobjInputError
from rlobj.rollout import EADSchedule, LATREngine, SegmentRollout
from rlobj.rollout.schedules import ConstantTemperature, scheduled_sequence_logprobs
from rlobj.train.forward import token_logprobs
from rlobj.train.samplers import (
    SAMPLERS,
    BroadSampler,
    EADSampler,
    LATRSampler,
    PlainSampler,
    SegmentSampler,
    build_sampler,
)
from rlobj.train.stages import Batch, Sampler

from ._helpers import tiny_module

RECORDS = [{"prompt": "12+3=", "answer": "15"}, {"prompt": "7+8=", "answer": "15"},
           {"prompt": "40+2=", "answer": "42"}]
# warm-up 1, then tau_t = max(2.2 - exp(t / (3 + s)), 0.1): varies within 6 tokens
FAST = {"tau_max": 1.2, "tau_min": 0.1, "d0": 3.0, "slope": 1.0, "warmup": 1, "d_scale": 1.0}


def capture(monkeypatch, module):
    """Record, for each RL step: the sampled batch (with the sampling policy's log-probs at the plain
    temperature and, for EAD, under the annealed schedule of that step) and the fields handed to
    Objective.prepare."""
    seen = {"batches": [], "fields": [], "policy_logp": [], "annealed": []}
    original_sample = module.sampler.sample
    original_prepare = Objective.prepare

    def sample(ctx, records, n, salt=0, **changes):
        batch = original_sample(ctx, records, n, salt, **changes)
        seen["batches"].append(batch)
        rollout = batch.rollout
        if len(rollout):
            with torch.no_grad():  # the policy that sampled (before this step's update)
                seen["policy_logp"].append(token_logprobs(
                    module.policy, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids,
                    rollout.response_mask, temperature=module.sampling.temperature)[0])
                if isinstance(module.sampler, EADSampler):
                    seen["annealed"].append(scheduled_sequence_logprobs(
                        module.policy, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids,
                        rollout.response_mask, module.sampler.schedule.at_step(ctx.rl_updates),
                        module.sampling.temperature))
        return batch

    def prepare(self, state=None, **fields):
        seen["fields"].append(fields)
        return original_prepare(self, state, **fields)

    monkeypatch.setattr(module.sampler, "sample", sample)
    monkeypatch.setattr(Objective, "prepare", prepare)
    return seen


def _prompt_text(module, rollout, row):
    return module.tokenizer.decode(rollout.prompt_ids[row][rollout.prompt_mask[row]].tolist())


# ----------------------------------------------------------------------------- build_sampler
@pytest.mark.parametrize("spec, match", [
    ("beam", r"sampler: unknown sampler 'beam'\. Known: \['broad', 'ead', 'latr', 'mcts', 'multi_turn', 'plain', 'segments'\]"),
    ("eda", r"sampler: unknown sampler 'eda'\. Did you mean 'ead'\?"),
    ("segment", r"Did you mean 'segments'\?"),
    ({"ead": {"segment_tokens": 3}}, r"sampler ead: .*unexpected keyword argument 'segment_tokens'"),
    ({"ead": {"schedule": {"tau_min": 2.0}}}, "ead.schedule: .*tau_min must be <= tau_max"),
    ({"ead": {"schedule": {"step": 3}}}, r"ead.schedule: unknown EADSchedule field\(s\) \['step'\]"),
    ({"latr": {"config": {"similarity": "cosine"}}}, "latr.config: .*similarity"),
    ({"latr": {"config": {"mix": {1: 0.5}}}}, "latr.config: .*MixSchedule"),
    ({"latr": {"config": {"depth": 3}}}, r"latr.config: unknown LATRConfig field\(s\) \['depth'\]"),
    ({"segments": None}, r"sampler segments: .*segment_tokens"),
    ({"segments": {"segment_tokens": 0}}, "segments.segment_tokens: expected an int >= 1, got 0"),
    ({"segments": {"segment_tokens": True}}, "segments.segment_tokens: expected an int >= 1, got True"),
    ({"segments": {"segment_tokens": 4, "release": "prompt"}}, "segments.release: .*'group'"),
    ({"broad": {"chunk_size": 0}}, "broad.chunk_size: expected an int >= 1, got 0"),
    ({"broad": {"chunk": 4}}, r"sampler broad: .*unexpected keyword argument 'chunk'"),
    ({"ead": {}, "latr": {}}, "sampler: expected a name"),
    ({"ead": [1]}, "sampler: expected a name"),
    (3, "sampler: expected a name"),
    ("rlobj.train.no_such_module.Sampler", r"sampler: cannot import 'rlobj.train.no_such_module.Sampler'"),
    ("rlobj.train.stages.NoSuchName", r"sampler: cannot import"),
    ("rlobj.train.stages.Score", r"sampler: 'rlobj.train.stages.Score' is not a rlobj.train.stages.Sampler subclass"),
    ("rlobj.train.samplers.build_sampler", "is not a rlobj.train.stages.Sampler subclass"),
])
def test_bad_sampler_names_the_key(spec, match):
    with pytest.raises(RlobjInputError, match=match):
        build_sampler(spec)


def test_bad_sampler_fails_when_the_module_is_built():
    from rlobj.train import RLModule

    with pytest.raises(RlobjInputError, match="Did you mean 'ead'"):
        RLModule(sampler="eda")
    with pytest.raises(RlobjInputError, match="segments.release"):
        RLModule(sampler={"segments": {"segment_tokens": 2, "release": "prompt"}})


class _Mine(PlainSampler):
    def __init__(self, tag: str = "x"):
        self.tag = tag


def test_build_sampler_builds_what_it_names():
    assert type(build_sampler(None)) is type(build_sampler("plain")) is PlainSampler
    assert type(build_sampler({"plain": None})) is PlainSampler
    given = EADSampler()
    assert build_sampler(given) is given
    ead = build_sampler({"ead": {"schedule": FAST}})
    assert isinstance(ead, EADSampler) and ead.schedule == EADSchedule(**FAST)
    assert build_sampler("ead").schedule == EADSchedule()
    latr = build_sampler({"latr": {"config": {"lookahead": [2, 3], "mix": {0: 1.0, 10: 0.5}}}})
    assert isinstance(latr, LATRSampler)
    assert latr.config.lookahead == (2, 3) and latr.config.mix(9) == 1.0 and latr.config.mix(10) == 0.5
    segments = build_sampler({"segments": {"segment_tokens": 2}})
    assert isinstance(segments, SegmentSampler) and (segments.segment_tokens, segments.release) == (2, "group")
    assert build_sampler({"segments": {"segment_tokens": 2, "release": "sample"}}).release == "sample"
    assert build_sampler({"broad": {"chunk_size": 16}}).chunk_size == 16
    assert build_sampler("broad").chunk_size == 128
    mine = build_sampler({f"{__name__}._Mine": {"tag": "y"}})
    assert isinstance(mine, _Mine) and mine.tag == "y"
    assert isinstance(build_sampler("rlobj.train.samplers.BroadSampler"), BroadSampler)
    assert set(SAMPLERS) == {"plain", "ead", "latr", "segments", "broad", "mcts", "multi_turn"}
    assert all(issubclass(cls, Sampler) for cls in SAMPLERS.values())
    # the module keeps the spec as plain data and builds the sampler
    module = tiny_module(sampler={"ead": {"schedule": FAST}})
    assert isinstance(module.sampler, EADSampler) and module.hparams.sampler == {"ead": {"schedule": FAST}}


@pytest.mark.parametrize("sampler, name", [({"latr": {}}, "LATRSampler"),
                                           ({"segments": {"segment_tokens": 2}}, "SegmentSampler")])
def test_tree_and_segments_need_the_hf_engine(sampler, name):
    import dataclasses

    module = tiny_module(sampler=sampler)
    ctx = dataclasses.replace(module.context(0), engine=object())  # any engine that is not HFEngine
    with pytest.raises(RlobjInputError, match=f"sampler {name}: wraps the HF engine \\(engine: hf\\), got object"):
        module.sampler.sample(ctx, RECORDS, 2)


def test_plain_sampler_rows_and_records():
    module = tiny_module()
    ctx = module.context(0)
    batch = ctx.sample(RECORDS)
    assert isinstance(batch, Batch) and batch.on_policy and batch.scores is None
    assert len(batch) == 3 * module.cfg.rollout.group_size
    for row in range(len(batch)):
        assert batch.records[row] is RECORDS[int(batch.rollout.group_ids[row])]
        assert _prompt_text(module, batch.rollout, row) == batch.records[row]["prompt"]
    # n, salt and sampling changes: n rows per record, another stream, greedy decoding
    assert len(ctx.sample(RECORDS[:2], n=3)) == 6
    again, salted = ctx.sample(RECORDS), ctx.sample(RECORDS, salt=1)
    assert torch.equal(again.rollout.response_ids, batch.rollout.response_ids)
    assert not torch.equal(salted.rollout.response_ids, batch.rollout.response_ids)
    greedy = ctx.sample(RECORDS[:1], n=3, greedy=True).rollout
    assert (greedy.response_ids == greedy.response_ids[:1]).all()
    with pytest.raises(RlobjInputError, match="unknown sampling setting"):
        ctx.sample(RECORDS, warmth=2.0)
    with pytest.raises(RlobjInputError, match=r"records\[1\]: expected a mapping with a 'prompt'"):
        ctx.sample([RECORDS[0], {"question": "1+1="}])


# ----------------------------------------------------------------------------- EAD
def test_ead_steps_the_schedule_and_feeds_the_annealed_logprobs(monkeypatch):
    module = tiny_module(sampler={"ead": {"schedule": FAST}}, rollout=dict(temperature=0.9),
                         objective=["grpo", {"truncated_is": {"cap": 2.0}}], optimizer=functools.partial(torch.optim.AdamW, lr=1e-2, weight_decay=0.0))
    seen = capture(monkeypatch, module)
    metrics = [module.rl_update(RECORDS, step) for step in range(3)]
    assert [m["rollout/ead_step"] for m in metrics] == [0.0, 1.0, 2.0]
    assert [m["rollout/ead_decay"] for m in metrics] == [3.0, 4.0, 5.0]
    assert len(seen["batches"]) == len(seen["fields"]) == 3
    for k in range(3):
        batch, fields = seen["batches"][k], seen["fields"][k]
        rollout, mask = batch.rollout, batch.rollout.response_mask
        assert not batch.on_policy  # the trainer recomputes logp_old
        # the engine's log-probs are those of the annealed distribution at schedule step k ...
        assert torch.allclose(rollout.logp_rollout, seen["annealed"][k], atol=1e-5)
        assert torch.equal(fields["extras"]["logp_rollout"], rollout.logp_rollout)
        # ... while logp_old is the sampling policy at the plain temperature
        assert torch.allclose(fields["logp_old"], seen["policy_logp"][k], atol=1e-5)
        assert (fields["logp_old"] - rollout.logp_rollout).abs()[mask].max() > 1e-2
        assert math.isfinite(metrics[k]["loss"]) and 0 < metrics[k]["is/weight_mean"]
        assert 0.1 <= metrics[k]["rollout/ead_tau_mean"] <= 1.2
    assert metrics[0]["is/truncated_frac"] >= 0.0


def test_flat_schedule_trains_like_plain_sampling():
    """EAD with tau_t = 1 everywhere samples the same tokens as plain sampling (same seed) and
    takes the same optimizer step."""
    flat = {"tau_max": 1.0, "tau_min": 1.0}
    plain, ead = tiny_module(), tiny_module(sampler={"ead": {"schedule": flat}})
    assert ead.sampler.schedule.temperatures(torch.arange(50)).eq(1.0).all()
    a, b = plain.rl_update(RECORDS, 0), ead.rl_update(RECORDS, 0)
    assert a["reward/mean"] == b["reward/mean"] and a["response/length_mean"] == b["response/length_mean"]
    for p, q in zip(plain.policy.parameters(), ead.policy.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert ConstantTemperature().temperatures(torch.arange(3)).tolist() == [1.0, 1.0, 1.0]


# ----------------------------------------------------------------------------- LATR
def test_latr_rollouts_train(monkeypatch):
    config = {"lookahead": [2, 3], "force_return_step": 6, "tau_abs": 0.0, "tau_rel": 1.0,
              "mix": {0: 1.0, 1: 0.5}}
    module = tiny_module(sampler={"latr": {"config": config}})
    seen = capture(monkeypatch, module)
    metrics = [module.rl_update(RECORDS, step) for step in range(2)]
    assert isinstance(module.sampler._engine, LATREngine) and module.sampler._engine.engine is module.engine
    assert [m["rollout/latr_eta"] for m in metrics] == [1.0, 0.5]  # mix read at rl_updates
    assert metrics[0]["rollout/latr_tree_fraction"] > 0.5
    assert len(seen["fields"]) == 2
    for batch in seen["batches"]:
        rollout = batch.rollout
        assert torch.bincount(rollout.group_ids).tolist() == [module.cfg.rollout.group_size] * len(RECORDS)
        for row in range(len(batch)):
            assert _prompt_text(module, rollout, row) == batch.records[row]["prompt"]
    for m in metrics:
        assert math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"])
    # evaluation samples plainly with the base engine
    assert module.evaluate(RECORDS[:1])["pass@1"] >= 0.0


# ----------------------------------------------------------------------------- UloRL segments
def test_segments_continue_and_train_on_complete_groups(monkeypatch):
    module = tiny_module(sampler={"segments": {"segment_tokens": 2}}, rollout=dict(max_new_tokens=6))
    seen = capture(monkeypatch, module)
    metrics = [module.rl_update([RECORDS[step % 3]], step) for step in range(4)]
    engine = module.sampler._engine
    assert isinstance(engine, SegmentRollout) and engine.segment_tokens == 2
    released = [m["rollout/released_samples"] for m in metrics]
    # budget 6 = 3 segments of 2: the prompt admitted at step 0 is complete at step 2 at the latest
    assert sum(released[:3]) >= module.cfg.rollout.group_size
    assert sum(released) + metrics[-1]["rollout/pending_samples"] == 4 * module.cfg.rollout.group_size
    assert [m["rollout/released_groups"] for m in metrics] == [r // module.cfg.rollout.group_size for r in released]
    assert len(seen["fields"]) == sum(r > 0 for r in released)  # no update without a group
    updated = [b for b in seen["batches"] if len(b)]
    assert len(updated) == len(seen["fields"])
    for batch, fields in zip(updated, seen["fields"]):
        rollout = batch.rollout
        assert not batch.on_policy  # samples begun under older weights: logp_old recomputed
        counts = torch.bincount(fields["group_ids"])
        assert (counts == module.cfg.rollout.group_size).all()  # complete groups, ids 0..k-1
        assert torch.equal(fields["group_ids"], rollout.group_ids)
        for row in range(len(rollout)):  # each row answers the record its group came from
            assert _prompt_text(module, rollout, row) == batch.records[row]["prompt"]
            assert batch.records[row] in RECORDS
        for g in range(len(counts)):
            rows = (rollout.group_ids == g).nonzero().flatten().tolist()
            assert len({id(batch.records[r]) for r in rows}) == 1
    for m in metrics:
        if m["rollout/released_samples"] > 0:
            assert math.isfinite(m["loss"])
        else:
            assert "loss" not in m


# ----------------------------------------------------------------------------- BroRL
def test_broad_sampler_groups_rows_and_chunks_engine_calls(monkeypatch):
    module = tiny_module(sampler={"broad": {"chunk_size": 4}}, rollout=dict(group_size=6))
    engine = module._ensure_engine()
    calls = []
    original = engine.generate

    def generate(prompts, n, sampling, **kwargs):
        calls.append((len(prompts), n, sampling.seed))
        return original(prompts, n=n, sampling=sampling, **kwargs)

    monkeypatch.setattr(engine, "generate", generate)
    ctx = module.context(0)
    batch = ctx.sample(RECORDS)
    # 3 prompts, 6 each, at most 4 sequences per call: prompts 0..2 one answer per call ... then
    assert calls and all(p * n <= 4 for p, n, _ in calls)
    assert sum(p * n for p, n, _ in calls) == 18 and len({seed for _, _, seed in calls}) == len(calls)
    assert batch.on_policy and batch.metrics == {"rollout/samples_per_prompt": 6.0}
    assert batch.rollout.group_ids.tolist() == torch.arange(3).repeat_interleave(6).tolist()
    for row in range(len(batch)):  # contiguous groups, each row answering its group's record
        assert batch.records[row] is RECORDS[row // 6]
        assert _prompt_text(module, batch.rollout, row) == RECORDS[row // 6]["prompt"]
    # more prompts than the chunk: the prompts themselves are split
    calls.clear()
    batch = ctx.sample(RECORDS * 2, n=3)
    assert all(p * n <= 4 for p, n, _ in calls) and sum(p * n for p, n, _ in calls) == 18
    assert max(p for p, _, _ in calls) == 4
    assert batch.rollout.group_ids.tolist() == torch.arange(6).repeat_interleave(3).tolist()
    assert [r["prompt"] for r in batch.records] == [r["prompt"] for r in RECORDS * 2 for _ in range(3)]
    # and it trains
    calls.clear()
    metrics = module.rl_update(RECORDS, 0)
    assert metrics["rollout/samples_per_prompt"] == 6.0 and math.isfinite(metrics["loss"])
    assert all(p * n <= 4 for p, n, _ in calls)


def test_broad_sampler_with_one_call_matches_plain_rows():
    """chunk_size >= prompts * n: one engine call, the same rows as the plain sampler."""
    plain, broad = tiny_module(), tiny_module(sampler={"broad": {"chunk_size": 64}})
    a, b = plain.context(0).sample(RECORDS), broad.context(0).sample(RECORDS)
    assert torch.equal(a.rollout.response_ids, b.rollout.response_ids)
    assert torch.equal(a.rollout.group_ids, b.rollout.group_ids)


# ----------------------------------------------------------------------------- the shipped YAMLs
@pytest.mark.parametrize("config", ["rollout/ead.yaml", "rollout/latr.yaml", "rollout/ulorl_segments.yaml",
                                    "brorl.yaml"])
def test_sampler_config_trains_through_the_cli(config, tmp_path, monkeypatch):
    """Smoke: each shipped sampler YAML runs 1 sft + 3 RL steps through `rlobj fit`."""
    import csv
    import glob
    from pathlib import Path

    from rlobj.train.cli import main

    monkeypatch.chdir(tmp_path)
    path = Path(__file__).resolve().parents[2] / "examples" / "configs" / config
    extra = ["--model.sampler={broad: {chunk_size: 3}}", "--model.update.micro_batch_size=3"] if config == "brorl.yaml" else []
    main(["fit", "--config", str(path), "--trainer.max_steps=4", "--model.warmup.steps=1",
          "--data.prompts_per_step=2", "--model.rollout.group_size=4", "--data.eval_size=2", "--model.evaluation.samples=2",
          "--model.evaluation.k=[1, 2]", "--model.policy.tiny_model={hidden_size: 128, layers: 1, heads: 2, seed: 0}",
          "--trainer.callbacks=[]", "--trainer.logger.init_args.save_dir=runs", *extra])
    (metrics_csv,) = glob.glob(str(tmp_path / "runs" / "**" / "metrics.csv"), recursive=True)
    rows = [r for r in csv.DictReader(open(metrics_csv)) if r.get("phase") == "1.0"]
    segments = config.endswith("ulorl_segments.yaml")
    # max_steps counts optimizer steps: a segment step that releases no group takes none
    assert len(rows) == 3 if not segments else len(rows) >= 3
    key = {"rollout/ead.yaml": "rollout/ead_step", "rollout/latr.yaml": "rollout/latr_eta",
           "rollout/ulorl_segments.yaml": "rollout/released_samples",
           "brorl.yaml": "rollout/samples_per_prompt"}[config]
    assert all(row[key] != "" for row in rows)
    trained = [row for row in rows if not segments or float(row[key]) > 0]
    assert len(trained) == 3 and all(math.isfinite(float(row["loss"])) for row in trained)
    if config == "rollout/ead.yaml":
        assert [float(r["rollout/ead_step"]) for r in rows] == [0.0, 1.0, 2.0]
    if segments:  # 5 tokens in segments of 2: step 1's groups are out by step 3
        assert sum(float(r["rollout/released_samples"]) for r in rows) >= 3 * 2 * 4
    if config == "brorl.yaml":
        assert all(float(r[key]) == 4.0 for r in rows)
