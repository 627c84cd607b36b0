"""Memory and time of full-vocabulary loss terms: naive full logits vs the chunked VocabView.

For each (tokens N, vocabulary V) and hidden size H, one forward+backward of:

  (a) GRPO clipped surrogate from sampled-token log-probs, computed from full float32 logits;
  (b) (a) + Lp-Reg proxy log-prob (min-p 0.02, k3 penalty replacing the surrogate on low-probability
      negative tokens) + forward KL to a reference + entropy bonus, all from full float32 logits;
  (c) the same loss as (b) through :class:`rlobj.ops.vocab.VocabView` (one fused evaluate);
  (c-lp+H) GRPO surrogate + entropy through the view (log-prob + entropy only);
  floor: the bare output-projection products for the same shapes (z = h W^T, then dh, dW).

Time: wall-clock and process CPU seconds, the minimum over interleaved rounds (the CPU column is
the steadier one on a shared machine). Memory is the peak of live tensor bytes above the weights and their gradients, traced on the CPU
with a TorchDispatchMode (every op output with fresh storage is an allocation, freed when its
storage dies); on CUDA, torch.cuda.max_memory_allocated. The largest single allocation excludes
the final gradients of the weights and hidden states. Ratios are taken within one run.

Usage:
    python benchmarks/vocab_terms.py                     # CPU, N=2048, V in {32768, 151936}
    python benchmarks/vocab_terms.py --tokens 2048 8192 --vocab 151936 --device cuda
"""

import argparse
import gc
import math
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from rlobj.ops.vocab import KL, Entropy, LogProb, VocabView
from rlobj.terms.regularizers import ProxyLogProb

CLIP_LOW, CLIP_HIGH = 0.2, 0.28
KAPPA, LP_BETA, KL_BETA, ENT_COEF = 0.02, 1.0, 0.01, 0.001


# ------------------------------------------------------------------------------------------------
# memory tracing (CPU)
# ------------------------------------------------------------------------------------------------


class LiveBytes(TorchDispatchMode):
    """Timeline of allocations (fresh output storages) and frees (storage finalizers)."""

    def __init__(self):
        super().__init__()
        self.events = []  # ("alloc", key, nbytes, weakref) / ("free", key)
        self._next = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        }
        seen = set()
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr in inputs or ptr in seen or storage.nbytes() == 0:
                continue
            seen.add(ptr)
            key = self._next
            self._next += 1
            self.events.append(("alloc", key, storage.nbytes(), weakref.ref(storage)))
            weakref.finalize(storage, self.events.append, ("free", key))
        return out

    def summary(self, exclude_storages):
        """Peak live bytes and largest allocation, skipping the given (final-gradient) storages."""
        excluded = set()
        for event in self.events:
            if event[0] == "alloc":
                storage = event[3]()
                if storage is not None and any(storage is s for s in exclude_storages):
                    excluded.add(event[1])
        live, peak, largest, sizes = 0, 0, 0, {}
        for event in self.events:
            if event[1] in excluded:
                continue
            if event[0] == "alloc":
                sizes[event[1]] = event[2]
                live += event[2]
                largest = max(largest, event[2])
                peak = max(peak, live)
            else:
                live -= sizes.pop(event[1], 0)
        return peak, largest


# ------------------------------------------------------------------------------------------------
# the losses
# ------------------------------------------------------------------------------------------------


def grpo_surrogate(logp, logp_old, advantages):
    ratio = torch.exp(logp - logp_old)
    clipped = torch.clamp(ratio, 1 - CLIP_LOW, 1 + CLIP_HIGH)
    return torch.maximum(-advantages * ratio, -advantages * clipped), ratio


def lp_reg_loss(logp, logp_old, proxy_logp, advantages, kl, entropy):
    """GRPO, Lp-Reg replacement on negative tokens below their proxy, + KL penalty - entropy."""
    surrogate, ratio = grpo_surrogate(logp, logp_old, advantages)
    regularised = (advantages < 0) & (logp.detach() < proxy_logp)
    diff = proxy_logp - logp
    k3 = torch.exp(diff) - diff - 1
    per_token = torch.where(regularised, -advantages * ratio + LP_BETA * k3, surrogate)
    return (per_token + KL_BETA * kl - ENT_COEF * entropy).mean()


