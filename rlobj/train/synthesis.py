r"""Model-made and program-made data: new problems synthesised from the policy's weaknesses.

:class:`WeaknessSynthesis` (after SwS, "Self-aware Weakness-driven Problem Synthesis") is a
:class:`~rlobj.train.data_loops.DataStrategy`: prompts the policy keeps failing (per-prompt
statistics) are handed to a synthesiser that writes new problems on the same concept; each new
problem is validated, deduplicated against every prompt seen, tagged with its provenance (parent
prompt, step, synthesiser) and queued for later steps. :class:`SimilarAddition` is a synthesiser
for the arithmetic tasks (same operand sizes, answer computed, so every problem is verified by
construction); an LLM synthesiser plugs into the same ``(record, count, seed) -> records`` hook.
"""

from __future__ import annotations

import random
import re
import zlib
from typing import Any

from rlobj.ops.errors import RlobjInputError, import_dotted
from rlobj.train.data_loops import DataStrategy, Selection

__all__ = ["WeaknessSynthesis", "SimilarAddition", "normalize_prompt"]


def normalize_prompt(text: str) -> str:
    """The deduplication key of a prompt: lower case, runs of white space collapsed.

    Example:
        >>> normalize_prompt("  12 +  3 = ") == normalize_prompt("12 + 3 =")
        True
    """
    return re.sub(r"\s+", " ", str(text).strip().lower())


class SimilarAddition:
    r"""New addition problems on the concept of ``a+b=``: operands with the same digit counts.

    Returns ``count`` records ``"c+d="`` with $c$, $d$ drawn uniformly among numbers with as many
    digits as $a$ and $b$, answer $c + d$ (so each is correct by construction). Records that are
    not ``a+b=`` sums give nothing.

    Example:
        >>> rows = SimilarAddition()({"prompt": "12+7="}, 2, seed=0)
        >>> [len(r["prompt"].split("+")[0]) for r in rows], all(int(r["answer"]) == eval(r["prompt"][:-1]) for r in rows)
        ([2, 2], True)
    """

    pattern = re.compile(r"^\s*(\d+)\+(\d+)=\s*$")

    def __call__(self, record: dict, count: int, seed: int) -> list[dict]:
        match = self.pattern.match(str(record.get("prompt", "")))
        if match is None:
            return []
        rng = random.Random(seed)
        out = []
        for _ in range(count):
            c, d = (rng.randint(10 ** (len(x) - 1) if len(x) > 1 else 0, 10 ** len(x) - 1) for x in match.groups())
            out.append({"prompt": f"{c}+{d}=", "answer": str(c + d), "completion": str(c + d)})
        return out

    def validate(self, record: dict) -> bool:
        """The record is ``c+d=`` with answer ``c + d``."""
        match = self.pattern.match(str(record.get("prompt", "")))
        return match is not None and str(record.get("answer")) == str(int(match.group(1)) + int(match.group(2)))


def _load(spec: Any, where: str):
    if isinstance(spec, str):
        spec = import_dotted(spec, where)
        spec = spec() if isinstance(spec, type) else spec
    if not callable(spec):
        raise RlobjInputError(f"{where}: expected a callable (record, count, seed) -> records, got {spec!r}")
    return spec


