r"""RLVER's simulated user: a second model plays a persona whose emotion score is the reward.

RLVER (Wang et al., "RLVER: Reinforcement Learning with Verifiable Emotion Rewards for Empathetic
Agents", arXiv 2507.03112; the authors' code: Tencent ``digitalhuman/RLVER``) trains a dialogue
policy against a simulated user. Facts carried over from the paper and its code:

* the user opens the conversation, in character (a persona and a scene from the dataset row);
* the user keeps an emotion score $e \in [0, 100]$, starting at $e_0 = 30$; after each policy
  turn the user model first *judges* the reply (its reasoning ends with a signed change
  $\Delta_k$), $e_k = \min(100, e_{k-1} + \Delta_k)$, then *replies* in character, its tone set
  by the emotion band (S: $e \ge 100$, A: $\ge 70$, B: $\ge 40$, C: $\ge 10$, F: below);
* the dialogue ends when the score reaches 100 (the user says goodbye satisfied) or 0 or below
  (the user leaves), or at the turn budget;
* the reward is the emotion score, normalised by 100.

Here each turn's reward is $(e_k - e_{k-1})/100$, so an episode's return is $(e_T - e_0)/100$:
the paper's $e_T/100$ less the constant $e_0/100$, which leaves every group-baselined advantage
unchanged and puts credit on the turns that moved the score (:class:`~rlobj.terms.turn_returns`).
The prompts below are rlobj's own (English); the judge's change is parsed from its last
``Change: <int>`` line; a judgement without one counts as 0 and is reported in ``info``.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Mapping
from typing import Any

from rlobj.ops.errors import RlobjInputError, import_dotted
from rlobj.train.envs.base import Environment, StepOutput

__all__ = ["SimulatedUserEnvironment", "EngineUser", "emotion_band", "parse_change"]

JUDGE_PROMPT = (
    "You play a user in a conversation. Persona: {persona}\nScene: {scene}\nYour emotion score is {score} of 100 "
    "(band {band}).\nConversation so far:\n{history}\nThink about how the assistant's last reply makes you feel, "
    "given your persona and what you did not say openly. End with one line 'Change: <integer from -{limit} to "
    "+{limit}>'.\n")
REPLY_PROMPT = (
    "You play a user in a conversation. Persona: {persona}\nScene: {scene}\nYour emotion band is {band} (S: "
    "delighted, say goodbye; A: positive; B: neutral; C: negative; F: upset, say goodbye).\nConversation so far:"
    "\n{history}\nYour feelings about the assistant's last reply: {judgement}\nWrite your next short message in "
    "character, without stating your emotions outright.\nUser:")
OPEN_PROMPT = ("You play a user in a conversation. Persona: {persona}\nScene: {scene}\nOpen the conversation "
               "with a short message about what is on your mind, in character.\nUser:")

_CHANGE = re.compile(r"Change:\s*\[?\s*([+-]?\d+)")


def emotion_band(score: float) -> str:
    """RLVER's emotion band of a score: S (>= 100), A (>= 70), B (>= 40), C (>= 10), F (below)."""
    for band, low in (("S", 100), ("A", 70), ("B", 40), ("C", 10)):
        if score >= low:
            return band
    return "F"


def parse_change(text: str, limit: int) -> int | None:
    """The last ``Change: <int>`` of a judgement, clipped to ``[-limit, limit]``; None without one."""
    found = _CHANGE.findall(text or "")
    if not found:
        return None
    return max(-limit, min(limit, int(found[-1])))


class EngineUser:
    """A user model on any rlobj engine: ``user(prompt, seed) -> reply text``.

    Calls are serialised (one lock), so environments stepped in threads share one model; each
    reply is sampled with the caller's ``seed`` (episodes replay exactly).

    Args:
        engine: an rlobj engine (``generate(prompts, n, sampling)``) or a spec for
            :func:`rlobj.train.engines` style building: ``{"tiny_model": {...}}`` builds a tiny
            Qwen2 with the character tokenizer (tests), ``{"model_path": ...}`` a local HF model.
        tokenizer: the tokenizer of ``engine`` (built with it from a spec).
        max_new_tokens, temperature, seed: sampling of each reply.
    """

    def __init__(self, engine: Any = None, tokenizer: Any = None, max_new_tokens: int = 64,
                 temperature: float = 0.7, seed: int = 0):
        from rlobj.rollout import SamplingConfig

        if engine is None or isinstance(engine, Mapping):
            engine, tokenizer = _build_engine(dict(engine or {"tiny_model": {"hidden_size": 64, "layers": 1,
                                                                             "heads": 2, "seed": 1}}))
        if tokenizer is None:
            raise RlobjInputError("EngineUser.tokenizer: give the engine's tokenizer")
        self.engine, self.tokenizer = engine, tokenizer
        self.sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        self._lock = threading.Lock()

    def __call__(self, prompt: str, seed: int = 0) -> str:
        ids = self.tokenizer.encode(prompt, add_special_tokens=False) or [self.tokenizer.eos_token_id or 0]
        sampling = dataclasses.replace(self.sampling, seed=(self.sampling.seed + int(seed)) % (2**62))
        with self._lock:
            rollout = self.engine.generate([ids], n=1, sampling=sampling)
        tokens = rollout.response_ids[0][rollout.response_mask[0]].tolist()
        return self.tokenizer.decode(tokens, skip_special_tokens=True)


