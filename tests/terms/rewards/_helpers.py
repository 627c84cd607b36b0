"""Shared by the reward terms' test modules (tests/terms/rewards/test_*.py) and the recipe transcriptions:
the state builder and VSRM's step rewards transcribed from its compute_step_reward."""

import torch

from rlobj.algebra.state import State

F64 = torch.float64


def state_of(rewards, group_ids=None, lengths=None, width=4, extras=None, **fields):
    n = len(rewards)
    lengths = lengths or [width] * n
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    return State.from_batch(logp=torch.full((n, width), -0.5, dtype=F64), mask=mask,
                            rewards=torch.tensor(rewards, dtype=F64),
                            group_ids=torch.tensor(group_ids if group_ids is not None else [0] * n),
                            extras=extras or {}, **fields)


def reference_step_rewards(acc_list, gamma, lookahead):
    """Transcription of VSRM's compute_step_reward for one response (acc_list[j]: accuracy of
    the j-th prefix, the last one the whole reasoning); returns one reward per split."""
    rewards = []
    n = len(acc_list) - 1
    for j in range(n):
        delta = acc_list[j + 1] - acc_list[j]
        if abs(delta) < 1e-5:
            k, steps = j + 1, 0
            while steps < lookahead and k < n and abs(acc_list[k + 1] - acc_list[k]) < 1e-5:
                k += 1
                steps += 1
            if steps == lookahead:
                reward = 0.0
            elif k < n:
                change = acc_list[k + 1] - acc_list[k]
                reward = (1 if change > 0 else -1) * abs(change) * gamma ** (k - j)
            else:
                final = acc_list[-1] - acc_list[j]
                reward = (1 if final > 0 else -1) * abs(final) * gamma ** (n - j - 1)
        else:
            reward = delta
        rewards.append(reward)
    return rewards
