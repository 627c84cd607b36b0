r"""Each claim's table, plots and verdict, from the cached runs (``claims.train_one``).

The verdict rules are the pre-registered ones of ``docs/reproductions.md``: a comparison counts in
a seed when its difference passes the stated margin; the predicted direction in every seed is
*held*, in at most one seed *not held*, in two of three *inconclusive*; a failed precondition
makes the claim *inconclusive*.
"""

import json
import statistics
import time

import _testbed as T
import claims as C

#: RL steps of every run (the pre-registered setting).
RL_STEPS = 60


def _runs(keys, seeds, steps, smoke):
    return {key: [json.loads(C.run_path(key, s, steps, smoke).read_text()) for s in seeds] for key in keys}


def _bases(seeds, smoke):
    return [json.loads(C.base_path(s, smoke).read_text()) for s in seeds]


def _pk(record, k):
    return C.passk(record["counts"], record["n"], k)


def _ks(ks, *groups):
    """The ``ks`` that every record of ``groups`` has enough samples for (smoke runs sample few)."""
    n = min(record["n"] for group in groups for record in group)
    return [k for k in ks if k <= n]


def _verdict_line(name, ups, seeds, detail):
    return f"- **{name}**: predicted direction in {ups} of {seeds} seed(s) -> **{C.verdict(ups, seeds)}** ({detail})"


def _reward_curves(runs, labels):
    return {labels[k]: [[(h_i + 1, v) for h_i, v in enumerate(C.moving_average([h["reward/mean"] for h in r["history"]]))]
                        for r in rs] for k, rs in runs.items()}


def _entropy_curves(runs, labels):
    return {labels[k]: [[(i + 1, v) for i, v in enumerate(C.entropy_series(r))] for r in rs] for k, rs in runs.items()}


def write_warm_table(root, infos, args):
    lines = ["| seed | sft steps | validation pass@1 checks | eval pass@1 | eval pass@8 | eval pass@64 | "
             "eval pass@128 |", "|---|---|---|---|---|---|---|"]
    for info in infos:
        base = info["base"]
        checks = ", ".join(f"{s}: {p:.2f}" for s, p in info["checks"])
        lines.append(f"| {info['seed']} | {info['sft_steps']} | {checks} | {base.get('pass@1', 0):.3f} | "
                     f"{base.get('pass@8', float('nan')):.3f} | {base.get('pass@64', float('nan')):.3f} | "
                     f"{base.get('pass@128', float('nan')):.3f} |")
    folder = root / "warm_start"
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    (folder / "results.md").write_text(text + f"\n\n_{'smoke' if args.smoke else 'full'} run._\n")
    (folder / "results.json").write_text(json.dumps(infos, indent=1, default=float))


def report(claim, root, seeds, steps, args):
    started = getattr(args, "started", None) or time.perf_counter()
    folder = root / claim
    folder.mkdir(parents=True, exist_ok=True)
    labels = C.CLAIMS[claim]
    runs = _runs(labels, seeds, steps, args.smoke)
    bases = _bases(seeds, args.smoke)
    text, extra = REPORTS[claim](folder, labels, runs, bases, len(seeds))
    T.write_results(folder, text, {"claim": claim, "steps": steps, **extra}, started, args)


def _entropy_collapse(folder, labels, runs, bases, n_seeds):
    rows = {}
    for key, rs in runs.items():
        heads, tails = zip(*(C.head_tail(C.entropy_series(r)) for r in rs))
        rows[labels[key]] = {"entropy first 5 steps": list(heads), "entropy last 10 steps": list(tails),
                             "end / start": [t / h for h, t in zip(heads, tails)],
                             "pass@1 end": [r["eval"]["pass@1"] for r in rs],
                             "train reward last 10": [statistics.mean(h["reward/mean"] for h in r["history"][-10:])
                                                      for r in rs]}
    g = rows["GRPO"]
    collapse = sum(e < 0.85 for e in g["end / start"])
    lines = [f"- precondition (GRPO's entropy falls below 0.85 x its start): {collapse} of {n_seeds} seed(s)"
             f" -> {'met' if collapse >= min(2, n_seeds) else 'NOT met: the claim is inconclusive'}"]
    for name in ("Lp-Reg (recipe)", "SIREN (recipe)"):
        m = rows[name]
        ups = sum(m["entropy last 10 steps"][i] > g["entropy last 10 steps"][i]
                  and m["pass@1 end"][i] >= g["pass@1 end"][i] - 0.05 for i in range(n_seeds))
        lines.append(_verdict_line(f"{name} keeps entropy above GRPO's (pass@1 within 0.05)", ups, n_seeds,
                                   "end entropy and pass@1 per seed in the tables"))
    T.plot_curves(_entropy_curves(runs, labels), folder / "entropy.png", "mean token entropy of the samples",
                  "RL step", "entropy (nats)", smooth=5)
    T.plot_curves(_reward_curves(runs, labels), folder / "train_reward.png", "training reward (10-step mean)",
                  "RL step", "reward")
    text = "\n\n".join([T.markdown_table(rows, list(g)), T.per_seed_table(rows, "entropy last 10 steps"),
                        T.per_seed_table(rows, "pass@1 end"), "Verdicts by the pre-registered rule:\n\n"
                        + "\n".join(lines)])
    return text, {"rows": rows, "verdicts": lines}