_USERS: dict[str, Any] = {}
_USERS_LOCK = threading.Lock()


def _shared_user(spec):
    """One user model per distinct spec in this process (environments are made per trajectory)."""
    key = repr(spec)
    with _USERS_LOCK:
        if key not in _USERS:
            if spec is None:
                _USERS[key] = EngineUser()
            else:
                if "class_path" not in spec:
                    raise RlobjInputError(f"SimulatedUserEnvironment.user: expected class_path/init_args, got {spec!r:.120}")
                cls = import_dotted(spec["class_path"], "SimulatedUserEnvironment.user")
                _USERS[key] = cls(**dict(spec.get("init_args") or {}))
        return _USERS[key]


def _build_engine(spec: dict):
    from rlobj.rollout import HFEngine

    if "tiny_model" in spec:
        from rlobj.ops.tokenizer import build_char_tokenizer
        from rlobj.rollout import build_tiny_qwen2

        tokenizer = build_char_tokenizer(spec.get("chars", "abcdefghijklmnopqrstuvwxyz :+-0123456789.,\n"))
        model = build_tiny_qwen2(vocab_size=len(tokenizer), **spec["tiny_model"])
        return HFEngine(model, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id), tokenizer
    if "model_path" in spec:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(spec["model_path"])
        model = AutoModelForCausalLM.from_pretrained(spec["model_path"])
        return HFEngine(model, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id), tokenizer
    raise RlobjInputError(f"EngineUser.engine: expected an engine, {{tiny_model: {{...}}}} or {{model_path: ...}}, "
                          f"got {spec!r:.120}")


class SimulatedUserEnvironment(Environment):
    """RLVER's simulated user (see the module docstring).

    Args:
        user: the user model: ``user(prompt, seed) -> text`` (e.g. :class:`EngineUser`). A
            ``{class_path, init_args}`` mapping is built once per process and shared by every
            environment built from the same mapping; None: a tiny random :class:`EngineUser`.
        start_score: $e_0$ (RLVER: 30).
        max_change: a judged change is clipped to $[-m, m]$.
        max_turns: the environment ends the dialogue after this many policy turns (None: the
            sampler's budget only).
        user_prefix / assistant_prefix: how turns are written in the transcript the policy sees.
    """

    def __init__(self, user: Any = None, start_score: float = 30.0, max_change: int = 50, max_turns: int | None = None,
                 user_prefix: str = "\nUser: ", assistant_prefix: str = "\nAssistant: "):
        if user is None or isinstance(user, Mapping):
            user = _shared_user(user)
        self.user = user
        if not callable(self.user):
            raise RlobjInputError(f"SimulatedUserEnvironment.user: expected a callable prompt -> text, got {user!r:.120}")
        if not 0 <= start_score <= 100:
            raise RlobjInputError(f"SimulatedUserEnvironment.start_score: expected a score in [0, 100], got {start_score}")
        self.start_score, self.max_change, self.max_turns = float(start_score), int(max_change), max_turns
        self.user_prefix, self.assistant_prefix = user_prefix, assistant_prefix
        self.score, self.history, self.turns, self.row = self.start_score, [], 0, {}

    def reset(self, row: Mapping[str, Any]) -> str:
        if not isinstance(row, Mapping) or not isinstance(row.get("persona"), str):
            raise RlobjInputError(f"SimulatedUserEnvironment.reset: expected a row with a str 'persona' (and 'scene'), "
                                  f"got {row!r:.200}")
        self.row, self.score, self.history, self.turns = row, self.start_score, [], 0
        opening = str(self.user(OPEN_PROMPT.format(persona=row["persona"], scene=row.get("scene", "")),
                                self._seed(0))).strip()
        self.history.append(("User", opening))
        return str(row.get("prompt", "")) + self.user_prefix + opening + self.assistant_prefix

    def _seed(self, call: int) -> int:
        return ((self.seed or 0) * 1_009 + call) % (2**62)

    def _history(self) -> str:
        return "\n".join(f"{who}: {text}" for who, text in self.history)

    def step(self, action: str) -> StepOutput:
        self.turns += 1
        self.history.append(("Assistant", action.strip()))
        persona, scene = self.row["persona"], self.row.get("scene", "")
        judgement = str(self.user(JUDGE_PROMPT.format(persona=persona, scene=scene, score=round(self.score),
                                                      band=emotion_band(self.score), history=self._history(),
                                                      limit=self.max_change), self._seed(2 * self.turns - 1)))
        change = parse_change(judgement, self.max_change)
        before = self.score
        self.score = min(100.0, self.score + (change or 0))
        done = self.score >= 100 or self.score <= 0 or (self.max_turns is not None and self.turns >= self.max_turns)
        info = {"emotion": self.score, "judged": change is not None}
        if done:
            return "", (self.score - before) / 100.0, True, info
        reply = str(self.user(REPLY_PROMPT.format(persona=persona, scene=scene, band=emotion_band(self.score),
                                                  history=self._history(), judgement=judgement.strip()[-500:]),
                              self._seed(2 * self.turns))).strip()
        self.history.append(("User", reply))
        return self.user_prefix + reply + self.assistant_prefix, (self.score - before) / 100.0, False, info
