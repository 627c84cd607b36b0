"""Shared states and strategies of the noisy-verifier correction tests (rewards/test_noisy_verifier.py,
advantages/test_noisy_verifier.py, Cai et al., arXiv 2510.00915)."""

import torch
from hypothesis import strategies as st

from rlobj.algebra.state import State
from rlobj.terms.advantages import forward_correction

F64 = torch.float64


def state_of(rewards, group_ids=None, extras=None, width=2):
    n = len(rewards)
    return State.from_batch(logp=torch.full((n, width), -0.5, dtype=F64), mask=torch.ones(n, width, dtype=torch.bool),
                            rewards=torch.tensor(rewards, dtype=F64),
                            group_ids=torch.tensor(group_ids if group_ids is not None else [0] * n),
                            extras=extras or {})


@st.composite
def rates(draw):
    rho0 = draw(st.floats(0, 0.9))
    rho1 = draw(st.floats(0, 0.99 - rho0))
    return rho0, rho1


BINARY = st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=8)


def weight(rho1, value, **kw):
    return float(forward_correction(rho1=rho1, **kw)(state_of([value])).advantages[0, 0])