def _psr_nsr(folder, labels, runs, bases, n_seeds):
    ks = _ks((1, 2, 4, 8, 16, 32, 64), bases, *runs.values())
    curves = {"base (warm start)": [[(k, _pk(b, k)) for k in ks] for b in bases]}
    for key, rs in runs.items():
        curves[labels[key]] = [[(k, _pk(r, k)) for k in ks] for r in rs]
    rows = {name: {f"pass@{k}": [dict(c)[k] for c in cs] for k in ks} for name, cs in curves.items()}

    def at(name, k, i):  # a smoke run samples fewer than 64: its largest k stands in
        return rows[name][f"pass@{min(k, ks[-1])}"][i]

    base, lines = "base (warm start)", []
    ups = sum(at("PSR", 1, i) - at(base, 1, i) > 0.02 and at(base, 64, i) - at("PSR", 64, i) > 0.02
              for i in range(n_seeds))
    lines.append(_verdict_line("PSR: pass@1 above base, pass@64 below base", ups, n_seeds, "margin 0.02"))
    ups = sum(min(at("NSR", k, i) - at(base, k, i) for k in (1, 4, 16, 64)) >= -0.02
              and at("NSR", 64, i) - at("PSR", 64, i) > 0.02 for i in range(n_seeds))
    lines.append(_verdict_line("NSR: pass@k >= base - 0.02 for k in 1, 4, 16, 64 and pass@64 above PSR's",
                               ups, n_seeds, "margin 0.02"))
    w = "W-REINFORCE (λ=0.1)"
    ups = sum(at(w, 1, i) - at(base, 1, i) > 0.02 and at(w, 64, i) >= at(base, 64, i) - 0.02 for i in range(n_seeds))
    lines.append(_verdict_line("W-REINFORCE: pass@1 above base and pass@64 >= base - 0.02", ups, n_seeds,
                               "margin 0.02"))
    T.plot_curves(curves, folder / "passk.png", "pass@k after RL (64 problems)", "k", "pass@k", logx=True)
    T.plot_curves(_reward_curves(runs, labels), folder / "train_reward.png", "training reward (10-step mean)",
                  "RL step", "reward")
    text = "\n\n".join([T.markdown_table(rows, [f"pass@{k}" for k in ks]), T.per_seed_table(rows, "pass@1"),
                        T.per_seed_table(rows, f"pass@{ks[-1]}"), "Verdicts by the pre-registered rule:\n\n" + "\n".join(lines)])
    return text, {"rows": rows, "verdicts": lines}


def _forking(folder, labels, runs, bases, n_seeds):
    rows = {}
    for key, rs in runs.items():
        rows[labels[key]] = {"pass@1 end": [r["eval"]["pass@1"] for r in rs],
                             "pass@16 end": [r["eval"].get("pass@16", float("nan")) for r in rs],
                             "train reward last 20": [statistics.mean(h["reward/mean"] for h in r["history"][-20:])
                                                      for r in rs],
                             "entropy last 10": [C.head_tail(C.entropy_series(r))[1] for r in rs]}
    a, t, b = (rows[labels[k]]["pass@1 end"] for k in ("forking_all", "forking_top20", "forking_bottom80"))
    ups = sum(t[i] >= a[i] - 0.02 and b[i] < a[i] - 0.02 for i in range(n_seeds))
    lines = [_verdict_line("top-20% >= all tokens - 0.02 and bottom-80% < all tokens - 0.02 (pass@1)", ups,
                           n_seeds, "margin 0.02")]
    T.plot_curves(_reward_curves(runs, labels), folder / "train_reward.png", "training reward (10-step mean)",
                  "RL step", "reward")
    T.plot_curves(_entropy_curves(runs, labels), folder / "entropy.png", "mean token entropy of the samples",
                  "RL step", "entropy (nats)", smooth=5)
    text = "\n\n".join([T.markdown_table(rows, list(rows[labels["forking_all"]])), T.per_seed_table(rows, "pass@1 end"),
                        "Verdicts by the pre-registered rule:\n\n" + "\n".join(lines)])
    return text, {"rows": rows, "verdicts": lines}


