"""``length_cost``: a reward shaping term of a user's own, with an input of its own."""

from dataclasses import dataclass
from typing import ClassVar

from rlobj import State, Term


@dataclass(frozen=True)
class length_cost(Term):
    r"""$r_i \leftarrow r_i - c\,\ell_i$ with $\ell_i$ the number of characters of response $i$.

    Reads ``extras['char_lengths']``, which :class:`my_rlobj_ext.providers.CharLengths` computes
    from the decoded responses. Goes before the advantage term: ``[length_cost, grpo]``.
    """

    stage: ClassVar[str] = "batch"
    reads: ClassVar[tuple[str, ...]] = ("rewards", "extras:char_lengths")
    writes: ClassVar[tuple[str, ...]] = ("rewards",)
    coef: float = 0.01

    def __call__(self, state: State) -> State:
        lengths = state.extras["char_lengths"].to(state.rewards.dtype)
        return state.update(rewards=state.rewards - self.coef * lengths).add_metrics(
            **{"length_cost/chars_mean": lengths.mean()})
