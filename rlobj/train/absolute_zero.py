r"""Absolute Zero: the policy proposes code reasoning tasks, a sandbox checks them, the policy solves them.

After Zhao et al., "Absolute Zero: Reinforced Self-play Reasoning with Zero Data" (arXiv:2505.03335),
following the authors' code where it differs from the paper's text
(``LeapLabTHU/Absolute-Zero-Reasoner@a82124e514e27692aa9860c5ee21dbf9d81e3bc5``,
``absolute_zero_reasoner/rewards/reward_managers.py``, ``configs/azr_ppo_trainer.yaml``,
``utils/code_utils/{checks,templates}.py``).

Three task kinds over a program ``f``, an input ``i`` and an output ``o = f(i)``:

* **deduction**: given ``f`` and ``i``, give ``o`` (the reference's ``code_o``);
* **abduction**: given ``f`` and ``o``, give an input ``i'`` with ``f(i') == o`` (``code_i``);
* **induction**: given half of ``f``'s input/output pairs and a message, write a program that
  maps the other (hidden) half of the inputs to their outputs (``code_f``).

Two pieces, wired through the data loop:

* :class:`AbsoluteZero` (a :class:`~rlobj.train.data_loops.DataStrategy`, YAML ``data.strategy``)
  fills each step with **propose** prompts (a kind, reference tasks from its buffer; for induction a
  program from the buffer) and **solve** prompts (tasks from the buffer). Proposals the scorer
  validated come back through :meth:`~rlobj.train.data_loops.DataStrategy.share` (gathered from
  every rank in rank order), are deduplicated (:func:`~rlobj.train.code_tasks.task_key`), get an id
  and a provenance entry (proposer prompt, step, kind, learnability) in ``log``, and join the
  buffer the solver draws from. Buffer, log and counters are checkpointed.
* :class:`AbsoluteZeroScorer` (a :class:`~rlobj.train.stages.Scorer`, YAML ``model.scorer``)
  rewards both roles. A proposal is parsed, checked statically (:func:`~rlobj.train.code_tasks.
  parse_program`: banned imports and names), run twice per input in the sandbox
  (:class:`~rlobj.train.code_tasks.CodeRunner`; errors, timeouts and differing results reject it),
  and its output must be a literal. Each valid proposal is then tried ``n_samples`` times by the
  current policy (``ctx.sample``; these rollouts are not trained on), and its **learnability** is
  $r_\text{propose} = 1 - \bar s$ when $0 < \bar s < 1$, else $0$ ($\bar s$: the solve rate;
  the reference's ``generation_accuracy_convertion: one_minus``). A solve row's reward is its
  correctness $r_\text{solve} \in \{0, 1\}$ (induction: all hidden pairs right, the reference's
  ``code_f_reward_type: binary``). Both roles then get the reference's format-aware reward: the
  role reward when it is $> 0$, ``wrong_reward`` (-0.5) when the answer is well formed but earns
  0 (a wrong solution, or a valid proposal the solver always or never solves), ``format_reward``
  (-1) when it is malformed or the proposal is invalid.

Where rlobj differs from the reference: inputs and outputs must be Python literals and answers
are compared as literals in the caller (the reference ``eval``\ s model text in its own
process); every run of model-written code goes through rlobj's sandbox; the banned-module list
adds process and file access (:data:`~rlobj.train.code_tasks.BANNED_MODULES`); the reference's
optional diversity and complexity bonuses (off by default there) and composite functions are
not implemented; buffers are sampled uniformly.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from typing import Any

from rlobj.ops.errors import RlobjInputError
from rlobj.train.code_tasks import (
    CodeRunner,
    arguments,
    fenced_blocks,
    literal,
    parse_program,
    same_value,
    tagged_answer,
    task_key,
)
from rlobj.train.data_loops import DataStrategy, Selection
from rlobj.train.stages import Batch, Score, Scorer, StepContext

__all__ = ["AbsoluteZero", "AbsoluteZeroScorer", "KINDS", "validate_proposal", "check_solution"]

KINDS = ("deduction", "abduction", "induction")
#: The reference's seed triplet: the identity function on ``"Hello World"``.
SEED_PROGRAM = "def f(a):\n    return a"
SEED_INPUTS = ("'Hello World'", "1", "[1, 2]", "(3, 'x')")

PROPOSE = {
    "deduction": "Write a new deterministic Python function f and one input for it. Someone will see f and the "
                 "input and must give the output. Examples:\n{references}\nAnswer with a ```python block "
                 "holding f and an ```input block holding its arguments as Python literals.\n",
    "abduction": "Write a new deterministic Python function f and one input for it. Someone will see f and the "
                 "output and must find an input. Examples:\n{references}\nAnswer with a ```python block "
                 "holding f and an ```input block holding its arguments as Python literals.\n",
    "induction": "```python\n{program}\n```\nWrite {count} different inputs for f, each in its own ```input "
                 "block (arguments as Python literals), and a ```message block telling someone what kind of "
                 "function to write.\n",
}
SOLVE = {
    "deduction": "```python\n{program}\n```\nWhat does f({input}) return? Answer with the value in <answer></answer>.\n",
    "abduction": "```python\n{program}\n```\nGive arguments x with f(x) == {output}. Answer in <answer></answer>.\n",
    "induction": "{message}\nWrite a Python function f with:\n{examples}\nAnswer with the program in "
                 "<answer></answer>.\n",
}


def _reference(task: dict) -> str:
    return f"```python\n{task['program']}\n```\n```input\n{task['input']}\n```"


def solve_prompt(task: dict) -> str:
    """The solver's prompt for a task."""
    if task["kind"] == "induction":
        half = len(task["inputs"]) // 2
        examples = "\n".join(f"f({i}) == {o}" for i, o in zip(task["inputs"][:half], task["outputs"][:half],
                                                               strict=True))
        return SOLVE["induction"].format(message=task["message"], examples=examples)
    return SOLVE[task["kind"]].format(**task)