def naive_logits(setup):
    return (setup["hidden"] @ setup["weight"].T).float()


def step_a(setup):
    logits = naive_logits(setup)
    logp = torch.log_softmax(logits, -1).gather(-1, setup["tokens"][:, None])[:, 0]
    loss = grpo_surrogate(logp, setup["logp_old"], setup["advantages"])[0].mean()
    loss.backward()
    return loss


def step_b(setup):
    logits = naive_logits(setup)
    log_probs = torch.log_softmax(logits, -1)
    logp = log_probs.gather(-1, setup["tokens"][:, None])[:, 0]
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    with torch.no_grad():
        ref_log_probs = torch.log_softmax((setup["ref_hidden"] @ setup["ref_weight"].T).float(), -1)
        old = logits.detach()
        keep = old >= old.max(-1, keepdim=True).values + math.log(KAPPA)
        filtered = torch.log_softmax(old.masked_fill(~keep, -1e4), -1)
        proxy_logp = filtered.gather(-1, setup["tokens"][:, None])[:, 0]
    kl = (ref_log_probs.exp() * (ref_log_probs - log_probs)).sum(-1)
    loss = lp_reg_loss(logp, setup["logp_old"], proxy_logp, setup["advantages"], kl, entropy)
    loss.backward()
    return loss


def make_views(setup):
    n, h = setup["hidden"].shape
    view = VocabView.from_hidden(
        setup["hidden"].view(1, n, h),
        setup["weight"],
        chunk_size=setup["chunk_size"],
        memory_budget=setup["memory_budget"],
    )
    ref = VocabView.from_hidden(
        setup["ref_hidden"].view(1, n, h),
        setup["ref_weight"],
        chunk_size=setup["chunk_size"],
        memory_budget=setup["memory_budget"],
    )
    return view, ref


def step_c(setup):
    view, ref = make_views(setup)
    tokens = setup["tokens"].view(1, -1)
    logp, entropy, kl, proxy_logp = view.evaluate(
        LogProb(tokens), Entropy(), KL(ref, "forward"), ProxyLogProb(tokens, KAPPA)
    )
    loss = lp_reg_loss(
        logp[0], setup["logp_old"], proxy_logp[0], setup["advantages"], kl[0], entropy[0]
    )
    loss.backward()
    return loss


def step_c_logp_entropy(setup):
    view, _ = make_views(setup)
    logp, entropy = view.evaluate(LogProb(setup["tokens"].view(1, -1)), Entropy())
    surrogate = grpo_surrogate(logp[0], setup["logp_old"], setup["advantages"])[0]
    loss = (surrogate - ENT_COEF * entropy[0]).mean()
    loss.backward()
    return loss


def step_floor(setup):
    logits = setup["hidden"] @ setup["weight"].T
    logits.backward(setup["floor_grad"])
    return logits[0, 0]


STEPS = {
    "(a) grpo naive": step_a,
    "(b) grpo+lp_reg+kl+H naive": step_b,
    "(c) same via VocabView": step_c,
    "(c) logp+H via VocabView": step_c_logp_entropy,
    "floor: bare matmuls": step_floor,
}


# ------------------------------------------------------------------------------------------------
# harness
# ------------------------------------------------------------------------------------------------