def _noisy(folder, labels, runs, bases, n_seeds):
    rows, curves = {}, {}
    for key, rs in runs.items():
        start = [_pk(b, 1) for b in bases]
        rows[labels[key]] = {"pass@1 end": [r["eval"]["pass@1"] for r in rs],
                             "gain over warm start": [r["eval"]["pass@1"] - s for r, s in zip(rs, start)],
                             "curve mean (AUC)": [statistics.mean(p for _, p in r["curve"]) if r["curve"] else
                                                  float("nan") for r in rs]}
        curves[labels[key]] = [[(s, p) for s, p in r["curve"]] for r in rs]
    g = {k: rows[labels[k]]["gain over warm start"] for k in labels}
    auc = {k: rows[labels[k]]["curve mean (AUC)"] for k in labels}
    pre = sum(g["noisy_clean"][i] - g["noisy_uncorrected"][i] > 0.02 for i in range(n_seeds))
    lines = [f"- precondition (noise hurts: clean gain > uncorrected gain + 0.02): {pre} of {n_seeds} seed(s) -> "
             f"{'met' if pre >= min(2, n_seeds) else 'NOT met: the claim is inconclusive'}"]
    for key in ("noisy_backward", "noisy_forward"):
        ups = sum(g[key][i] >= g["noisy_uncorrected"][i] + 0.02 and g[key][i] >= 0.7 * g["noisy_clean"][i]
                  for i in range(n_seeds))
        lines.append(_verdict_line(f"{labels[key]} recovers most of the clean gain (>= 0.7 x clean, "
                                   ">= uncorrected + 0.02)", ups, n_seeds, "pass@1 gains"))
    ups = sum(auc["noisy_forward"][i] > auc["noisy_backward"][i] for i in range(n_seeds))
    lines.append(_verdict_line("forward converges faster than backward (higher mean clean pass@1 over the curve)",
                               ups, n_seeds, "curve every 10 steps, 32 problems x 8 samples"))
    T.plot_curves(curves, folder / "pass1.png", f"clean pass@1 during RL (ρ0={C.RHO0}, ρ1={C.RHO1})", "RL step",
                  "pass@1 (32 problems x 8)")
    text = "\n\n".join([T.markdown_table(rows, list(rows[labels["noisy_clean"]])),
                        T.per_seed_table(rows, "gain over warm start"),
                        "Verdicts by the pre-registered rule:\n\n" + "\n".join(lines)])
    return text, {"rows": rows, "verdicts": lines}


def _support(folder, labels, runs, bases, n_seeds):
    ks = _ks((1, 2, 4, 8, 16, 32, 64, 128), bases, runs["grpo"])
    grpo = runs["grpo"]
    curves = {"base (warm start)": [[(k, _pk(b, k)) for k in ks] for b in bases],
              "GRPO": [[(k, _pk(r, k)) for k in ks] for r in grpo]}
    rows = {name: {f"pass@{k}": [dict(c)[k] for c in cs] for k in ks} for name, cs in curves.items()}
    support = {"lost (base solved, GRPO not)": [], "gained (GRPO solved, base not)": [], "solved by both": [],
               "solved by neither": []}
    for b, r in zip(bases, grpo):
        pairs = list(zip(b["counts"], r["counts"]))
        support["lost (base solved, GRPO not)"].append(float(sum(x > 0 and y == 0 for x, y in pairs)))
        support["gained (GRPO solved, base not)"].append(float(sum(x == 0 and y > 0 for x, y in pairs)))
        support["solved by both"].append(float(sum(x > 0 and y > 0 for x, y in pairs)))
        support["solved by neither"].append(float(sum(x == 0 and y == 0 for x, y in pairs)))
    # how many problems are rare (descriptive, not part of the rule): solved by 0, 1-4 (< 1/32),
    # 5-16, > 16 of the samples, per seed, before and after
    bins = (("0", 0, 0), ("1-4", 1, 4), ("5-16", 5, 16), ("> 16", 17, None))
    rarity = {f"{name}, seed {i}": {f"solved by {label}": float(sum(lo <= c and (hi is None or c <= hi)
                                                                    for c in run["counts"]))
                                   for label, lo, hi in bins}
              for i, (b, r) in enumerate(zip(bases, grpo)) for name, run in (("base", b), ("GRPO", r))}
    ups = sum(rows["GRPO"]["pass@1"][i] - rows["base (warm start)"]["pass@1"][i] > 0.02
              and support["lost (base solved, GRPO not)"][i] > support["gained (GRPO solved, base not)"][i]
              for i in range(n_seeds))
    lines = [_verdict_line("GRPO raises pass@1 (> 0.02) and loses more problems than it gains at k = 128", ups,
                           n_seeds, f"{len(bases[0]['counts'])} problems x {bases[0]['n']} samples")]
    T.plot_curves(curves, folder / "passk.png", "pass@k, warm start vs GRPO", "k", "pass@k", logx=True)
    T.plot_solve_rates([([c / b["n"] for c in b["counts"]], [c / r["n"] for c in r["counts"]])
                        for b, r in zip(bases, grpo)], folder / "solve_rates.png", "warm-start solve rate")
    text = "\n\n".join([T.markdown_table(rows, [f"pass@{k}" for k in ks], first="model"),
                        T.markdown_table({"problems": support}, list(support), first=""),
                        T.per_seed_table({"problems": support}, "lost (base solved, GRPO not)"),
                        T.per_seed_table({"problems": support}, "gained (GRPO solved, base not)"),
                        f"Problems by the number of the {bases[0]['n']} samples that solve them:\n\n"
                        + _count_table(rarity),
                        "Verdicts by the pre-registered rule:\n\n" + "\n".join(lines)])
    return text, {"rows": rows, "support": support, "rarity": rarity, "verdicts": lines}