def _run_once(runner: CodeRunner, program: str, inputs: list[str]) -> tuple[str, list[str]]:
    """Status and outputs of ``f`` on ``inputs``, each call run twice (the reference's determinism check)."""
    status, results = runner.run(program, inputs, repeat=2)
    if status != "ok":
        return status, []
    if len(results) != len(inputs) or any(r is None for r in results):
        return "runtime_error", []
    if any(r[0] != r[1] for r in results):
        return "nondeterministic", []
    if not all(literal(r[0])[0] for r in results):
        return "output_not_literal", []
    return "valid", [r[0] for r in results]


def validate_proposal(kind: str, text: str, runner: CodeRunner, program: str | None = None,
                      count: int = 4) -> tuple[str, dict | None]:
    """Check a proposer's completion: ``(status, task)``, ``task`` None unless status is ``"valid"``.

    Deduction/abduction: the first ```` ```python ```` block is ``f``, the first ```` ```input ````
    block its arguments. Induction: ``program`` is given; ``count`` ```` ```input ```` blocks and a
    ```` ```message ```` block. Statuses: ``format_error``, ``syntax_error``, ``no_function_f``,
    ``banned_import``, ``banned_name``, ``input_not_literal``, ``wrong_input_count``,
    ``runtime_error``, ``timeout``, ``nondeterministic``, ``output_not_literal``, ``valid``.
    """
    if kind not in KINDS:
        raise RlobjInputError(f"Absolute Zero: task kind must be one of {KINDS}, got {kind!r}")
    if kind == "induction":
        inputs, message = fenced_blocks(text, "input"), fenced_blocks(text, "message")
        if not message or not inputs:
            return "format_error", None
        if len(inputs) != count:
            return "wrong_input_count", None
    else:
        sources, inputs = fenced_blocks(text, "python"), fenced_blocks(text, "input")[:1]
        if not sources or not inputs:
            return "format_error", None
        program = sources[0]
    status, normal = parse_program(program or "")
    if status != "ok":
        return status, None
    inputs = [i.strip() for i in inputs]
    if not all(arguments(i)[0] for i in inputs):
        return "input_not_literal", None
    status, outputs = _run_once(runner, program, inputs)
    if status != "valid":
        return status, None
    if kind == "induction":
        return "valid", {"kind": kind, "program": normal, "inputs": inputs, "outputs": outputs,
                         "message": message[0].strip()}
    return "valid", {"kind": kind, "program": normal, "input": inputs[0], "output": outputs[0]}


