r"""A lazy view of full next-token distributions that never builds the ``[tokens, vocab]`` tensor.

Terms such as full-vocabulary entropy and KL / JS / f-divergences against a reference need the
whole next-token distribution at every response position. At a 151,936-token vocabulary and 32k
tokens the float32 logits alone take ~19 GB, so a :class:`VocabView` computes them chunk by chunk
(over tokens, and over the vocabulary when one token row is still too large), from the hidden
states and the output projection

$$ z_t = \mathrm{softcap}(h_t W^\top + b) / \tau, \qquad
   \mathrm{softcap}(x) = c \tanh(x / c), \qquad \pi(v \mid s_t) = \mathrm{softmax}(z_t)_v , $$

or from given logits ($z_t = \text{logits}_t / \tau$). Everything is reduced to per-token
``"batch seq"`` tensors inside one custom :class:`torch.autograd.Function` that recomputes the logits
chunk in backward and writes the gradient analytically (``softmax - onehot`` and friends), so
neither the logits nor their gradient ever exist whole when the view is built from hidden states.

Several per-token quantities of the same views can be computed in **one** pass with
:meth:`VocabView.evaluate` (one output-projection product in forward, one recomputation in
backward); the single-quantity methods (:meth:`VocabView.logp`, :meth:`VocabView.entropy`, ...) are
shorthands for it.

Precision: products run in the input dtype (bf16 logits are rounded to bf16 by the matrix product,
as in a plain ``lm_head``), every reduction and every gradient block is float32 (float64 when the
inputs are float64), and the weight gradient is accumulated over chunks in float32.

The package:

* :mod:`~rlobj.ops.vocab.view`: :class:`VocabView`, the handle users build;
* :mod:`~rlobj.ops.vocab.queries`: the generic queries :class:`LogProb`, :class:`Entropy`,
  :class:`KL` (also against a stored :class:`TopK`), :class:`JS`, :class:`FDivergence`,
  :class:`TopKMask`, :class:`TopPMask`;
* :mod:`~rlobj.ops.vocab.protocol`: :class:`VocabQuery`, the published interface a query
  implements so the engine can run it chunked; a paper's own quantity implements it beside its
  term (Lp-Reg's :class:`~rlobj.terms.regularizers.lp_reg_proxy.ProxyLogProb`, SIREN's
  :class:`~rlobj.terms.regularizers.siren_entropy.TopPEntropy`);
* :mod:`~rlobj.ops.vocab.engine` and :mod:`~rlobj.ops.vocab.blocks`: the chunk engine and what a
  query sees of a chunk;
* :mod:`~rlobj.ops.vocab.dense`: the dense reference the tests compare with.
"""

from rlobj.ops.vocab.blocks import LogitBlock, LogitGradient, RowStats
from rlobj.ops.vocab.dense import dense_evaluate, dense_logits
from rlobj.ops.vocab.moved import moved
from rlobj.ops.vocab.protocol import QueryChunk, SampledTokenQuery, VocabQuery
from rlobj.ops.vocab.queries import JS, KL, Entropy, FDivergence, LogProb, TopK, TopKMask, TopPMask
from rlobj.ops.vocab.view import VocabView

__all__ = [
    "VocabView",
    "TopK",
    "LogProb",
    "Entropy",
    "KL",
    "JS",
    "FDivergence",
    "TopKMask",
    "TopPMask",
    "VocabQuery",
    "SampledTokenQuery",
    "QueryChunk",
    "LogitBlock",
    "LogitGradient",
    "RowStats",
    "dense_evaluate",
    "dense_logits",
]


def __getattr__(name: str):
    """``ProxyLogProb`` and ``TopPEntropy`` moved to ``rlobj.terms`` (deprecated aliases)."""
    if name in ("ProxyLogProb", "TopPEntropy"):
        return moved(name, f"rlobj.ops.vocab.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
