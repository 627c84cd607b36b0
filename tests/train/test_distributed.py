"""Global-batch statistics across ranks (rlobj/train/distributed.py): the identity in one process, and
with two gloo processes the rows of both ranks in rank order, sequence axes padded to the widest
rank, group ids offset per rank, nested extras gathered, and each rank's own rows and width cut back."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rlobj.train.distributed import gather_rows, local_rows, row_offset, world


def test_one_process_is_the_identity():
    assert world() == (0, 1) and row_offset(5) == 0
    fields = {"mask": torch.ones(2, 3, dtype=torch.bool), "group_ids": torch.tensor([0, 0]), "k": 1.5}
    out, where = gather_rows(fields)
    assert out == fields and where == (0, 2, None, None)
    advantages = torch.arange(6.0).reshape(2, 3)
    assert local_rows(advantages, where) is advantages


def _rank_fields(rank):
    rows, width = (2, 3) if rank == 0 else (3, 5)  # uneven rows and each rank's own padding width
    mask = torch.arange(width)[None, :] < torch.tensor([width - r for r in range(rows)])[:, None]
    return {"mask": mask,
            "logp": torch.full((rows, width), float(rank + 1)),
            "group_ids": torch.tensor([0, 1] if rank == 0 else [0, 0, 2]),
            "rewards": torch.arange(rows, dtype=torch.float64) + 10 * rank,
            "extras": {"partner_group": torch.tensor([1, 0] if rank == 0 else [2, 2, 0]), "tag": "same"},
            "scale": 0.5}


def _worker(rank, path, results):
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=2)
    try:
        fields = _rank_fields(rank)
        out, where = gather_rows(fields)
        back = {key: local_rows(out[key], where, key) for key in ("mask", "logp", "rewards")}
        own_groups = local_rows(out["group_ids"], where, "group_ids")
        made_after = local_rows(torch.zeros(5, out["mask"].shape[1]), where)  # e.g. advantages
        results.put((rank, world(), row_offset(len(fields["rewards"])), {
            "mask_shape": tuple(out["mask"].shape), "group_ids": out["group_ids"].tolist(),
            "partner": out["extras"]["partner_group"].tolist(), "tag": out["extras"]["tag"],
            "rewards": out["rewards"].tolist(), "logp_row0": out["logp"][0].tolist(),
            "logp_row4": out["logp"][4].tolist(), "scale": out["scale"],
            "back_equal": all(torch.equal(back[k], fields[k]) for k in back),
            "made_after_shape": tuple(made_after.shape), "own_groups": own_groups.tolist()}))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_ranks_gather_in_rank_order_and_cut_back(tmp_path):
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    mp.start_processes(_worker, args=(str(tmp_path / "store"), results), nprocs=2, start_method="spawn")
    got = dict((r[0], r[1:]) for r in (results.get(), results.get()))
    for rank, (ranks, offset, out) in got.items():
        assert ranks == (rank, 2) and offset == (0 if rank == 0 else 2)
        assert out["mask_shape"] == (5, 5)  # 2 + 3 rows, padded to the widest rank (5)
        assert out["group_ids"] == [0, 1, 2, 2, 4]  # rank 1's groups follow rank 0's (offset 2)
        assert out["partner"] == [1, 0, 4, 4, 2]
        assert out["rewards"] == [0.0, 1.0, 10.0, 11.0, 12.0] and out["scale"] == 0.5 and out["tag"] == "same"
        assert out["logp_row0"] == [1.0, 1.0, 1.0, 0.0, 0.0] and out["logp_row4"] == [2.0] * 5
        assert out["back_equal"]  # own rows and own width restored exactly
        assert out["own_groups"] == ([0, 1] if rank == 0 else [2, 2, 4])  # group ids keep their offset
        assert out["made_after_shape"] == ((2, 3) if rank == 0 else (3, 5))