def check_solution(task: dict, text: str, runner: CodeRunner, answer_tags: bool = True) -> tuple[bool, bool]:
    """``(well_formed, correct)`` of a solver's completion for ``task`` (see the module docstring)."""
    answer = tagged_answer(text) if answer_tags else str(text).strip()
    if answer is None or not answer:
        return False, False
    if task["kind"] == "deduction":
        return True, same_value(answer, task["output"])
    if task["kind"] == "abduction":
        if not arguments(answer)[0]:
            return True, False
        status, outputs = runner.run(task["program"], [answer])
        return True, status == "ok" and bool(outputs) and outputs[0] is not None and same_value(outputs[0][0],
                                                                                                task["output"])
    program = (fenced_blocks(answer, "python") or [answer])[0]
    status, _ = parse_program(program)
    if status in ("syntax_error", "no_function_f"):
        return False, False
    if status != "ok":
        return True, False
    half = len(task["inputs"]) // 2
    status, outputs = runner.run(program, task["inputs"][half:])
    return True, status == "ok" and all(o is not None and same_value(o[0], gold)
                                        for o, gold in zip(outputs, task["outputs"][half:], strict=True))


def _roles(batch: Batch, fallback: bool) -> list[dict | None]:
    out = []
    for index, record in enumerate(batch.records):
        spec = record.get("azr") if isinstance(record, dict) else None
        if not isinstance(spec, dict) or spec.get("role") not in ("propose", "solve"):
            if fallback:
                spec = None
            else:
                raise RlobjInputError(f"AbsoluteZeroScorer: row {index} has no 'azr' role (its record comes from "
                                      "data.strategy AbsoluteZero); give the scorer a `verifier` for other rows "
                                      "(an evaluation set)")
        out.append(spec)
    return out


