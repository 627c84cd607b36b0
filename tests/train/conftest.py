

import pytest


@pytest.fixture(scope="session")
def tiny_judges(tmp_path_factory):
    """Tiny judges saved once per session: ``rm`` (sequence classifier), ``raw`` (untrained causal
    LM: garbage verdicts), ``seven`` (fitted to answer "7"), ``cot`` (fitted to answer "VERDICT: CORRECT")."""
    from rlobj.train.tiny_judges import save_tiny_judge

    root = tmp_path_factory.mktemp("judges")
    return {"rm": str(save_tiny_judge(root / "rm", kind="classifier")),
            "raw": str(save_tiny_judge(root / "raw")),
            "seven": str(save_tiny_judge(root / "seven", reply="7")),
            "cot": str(save_tiny_judge(root / "cot", reply="VERDICT: CORRECT", fit_steps=120))}
