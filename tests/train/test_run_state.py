"""Run state (rlobj/train/run_state.py): term state of an old checkpoint rekeyed to stable names."""



def test_term_state_of_an_old_checkpoint_is_rekeyed_to_stable_names():
    # checkpoints written before stable keys stored term state under "<position>:<name>"
    from rlobj import chain, clip_ratio, group_zscore, kl_penalty, token_mean
    from rlobj.train.run_state import stable_term_keys

    terms = chain(group_zscore(), clip_ratio(), kl_penalty(0.01, against="ref"), kl_penalty(0.01, against="init"),
                  token_mean()).terms
    old = {"2:kl_penalty": "first", "3:kl_penalty": "second", "3:clip_ratio": "not this chain's"}
    assert stable_term_keys(old, terms) == {"kl_penalty": "first", "kl_penalty#2": "second",
                                            "3:clip_ratio": "not this chain's"}