class AbsoluteZeroScorer(Scorer):
    """Rewards of the proposer and solver rows (see the module docstring).

    Args:
        n_samples: solver rollouts per valid proposal that estimate its solve rate (reference: 8).
        wrong_reward: reward of a well-formed answer that earns 0 (reference: -0.5).
        format_reward: reward of a malformed answer or an invalid proposal (reference: -1).
        answer_tags: solver answers are read from ``<answer>...</answer>``; False: the whole completion.
        count: inputs an induction proposal must give (reference ``num_inputs``: 10).
        wall_seconds, memory_mb, allow_missing: sandbox settings (:class:`~rlobj.train.code_tasks.CodeRunner`).
        salt: sampling salt of the estimation rollouts.
        verifier: reward function ``(completion, record) -> float`` (or its dotted path) of rows that
            are not Absolute Zero rows, e.g. an evaluation benchmark's; None: such rows are an error.

    Each propose row's record is replaced by a copy with ``azr_result`` = ``{"status", "task",
    "solve_rate", "learnability"}``; :class:`AbsoluteZero` reads it after the step. Score fields:
    ``learnability`` and ``solve_rate`` (-1 when not estimated) for propose rows, ``accuracy`` for
    solve rows. Metrics ``azr/valid_proposals``, ``azr/solve_accuracy``, ``azr/learnability_mean``.
    """

    def __init__(self, n_samples: int = 8, wrong_reward: float = -0.5, format_reward: float = -1.0,
                 answer_tags: bool = True, count: int = 4, wall_seconds: float = 5.0, memory_mb: int = 512,
                 allow_missing: Any = "auto", salt: int = 4099, verifier: Any = None):
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise RlobjInputError(f"AbsoluteZeroScorer.n_samples: expected an int >= 1, got {n_samples!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 2:
            raise RlobjInputError(f"AbsoluteZeroScorer.count: expected an int >= 2, got {count!r}")
        self.n_samples, self.count, self.answer_tags, self.salt = n_samples, count, bool(answer_tags), int(salt)
        self.wrong_reward, self.format_reward = float(wrong_reward), float(format_reward)
        self.runner = CodeRunner(wall_seconds=wall_seconds, memory_mb=memory_mb, allow_missing=allow_missing)
        if isinstance(verifier, str):
            from rlobj.train.synthesis import _load

            verifier = _load(verifier, "AbsoluteZeroScorer.verifier")
        if verifier is not None and not callable(verifier):
            raise RlobjInputError(f"AbsoluteZeroScorer.verifier: expected a callable, got {verifier!r}")
        self.verifier = verifier

    def role_reward(self, value: float, well_formed: bool) -> float:
        """The reference's format-aware reward: ``value`` if > 0, else ``wrong_reward`` if well formed,
        else ``format_reward``."""
        return value if well_formed and value > 0 else (self.wrong_reward if well_formed else self.format_reward)

    def solve_rates(self, ctx: StepContext, tasks: list[dict]) -> list[float]:
        """Mean correctness of ``n_samples`` fresh policy rollouts on each task."""
        if not tasks:
            return []
        records = [{"prompt": solve_prompt(t), "azr": {"role": "solve", "kind": t["kind"], "task": t}} for t in tasks]
        drawn = ctx.sample(records, n=self.n_samples, salt=self.salt)
        texts, rows = ctx.decode(drawn.rollout), drawn.rollout.group_ids.tolist()
        order = {g: i for i, g in enumerate(dict.fromkeys(rows))}
        wins, tries = [0] * len(tasks), [0] * len(tasks)
        for text, group in zip(texts, rows, strict=True):
            j = order[group]
            wins[j] += int(check_solution(tasks[j], text, self.runner, self.answer_tags)[1])
            tries[j] += 1
        return [w / t if t else 0.0 for w, t in zip(wins, tries, strict=True)]

    def __call__(self, ctx: StepContext, batch: Batch) -> list[Score]:
        roles, texts = _roles(batch, self.verifier is not None), ctx.decode(batch.rollout)
        scores: list[Score | None] = [None] * len(batch)
        proposals: list[tuple[int, str, dict | None]] = []
        for b, (spec, text) in enumerate(zip(roles, texts, strict=True)):
            if spec is None:
                scores[b] = Score(float(self.verifier(text, batch.records[b])))
            elif spec["role"] == "solve":
                formed, correct = check_solution(spec["task"], text, self.runner, self.answer_tags)
                scores[b] = Score(self.role_reward(float(correct), formed), fields={"accuracy": float(correct)})
            else:
                status, task = validate_proposal(spec["kind"], text, self.runner, spec.get("program"), self.count)
                proposals.append((b, status, task))
        valid = [(b, task) for b, status, task in proposals if status == "valid"]
        rates = dict(zip([b for b, _ in valid], self.solve_rates(ctx, [t for _, t in valid]), strict=True))
        learn = []
        for b, status, task in proposals:
            rate = rates.get(b)
            value = (1.0 - rate) if rate is not None and 0.0 < rate < 1.0 else 0.0
            learn += [value] if rate is not None else []
            scores[b] = Score(self.role_reward(value, status == "valid"),
                              fields={"learnability": value, "solve_rate": -1.0 if rate is None else rate})
            batch.records[b] = {**batch.records[b], "azr_result": {"status": status, "task": task, "learnability": value,
                                                                   "solve_rate": rate}}
        solved = [s.fields["accuracy"] for s in scores if s is not None and "accuracy" in s.fields]
        batch.metrics.update({"azr/valid_proposals": float(len(valid)),
                              "azr/solve_accuracy": sum(solved) / len(solved) if solved else 0.0,
                              "azr/learnability_mean": sum(learn) / len(learn) if learn else 0.0})
        return scores


class AbsoluteZero(DataStrategy):
    """Propose and solve prompts from a buffer of validated tasks (see the module docstring).

    The training source's records are not used (the tasks come from the buffer, which starts from
    the reference's seed: the identity function on ``'Hello World'``, validated in the sandbox).

    Args:
        kinds: task kinds in use, from ``("deduction", "abduction", "induction")``.
        propose_fraction: share of each step's prompts that are propose prompts (rounded).
        references: buffer tasks shown in a deduction/abduction propose prompt (reference ``io_n``: 6).
        count: inputs asked of an induction proposal (must match the scorer's ``count``).
        seed: seed of the buffer draws (CRC32 of seed and step: the same on every rank and after a resume).
        wall_seconds, allow_missing: sandbox settings for validating the seed tasks.
    """

    def __init__(self, kinds: list[str] = KINDS, propose_fraction: float = 0.5, references: int = 3,  # noqa: B006
                 count: int = 4, seed: int = 0, wall_seconds: float = 5.0, allow_missing: Any = "auto"):
        kinds = tuple(kinds)
        if not kinds or any(k not in KINDS for k in kinds):
            raise RlobjInputError(f"AbsoluteZero.kinds: expected a non-empty subset of {KINDS}, got {kinds!r}")
        if isinstance(propose_fraction, bool) or not isinstance(propose_fraction, (int, float)) \
                or not 0.0 <= propose_fraction <= 1.0:
            raise RlobjInputError(f"AbsoluteZero.propose_fraction: expected a number in [0, 1], got {propose_fraction!r}")
        for name, value, low in (("references", references, 1), ("count", count, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise RlobjInputError(f"AbsoluteZero.{name}: expected an int >= {low}, got {value!r}")
        self.kinds, self.propose_fraction, self.references = kinds, float(propose_fraction), references
        self.count, self.seed = count, int(seed)
        self.buffers: dict[str, list[dict]] = {k: [] for k in KINDS}
        self.log: list[dict] = []
        self.seen: set[str] = set()
        self.counts: Counter = Counter()
        self._last: Counter = Counter()
        runner = CodeRunner(wall_seconds=wall_seconds, allow_missing=allow_missing)
        status, outputs = _run_once(runner, SEED_PROGRAM, list(SEED_INPUTS))
        if status != "valid":
            raise RlobjInputError(f"AbsoluteZero: the seed task did not run in the sandbox ({status})")
        seeds = [{"kind": k, "program": SEED_PROGRAM, "input": SEED_INPUTS[0], "output": outputs[0]}
                 for k in ("deduction", "abduction")]
        seeds.append({"kind": "induction", "program": SEED_PROGRAM, "inputs": list(SEED_INPUTS),
                      "outputs": outputs, "message": "Return the argument unchanged."})
        for task in seeds:
            self.add(task, {"proposer": "seed", "step": -1})

    def add(self, task: dict, provenance: dict) -> bool:
        """Add a validated task unless a task with its :func:`~rlobj.train.code_tasks.task_key` is known."""
        key = task_key(task["kind"], task["program"], task.get("inputs") or [task["input"]])
        if key in self.seen:
            return False
        self.seen.add(key)
        made = {**task, "id": f"azr{len(self.log)}"}
        self.buffers[task["kind"]].append(made)
        self.log.append({"id": made["id"], "kind": task["kind"], **provenance})
        return True

    def select(self, selection: Selection) -> list[dict]:
        rng = random.Random(zlib.crc32(f"{self.seed}:{selection.step}".encode()))
        propose = round(self.propose_fraction * selection.count)
        programs = self.buffers["deduction"] + self.buffers["abduction"] or self.buffers["induction"]
        out = []
        for slot in range(selection.count):
            kind = self.kinds[(selection.step + slot) % len(self.kinds)]
            if slot < propose:
                spec = {"role": "propose", "kind": kind}
                if kind == "induction":
                    spec["program"] = rng.choice(programs)["program"]
                    prompt = PROPOSE[kind].format(program=spec["program"], count=self.count)
                else:
                    pool = self.buffers[kind]
                    shown = rng.sample(pool, min(self.references, len(pool)))
                    prompt = PROPOSE[kind].format(references="\n".join(_reference(t) for t in shown))
                out.append({"prompt": prompt, "prompt_id": f"azr-propose/{kind}/{selection.step}/{slot}",
                            "domain": "propose", "azr": spec})
            else:
                task = rng.choice(self.buffers[kind])
                out.append({"prompt": solve_prompt(task), "prompt_id": task["id"], "domain": f"solve/{kind}",
                            "azr": {"role": "solve", "kind": kind, "task": task}})
        return out

    def share(self, records: list[dict], rewards: list[float]) -> list:
        return [{"proposer": str(r.get("prompt_id")), **r["azr_result"]} for r in records
                if isinstance(r, dict) and isinstance(r.get("azr_result"), dict)]

    def absorb(self, items: list, step: int) -> None:
        self._last = Counter()
        for item in items:
            status = str(item.get("status"))
            if status == "valid":
                added = self.add(dict(item["task"]), {"proposer": item["proposer"], "step": int(step),
                                                      "learnability": float(item.get("learnability", 0.0))})
                status = "added" if added else "duplicate"
            self._last[status] += 1
        self.counts.update(self._last)

    def metrics(self) -> dict[str, float]:
        out = {f"azr/{k}": float(v) for k, v in sorted(self._last.items())}
        out.update({f"azr/buffer_{k}": float(len(v)) for k, v in self.buffers.items()})
        return out

    def state_dict(self) -> dict:
        return {"buffers": {k: [dict(t) for t in v] for k, v in self.buffers.items()},
                "log": [dict(e) for e in self.log], "seen": sorted(self.seen), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        self.buffers = {k: [dict(t) for t in (state.get("buffers") or {}).get(k, [])] for k in KINDS}
        self.log = [dict(e) for e in state.get("log") or []]
        self.seen, self.counts = set(state.get("seen") or []), Counter(state.get("counts") or {})
