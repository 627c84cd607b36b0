"""Private helpers: the full-vocabulary views a term reads from the state (``vocab`` and a stored
view in ``extras``), checked against the batch. Shared by the full-vocabulary divergences, the
perception KL, Lp-Reg's forward-KL option and SIREN.
"""

from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab import TopK, VocabView


def current_view(state: State, by: str) -> VocabView:
    """``state.vocab`` checked against the batch: a VocabView over ``(batch, seq)``."""
    view = state.vocab
    if view is None:
        raise RlobjInputError(
            f"{by} reads 'vocab', but the state has none. Pass vocab=VocabView.from_hidden("
            "hidden, lm_head.weight) (or VocabView.from_logits(logits)) for the current policy."
        )
    return _checked(view, "vocab", state, " (build one view per micro-batch)")


def other_view(state: State, key: str, by: str, allow_topk: bool = False):
    """``extras[key]``: a VocabView of the same shape (detached), or a stored TopK if allowed."""
    view = state.extras.get(key)
    if view is None:
        kinds = "a VocabView (or a stored TopK)" if allow_topk else "a VocabView"
        raise RlobjInputError(
            f"{by} reads extras[{key!r}], but the state has none. Pass extras={{{key!r}: ...}} "
            f"with {kinds} of that policy's next-token distributions."
        )
    if isinstance(view, TopK):
        if not allow_topk:
            raise RlobjInputError(
                f"extras[{key!r}]: {by} needs a VocabView (whole distributions); a stored TopK "
                "only supports forward_kl"
            )
        return TopK(view.logprobs.detach(), view.indices)
    return _checked(view, f"extras[{key!r}]", state).detach()


def _checked(view, where: str, state: State, hint: str = "") -> VocabView:
    """``view`` if it is a VocabView over the batch's ``(batch, seq)``; else an error naming ``where``."""
    if not isinstance(view, VocabView):
        raise RlobjInputError(f"{where}: expected a VocabView, got {type(view).__name__}")
    if view.shape != tuple(state.mask.shape):
        raise RlobjInputError(
            f"{where}: expected a view of shape (batch seq) = {tuple(state.mask.shape)}, got "
            f"{view.shape}{hint}"
        )
    return view
