"""The vocab package against an older single-module ``rlobj/ops/vocab.py``: same inputs, one run.

Loads the old module from a file (default: ``git show b732082:rlobj/ops/vocab.py``, the last
commit before the split) next to the current ``rlobj.ops.vocab`` package and, for each (tokens N,
vocabulary V), runs the same forward + backward through both:

* ``lp_reg fused``: log-prob, entropy, forward KL to a reference and Lp-Reg's proxy in one
  ``evaluate`` (variant (c) of ``benchmarks/vocab_terms.py``);
* ``logp+H``: log-prob and entropy only;
* ``siren top-p H``: SIREN's nucleus entropy (p = 0.8, top 10000), whole rows with a sort.

It prints peak memory (CPU: live tensor bytes above the weights and their gradients, the tracer
of ``vocab_terms.py``; CUDA: ``torch.cuda.max_memory_allocated`` above the inputs less the final
gradients), the minimum wall and process-CPU seconds over interleaved rounds,
the ratios new / old, and the largest difference between the two implementations' outputs and
gradients (0 means bit-identical).

Usage:
    python benchmarks/vocab_parity.py --threads 1
    python benchmarks/vocab_parity.py --old /tmp/old_vocab.py --tokens 2048 --vocab 32768 151936
    python benchmarks/vocab_parity.py --device cuda --tokens 8192 --vocab 151936
"""

import argparse
import gc
import importlib.util
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vocab_terms import KAPPA, LiveBytes, grpo_surrogate, lp_reg_loss, make_setup  # noqa: E402

import rlobj.ops.vocab as new_vocab  # noqa: E402
from rlobj.terms.regularizers import ProxyLogProb, TopPEntropy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def load_old(path: str | None):
    if path is None:
        source = subprocess.run(["git", "show", "b732082:rlobj/ops/vocab.py"], cwd=REPO, check=True,
                                capture_output=True, text=True).stdout
        path = Path(tempfile.mkdtemp()) / "old_vocab.py"
        path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_rlobj_ops_vocab", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def implementations(old):
    """name -> (VocabView class, query constructors) for the old module and the package."""
    return {
        "old": (old.VocabView, old.LogProb, old.Entropy, old.KL, old.ProxyLogProb, old.TopPEntropy),
        "new": (new_vocab.VocabView, new_vocab.LogProb, new_vocab.Entropy, new_vocab.KL, ProxyLogProb,
                TopPEntropy),
    }


def make_views(view_type, setup):
    n, h = setup["hidden"].shape
    tiles = dict(chunk_size=setup["chunk_size"], memory_budget=setup["memory_budget"])
    view = view_type.from_hidden(setup["hidden"].view(1, n, h), setup["weight"], **tiles)
    ref = view_type.from_hidden(setup["ref_hidden"].view(1, n, h), setup["ref_weight"], **tiles)
    return view, ref


def lp_reg_fused(impl, setup):
    view_type, log_prob, entropy, kl, proxy, _ = impl
    view, ref = make_views(view_type, setup)
    tokens = setup["tokens"].view(1, -1)
    outs = view.evaluate(log_prob(tokens), entropy(), kl(ref, "forward"), proxy(tokens, KAPPA))
    loss = lp_reg_loss(outs[0][0], setup["logp_old"], outs[3][0], setup["advantages"], outs[2][0], outs[1][0])
    loss.backward()
    return outs


def logp_entropy(impl, setup):
    view_type, log_prob, entropy, _, _, _ = impl
    view, _ = make_views(view_type, setup)
    outs = view.evaluate(log_prob(setup["tokens"].view(1, -1)), entropy())
    loss = (grpo_surrogate(outs[0][0], setup["logp_old"], setup["advantages"])[0] - 0.001 * outs[1][0]).mean()
    loss.backward()
    return outs


def siren_top_p(impl, setup):
    view_type, _, _, _, _, top_p = impl
    view, _ = make_views(view_type, setup)
    outs = view.evaluate(top_p(0.8, 10000))
    (outs[0] * setup["advantages"]).sum().backward()
    return outs


VARIANTS = {"lp_reg fused": lp_reg_fused, "logp+H": logp_entropy, "siren top-p H": siren_top_p}


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_once(variant, impl, setup, trace, device="cpu"):
    """Traced: (peak bytes, outputs, gradients); else (wall seconds, process CPU seconds)."""
    for key in ("hidden", "weight"):
        setup[key].grad = None
    gc.collect()
    if trace and device == "cpu":
        with LiveBytes() as tracer:
            outs = VARIANTS[variant](impl, setup)
        grads = [setup[k].grad for k in ("hidden", "weight")]
        peak, _ = tracer.summary([g.untyped_storage() for g in grads])
        return peak, [o.detach() for o in outs], [g.clone() for g in grads]
    if trace:  # CUDA: peak allocated above what was live before, less the final gradients
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        outs = VARIANTS[variant](impl, setup)
        sync(device)
        grads = [setup[k].grad for k in ("hidden", "weight")]
        peak = torch.cuda.max_memory_allocated() - before - sum(g.nbytes for g in grads)
        return peak, [o.detach() for o in outs], [g.clone() for g in grads]
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    VARIANTS[variant](impl, setup)
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def max_difference(a, b):
    return max(float((x.double() - y.double()).abs().max()) if x.numel() else 0.0 for x, y in zip(a, b, strict=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", default=None, help="path of the old vocab.py (default: from git)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[2048])
    parser.add_argument("--vocab", type=int, nargs="+", default=[32768])
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (min kept)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    impls = implementations(load_old(args.old))
    print(f"torch={torch.__version__} device={args.device} threads={torch.get_num_threads()} H={args.hidden}")
    rows = []
    for n in args.tokens:
        for vocab in args.vocab:
            setup = make_setup(n, vocab, args.hidden, args.device)
            for variant in args.variants:
                result = {}
                for name, impl in impls.items():
                    peak, outs, grads = run_once(variant, impl, setup, True, args.device)
                    result[name] = dict(peak=peak, outs=outs, grads=grads, wall=math.inf, cpu=math.inf)
                for _ in range(args.repeats):
                    for name, impl in impls.items():
                        wall, cpu = run_once(variant, impl, setup, False, args.device)
                        result[name]["wall"] = min(result[name]["wall"], wall)
                        result[name]["cpu"] = min(result[name]["cpu"], cpu)
                old, new = result["old"], result["new"]
                diff = max(max_difference(old["outs"], new["outs"]), max_difference(old["grads"], new["grads"]))
                rows.append(
                    f"{n:>5} {vocab:>7}  {variant:<14} {old['peak'] / 2**20:9.1f} {new['peak'] / 2**20:9.1f} "
                    f"{new['peak'] / old['peak']:6.3f} {old['wall']:7.2f} {new['wall']:7.2f} "
                    f"{new['wall'] / old['wall']:6.3f} {old['cpu']:7.2f} {new['cpu']:7.2f} "
                    f"{new['cpu'] / old['cpu']:6.3f} {diff:10.1e}"
                )
                print(rows[-1], flush=True)
            del setup
            gc.collect()
    print()
    print(f"{'N':>5} {'V':>7}  {'variant':<14} {'old MiB':>9} {'new MiB':>9} {'new/old':>6} "
          f"{'old s':>7} {'new s':>7} {'new/old':>6} {'old cpu':>7} {'new cpu':>7} {'new/old':>6} "
          f"{'max |diff|':>10}")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
