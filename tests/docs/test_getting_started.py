"""The design-card line and the printed chain on docs/getting-started.md are what rlobj builds now."""

from pathlib import Path

from rlobj import forward_kl, grpo, lp_reg

PAGE = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"


def test_design_card_chain_printed_on_the_page_is_current():
    text = PAGE.read_text(encoding="utf-8")
    assert "objective = grpo >> lp_reg(tau=0.02) >> forward_kl(beta=0.01)" in text
    printed = str(grpo >> lp_reg(tau=0.02) >> forward_kl(beta=0.01))
    assert printed in text, f"docs/getting-started.md no longer shows the chain as it prints:\n{printed}"


def test_design_card_line_links_its_terms_api_entries():
    text = PAGE.read_text(encoding="utf-8")
    for anchor in ("rlobj.terms.regularizers.low_probability.lp_reg", "rlobj.terms.divergences.full_vocab.forward_kl",
                   "rlobj.presets.papers.grpo"):
        assert f"][{anchor}]" in text, f"getting-started.md: no link to the API entry {anchor}"
    assert "being written" not in text and "Until those two land" not in text