def _count_table(rows: dict[str, dict[str, float]]) -> str:
    columns = list(next(iter(rows.values())))
    lines = ["| model, seed | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{v:.0f}" for v in row.values()) + " |" for name, row in rows.items()]
    return "\n".join(lines)


def _clip_higher(folder, labels, runs, bases, n_seeds):
    rows = {}
    for key, rs in runs.items():
        heads, tails = zip(*(C.head_tail(C.entropy_series(r)) for r in rs))
        rows[labels[key]] = {"entropy first 5": list(heads), "entropy last 10": list(tails),
                             "pass@1 end": [r["eval"]["pass@1"] for r in rs],
                             "clip fraction (mean)": [statistics.mean(h.get("clip_frac", 0.0) for h in r["history"])
                                                      for r in rs]}
    hi, sym = rows[labels["dapo_clip_higher"]], rows[labels["dapo_symmetric"]]
    ups = sum(hi["entropy last 10"][i] > 1.05 * sym["entropy last 10"][i] for i in range(n_seeds))
    lines = [_verdict_line("clip-higher's end entropy > 1.05 x symmetric clipping's", ups, n_seeds,
                           "mean token entropy over the last 10 steps")]
    T.plot_curves(_entropy_curves(runs, labels), folder / "entropy.png", "mean token entropy of the samples",
                  "RL step", "entropy (nats)", smooth=5)
    T.plot_curves(_reward_curves(runs, labels), folder / "train_reward.png", "training reward (10-step mean)",
                  "RL step", "reward")
    text = "\n\n".join([T.markdown_table(rows, list(hi)), T.per_seed_table(rows, "entropy last 10"),
                        "Verdicts by the pre-registered rule:\n\n" + "\n".join(lines)])
    return text, {"rows": rows, "verdicts": lines}


def _gspo(folder, labels, runs, bases, n_seeds):
    rows = {}
    for key, rs in runs.items():
        rows[labels[key]] = {
            "max drawdown of 10-step reward": [C.max_drawdown(C.moving_average([h["reward/mean"] for h in r["history"]]))
                                               for r in rs],
            "train reward last 10": [statistics.mean(h["reward/mean"] for h in r["history"][-10:]) for r in rs],
            "pass@1 end": [r["eval"]["pass@1"] for r in rs],
            "KL(old‖new) k3, mean": [statistics.mean(h.get("kl/old_k3", 0.0) for h in r["history"]) for r in rs],
            "grad norm, max": [max(h.get("grad_norm", 0.0) for h in r["history"]) for r in rs]}
    s, g = rows[labels["gspo_epochs2"]], rows[labels["grpo_epochs2"]]
    key = "max drawdown of 10-step reward"
    ups = sum(s[key][i] < g[key][i] - 0.02 for i in range(n_seeds))
    lines = [_verdict_line("GSPO's max drawdown < GRPO's - 0.02", ups, n_seeds, "10-step moving average of the "
                           "training reward")]
    T.plot_curves(_reward_curves(runs, labels), folder / "train_reward.png",
                  "training reward (10-step mean), 2 epochs x 4 mini-batches", "RL step", "reward")
    T.plot_curves(_entropy_curves(runs, labels), folder / "entropy.png", "mean token entropy of the samples",
                  "RL step", "entropy (nats)", smooth=5)
    text = "\n\n".join([T.markdown_table(rows, list(s)), T.per_seed_table(rows, key),
                        T.per_seed_table(rows, "pass@1 end"), "Verdicts by the pre-registered rule:\n\n"
                        + "\n".join(lines)])
    return text, {"rows": rows, "verdicts": lines}


REPORTS = {"entropy_collapse": _entropy_collapse, "psr_nsr": _psr_nsr, "forking_tokens": _forking,
           "noisy_verifier": _noisy, "support_shrinkage": _support, "clip_higher": _clip_higher,
           "gspo_stability": _gspo}