def make_setup(n, vocab, hidden_size, device, seed=0, chunk_size=None, memory_budget=None):
    gen = torch.Generator().manual_seed(seed)
    scale = 2.0 / math.sqrt(hidden_size)  # logits with std ~2: peaked but not degenerate
    setup = {
        "hidden": torch.randn(n, hidden_size, generator=gen).to(device).requires_grad_(True),
        "weight": (torch.randn(vocab, hidden_size, generator=gen) * scale).to(device).requires_grad_(True),
        "ref_hidden": torch.randn(n, hidden_size, generator=gen).to(device),
        "ref_weight": (torch.randn(vocab, hidden_size, generator=gen) * scale).to(device),
        "tokens": torch.randint(0, vocab, (n,), generator=gen).to(device),
        "advantages": torch.randn(n, generator=gen).to(device),
        "chunk_size": chunk_size,
        "memory_budget": memory_budget,
    }
    with torch.no_grad():
        view, _ = make_views(setup)
        setup["logp_old"] = view.logp(setup["tokens"].view(1, -1))[0]
    return setup


def clear_grads(setup):
    for key in ("hidden", "weight"):
        setup[key].grad = None


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def prepare(name, setup, device):
    if name.startswith("floor"):
        setup["floor_grad"] = torch.randn(
            setup["hidden"].shape[0], setup["weight"].shape[0], device=device
        )
    clear_grads(setup)
    gc.collect()


def finish(setup):
    setup.pop("floor_grad", None)
    clear_grads(setup)


def measure_memory(name, setup, device):
    """Peak bytes above weights+grads and the largest allocation of one step (also a warm-up)."""
    prepare(name, setup, device)
    if device == "cpu":
        with LiveBytes() as tracer:
            STEPS[name](setup)
        grads = [setup[k].grad.untyped_storage() for k in ("hidden", "weight")]
        peak, largest = tracer.summary(grads)
        del tracer
    else:
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        STEPS[name](setup)
        sync(device)
        grad_bytes = sum(setup[k].grad.nbytes for k in ("hidden", "weight"))
        peak = torch.cuda.max_memory_allocated() - before - grad_bytes
        largest = float("nan")
    finish(setup)
    return peak, largest


