"""The error type and its checks (rlobj/ops/errors.py): each check passes good input silently and names
the field, what was expected and what was received otherwise; the dotted-path resolvers name where
the path came from."""

import math

import pytest
import torch

from rlobj.algebra.term import Term
from rlobj.ops.errors import (
    RlobjBuildError,
    RlobjInputError,
    check_finite,
    check_group_sizes,
    check_nonempty_rows,
    check_shape,
    did_you_mean,
    import_dotted,
    import_subclass,
)


def test_both_errors_are_value_errors():
    assert issubclass(RlobjInputError, ValueError) and issubclass(RlobjBuildError, ValueError)


def test_check_shape_names_the_dims_and_both_shapes():
    check_shape("mask", torch.zeros(2, 3), (2, 3), "batch seq")
    with pytest.raises(RlobjInputError, match=r"^mask: expected shape \(batch seq\) = \(2, 3\), got \(3, 2\)$"):
        check_shape("mask", torch.zeros(3, 2), (2, 3), "batch seq")


def test_check_finite_reports_the_first_bad_value_its_index_and_the_count():
    check_finite("logp", torch.tensor([0.0, -1.0]))
    values = torch.tensor([[0.0, math.inf], [math.nan, 1.0]])
    with pytest.raises(RlobjInputError, match=r"^logp: expected finite values, got inf at index \(0, 1\) "
                                              r"\(2 non-finite entries\)$"):
        check_finite("logp", values)
    # only where ``where`` is True: padding may hold anything
    check_finite("logp", values, where=torch.tensor([[True, False], [False, True]]))
    with pytest.raises(RlobjInputError, match=r"got nan at index \(1, 0\) \(1 non-finite entries\)"):
        check_finite("logp", values, where=torch.tensor([[True, False], [True, True]]))


def test_check_nonempty_rows_lists_the_empty_rows():
    check_nonempty_rows("mask", torch.tensor([[True, False], [False, True]]), "token_mean")
    with pytest.raises(RlobjInputError, match=r"^mask: token_mean needs at least one valid token per sequence, "
                                              r"but rows \[1, 2\] of the mask are all False$"):
        check_nonempty_rows("mask", torch.tensor([[True, False], [False, False], [False, False]]), "token_mean")


def test_check_group_sizes_lists_the_small_groups_and_their_sizes():
    check_group_sizes(torch.tensor([4, 4, 7, 7]), 2, "group_zscore")
    with pytest.raises(RlobjInputError, match=r"^group_ids: group_zscore needs at least 2 responses per group, "
                                              r"but groups \[3, 9\] have \[1, 1\]$"):
        check_group_sizes(torch.tensor([3, 4, 4, 9]), 2, "group_zscore")


def test_did_you_mean_offers_close_names_only():
    assert did_you_mean("grpoo", ["grpo", "dapo", "gspo"]) == " Did you mean 'grpo', 'gspo'?"
    assert did_you_mean("zzzz", ["grpo", "dapo"]) == ""


def test_import_dotted_resolves_and_names_where_the_path_came_from():
    assert import_dotted("math.sqrt", "model.reward") is math.sqrt
    with pytest.raises(RlobjInputError, match=r"^model.reward: 'sqrt' is not a dotted import path \(package.module.Name\)$"):
        import_dotted("sqrt", "model.reward")
    with pytest.raises(RlobjInputError, match=r"^model.reward: 'math.' is not a dotted import path"):
        import_dotted("math.", "model.reward")
    with pytest.raises(RlobjInputError, match=r"^model.reward: cannot import 'no_such_pkg_xyz.f' "
                                              r"\(ModuleNotFoundError: No module named 'no_such_pkg_xyz'\)$"):
        import_dotted("no_such_pkg_xyz.f", "model.reward")
    with pytest.raises(RlobjInputError, match=r"cannot import 'math.nope' \(AttributeError: "):
        import_dotted("math.nope", "model.reward")


def test_import_subclass_checks_the_base():
    assert import_subclass("rlobj.terms.advantages.group_zscore", Term, "term", "rlobj.Term").__name__ == "group_zscore"
    with pytest.raises(RlobjInputError, match=r"^term: 'math.sqrt' is not a rlobj.Term subclass$"):
        import_subclass("math.sqrt", Term, "term", "rlobj.Term")
    with pytest.raises(RlobjInputError, match=r"^term: cannot import 'math.Nope'"):
        import_subclass("math.Nope", Term, "term", "rlobj.Term")