class WeaknessSynthesis(DataStrategy):
    r"""SwS-style synthesis from failure cases.

    A prompt is a **weakness** once it was tried ``>= min_attempts`` times and its overall solve
    rate is ``<= fail_rate``. After each step, every new weakness goes to ``synthesizer(record,
    per_weakness, seed)``; each returned record must pass ``validate`` (the synthesiser's own
    ``validate`` method when it has one, else: a non-empty ``prompt`` and an ``answer``) and have
    a prompt not seen before (:func:`normalize_prompt` against the stream's prompts served so far
    and every synthesised one); survivors get ``prompt_id = "syn<k>"`` and ``provenance =
    {"parent", "step", "synthesizer"}`` and join a queue. Each step serves up to
    $\lfloor f \cdot \text{count} \rfloor$ queued problems ($f$ = ``synth_fraction``, oldest
    first), then fresh prompts. The queue, the provenance log (``log``) and the seen keys are
    checkpointed.

    Warning:
        SwS extracts the concepts of failed problems with an LLM and writes new problems with it,
        then filters them by the policy's own solve rate. rlobj provides the loop, validation,
        deduplication and provenance; the concept extraction is the synthesiser's business
        (:class:`SimilarAddition` keeps the operand sizes of an addition).

    Args:
        synthesizer: a callable ``(record, count, seed) -> list[record]`` or its dotted path.
        per_weakness: problems asked for per weakness.
        synth_fraction: most of each step's prompts that may be synthesised problems.
        fail_rate: solve rate at or below which a prompt is a weakness.
        min_attempts: attempts before a prompt can be a weakness.
        seed: seed of the synthesiser's calls (CRC32 of seed, step and parent id: the same on every
            rank and after a resume).
    """

    def __init__(self, synthesizer: Any = "rlobj.train.synthesis.SimilarAddition", per_weakness: int = 2,
                 synth_fraction: float = 0.5, fail_rate: float = 0.0, min_attempts: int = 4, seed: int = 0):
        self.synthesizer = _load(synthesizer, "WeaknessSynthesis.synthesizer")
        for name, value in (("per_weakness", per_weakness), ("min_attempts", min_attempts)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RlobjInputError(f"WeaknessSynthesis.{name}: expected an int >= 1, got {value!r}")
        for name, value in (("synth_fraction", synth_fraction), ("fail_rate", fail_rate)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise RlobjInputError(f"WeaknessSynthesis.{name}: expected a number in [0, 1], got {value!r}")
        self.per_weakness, self.synth_fraction = per_weakness, float(synth_fraction)
        self.fail_rate, self.min_attempts, self.seed = float(fail_rate), min_attempts, int(seed)
        self.records: dict[str, dict] = {}  # every record served, by prompt id (parents of synthesis)
        self.queue: list[dict] = []
        self.log: list[dict] = []
        self.seen: set[str] = set()
        self.handled: set[str] = set()
        self._counts = {"synthesized": 0, "rejected_invalid": 0, "rejected_duplicate": 0}

    def _valid(self, record: Any) -> bool:
        check = getattr(self.synthesizer, "validate", None)
        if not isinstance(record, dict) or not str(record.get("prompt", "")).strip() or "answer" not in record:
            return False
        return bool(check(record)) if callable(check) else True

    def select(self, selection: Selection) -> list[dict]:
        take = min(len(self.queue), int(self.synth_fraction * selection.count))
        chosen = [dict(r) for r in self.queue[:take]]
        self.queue = self.queue[take:]
        fresh = selection.fresh[:selection.count - take]
        for record in fresh:
            self.records.setdefault(str(record["prompt_id"]), dict(record))
            self.seen.add(normalize_prompt(record["prompt"]))
        for record in chosen:
            self.records.setdefault(str(record["prompt_id"]), dict(record))
        self._stats, self._step = selection.stats, selection.step
        return chosen + fresh

    def observe(self, records, rewards, step) -> None:
        stats = getattr(self, "_stats", None)
        if stats is None:
            return
        self._counts = {"synthesized": 0, "rejected_invalid": 0, "rejected_duplicate": 0}
        for pid in sorted(self.records):
            rate = stats.solve_rate(pid)
            if pid in self.handled or rate is None or stats.attempts(pid) < self.min_attempts or rate > self.fail_rate:
                continue
            self.handled.add(pid)
            parent = self.records[pid]
            for new in self.synthesizer(dict(parent), self.per_weakness, zlib.crc32(f"{self.seed}:{step}:{pid}".encode())):
                if not self._valid(new):
                    self._counts["rejected_invalid"] += 1
                    continue
                key = normalize_prompt(new["prompt"])
                if key in self.seen:
                    self._counts["rejected_duplicate"] += 1
                    continue
                self.seen.add(key)
                provenance = {"parent": pid, "step": int(step), "synthesizer": type(self.synthesizer).__name__}
                made = {**new, "prompt_id": f"syn{len(self.log)}", "provenance": provenance}
                self.log.append({"prompt_id": made["prompt_id"], "prompt": made["prompt"], **provenance})
                self.queue.append(made)
                self._counts["synthesized"] += 1

    def metrics(self) -> dict[str, float]:
        return {**{f"sws/{k}": float(v) for k, v in self._counts.items()}, "sws/queued": float(len(self.queue))}

    def state_dict(self) -> dict:
        return {"records": {k: dict(v) for k, v in self.records.items()}, "queue": [dict(r) for r in self.queue],
                "log": [dict(r) for r in self.log], "seen": sorted(self.seen), "handled": sorted(self.handled)}

    def load_state_dict(self, state: dict) -> None:
        self.records = {k: dict(v) for k, v in (state.get("records") or {}).items()}
        self.queue = [dict(r) for r in state.get("queue") or []]
        self.log = [dict(r) for r in state.get("log") or []]
        self.seen, self.handled = set(state.get("seen") or []), set(state.get("handled") or [])