def measure_time(name, setup, device):
    """Wall and process-CPU seconds of one step."""
    prepare(name, setup, device)
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    STEPS[name](setup)
    sync(device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finish(setup)
    return wall, cpu


def measure_all(names, setup, device, repeats):
    """Memory first (one traced step each), then ``repeats`` interleaved timing rounds (min)."""
    results = {}
    for name in names:
        peak, largest = measure_memory(name, setup, device)
        results[name] = {"peak": peak, "largest": largest, "time": math.inf, "cpu": math.inf}
    for _ in range(repeats):
        for name in names:
            wall, cpu = measure_time(name, setup, device)
            results[name]["time"] = min(results[name]["time"], wall)
            results[name]["cpu"] = min(results[name]["cpu"], cpu)
    return results


def check_against_float64(vocab, hidden_size, device, n_check, chunk_size, memory_budget):
    """Outputs and gradients of (c)'s quantities vs a float64 full-logits reference."""
    setup = make_setup(n_check, vocab, hidden_size, device, seed=1, chunk_size=chunk_size,
                       memory_budget=memory_budget)
    view, ref = make_views(setup)
    tokens = setup["tokens"].view(1, -1)
    outs = view.evaluate(LogProb(tokens), Entropy(), KL(ref, "forward"), ProxyLogProb(tokens, KAPPA))
    weights = torch.randn(3, n_check, generator=torch.Generator().manual_seed(2)).to(device)
    loss = sum((o[0] * w).sum() for o, w in zip(outs[:3], weights, strict=True))
    grads = torch.autograd.grad(loss, (setup["hidden"], setup["weight"]))

    h64 = setup["hidden"].detach().double().requires_grad_(True)
    w64 = setup["weight"].detach().double().requires_grad_(True)
    log_probs = torch.log_softmax(h64 @ w64.T, -1)
    ref_lp = torch.log_softmax(setup["ref_hidden"].double() @ setup["ref_weight"].double().T, -1)
    logp = log_probs.gather(-1, setup["tokens"][:, None])[:, 0]
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    kl = (ref_lp.exp() * (ref_lp - log_probs)).sum(-1)
    old = log_probs.detach()
    keep = old >= old.max(-1, keepdim=True).values + math.log(KAPPA)
    proxy = torch.log_softmax(old.masked_fill(~keep, -math.inf), -1).gather(-1, setup["tokens"][:, None])[:, 0]
    proxy = torch.where(torch.isfinite(proxy), proxy, torch.full_like(proxy, -1e4))
    ref_loss = sum((o * w.double()).sum() for o, w in zip((logp, entropy, kl), weights, strict=True))
    ref_grads = torch.autograd.grad(ref_loss, (h64, w64))

    def rel(got, want):
        got, want = got.detach().double(), want.detach()
        return float((got - want).abs().max() / want.abs().max().clamp_min(1e-30))

    errors = {
        "logp": rel(outs[0][0], logp),
        "entropy": rel(outs[1][0], entropy),
        "kl_forward": rel(outs[2][0], kl),
        "proxy_logp": rel(outs[3][0], proxy),
        "grad hidden": rel(grads[0], ref_grads[0]),
        "grad weight": rel(grads[1], ref_grads[1]),
    }
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[2048])
    parser.add_argument("--vocab", type=int, nargs="+", default=[32768, 151936])
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved timing rounds after the traced warm-up (min is reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 makes CPU-time ratios robust on a shared machine)")
    parser.add_argument("--chunk-size", type=int, default=None, help="VocabView tokens per chunk")
    parser.add_argument("--memory-budget", type=int, default=None, help="VocabView budget, bytes")
    parser.add_argument("--check-tokens", type=int, default=256,
                        help="tokens in the float64 correctness check (0 to skip)")
    parser.add_argument("--variants", nargs="+", default=list(range(len(STEPS))), type=int,
                        help="indices into the variant list to run (default all)")
    args = parser.parse_args()
    device = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [list(STEPS)[i] for i in args.variants]
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"H={args.hidden}")
    header = (f"{'N':>5} {'V':>7}  {'variant':<28} {'peak MiB':>9} {'/(a)':>6} {'/(b)':>6} "
              f"{'wall s':>7} {'/(b)':>6} {'/floor':>6} {'cpu s':>7} {'/(b)':>6} {'/floor':>6} "
              f"{'largest MiB':>11} {'rows x V':>8}")
    rows = []
    for n in args.tokens:
        for vocab in args.vocab:
            setup = make_setup(n, vocab, args.hidden, device, chunk_size=args.chunk_size,
                               memory_budget=args.memory_budget)
            results = measure_all(names, setup, device, args.repeats)
            a = results.get("(a) grpo naive")
            b = results.get("(b) grpo+lp_reg+kl+H naive")
            floor = results.get("floor: bare matmuls")
            for name, r in results.items():
                def ratio(value, base):
                    return f"{value / base:6.2f}" if base else f"{'-':>6}"
                rows_x_v = r["largest"] / (4 * vocab)
                rows.append(
                    f"{n:>5} {vocab:>7}  {name:<28} {r['peak'] / 2**20:9.1f} "
                    f"{ratio(r['peak'], a and a['peak'])} {ratio(r['peak'], b and b['peak'])} "
                    f"{r['time']:7.2f} {ratio(r['time'], b and b['time'])} "
                    f"{ratio(r['time'], floor and floor['time'])} "
                    f"{r['cpu']:7.2f} {ratio(r['cpu'], b and b['cpu'])} "
                    f"{ratio(r['cpu'], floor and floor['cpu'])} "
                    f"{r['largest'] / 2**20:11.1f} {rows_x_v:8.1f}"
                )
                print(rows[-1], flush=True)
            del setup
            gc.collect()
            if args.check_tokens:
                errors = check_against_float64(vocab, args.hidden, device, args.check_tokens,
                                               args.chunk_size, args.memory_budget)
                worst = max(errors.values())
                detail = ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
                rows.append(f"{'':>5} {vocab:>7}  float64 check on {args.check_tokens} tokens: "
                            f"max rel err {worst:.1e} ({'OK' if worst <= 1e-5 else 'ABOVE 1e-5'}): "
                            f"{detail}")
                print(rows[-1], flush=True)
    print()
    print(header)
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
