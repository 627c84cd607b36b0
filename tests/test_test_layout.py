"""The layout of ``tests/``: one unit test module per source module.

The rule.

1. A *unit* test module is ``tests/<package path>/test_<module>.py`` for the source module
   ``rlobj/<package path>/<module>.py`` it tests; for the terms that is
   ``tests/terms/<family>/test_<module>.py`` for ``rlobj/terms/<family>/<module>.py``. A package
   is a module too: ``tests/ops/test_vocab.py`` tests ``rlobj/ops/vocab/__init__.py``'s public
   names. There is one such module per source module: the tests of one source module are gathered
   in it, not spread over several files (split a module that tests several source modules, merge
   two that test the same one).
2. A *cross-cutting* module (laws through the trainer, trainer fits of many terms, DDP/FSDP, docs,
   security, vLLM, peers, reproductions, the environment) lives in a place named for what it
   covers: one of the folders of :data:`CROSS_CUTTING_FOLDERS`, or it carries an entry in
   :data:`ALLOWED` with the reason.

:func:`misplaced` applies the rule to a list of paths and says, for each test module that matches
neither, what to do; the test below applies it to every ``tests/**/test_*.py``. Helper modules
(``_helpers.py``, ``batches.py``, ``*_cases.py``, workers, conftest files) are not test modules and
are not checked.

The other direction: every public source module (no ``_`` in its path) has its own test module,
is a package whose ``__init__`` only re-exports, or carries an entry in :data:`TESTED_IN` naming the
test modules that test it (each must use it) and the reason it has none of its own;
:func:`without_test_module` says what to do otherwise.

Entries marked ``SPLIT:`` would be unit tests that still span several source modules: debt this rule
makes visible, to be split into the named modules' test modules (none is left).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CROSS_CUTTING_FOLDERS = {
    "cuda": "the CUDA check (scripts/gpu_check.sh) across the vocab engine and the terms",
    "docs": "the documentation pages, their examples and the site build",
    "integrations": "rlobj inside the peers (TRL, verl), run by scripts/test_peers.sh",
    "reproductions": "paper reproductions end to end",
    "security": "attacks on the sandboxes and on checkpoints",
    "vllm": "the real vLLM build, run by scripts/test_vllm.sh",
}

LAWS = "a law of DESIGN.md section 3 checked over every registered term"
FITS = "trains from YAML through `rlobj fit`: the trainer end to end with many parts"
DISTRIBUTED = "several processes (gloo): the whole trainer under DDP/FSDP"

ALLOWED = {
    # the suite itself
    "tests/test_environment.py": "the suite's environment (root conftest.py switches, Hypothesis profiles)",
    "tests/test_layers.py": "the import direction between all of rlobj's layers",
    "tests/test_test_layout.py": "this rule, over all of tests/",
    "tests/terms/test_layout.py": "the layout of rlobj/terms: every registered term's family",
    # the algebra's laws and contracts over every term
    "tests/algebra/test_laws.py": LAWS,
    "tests/algebra/test_minibatch_law.py": LAWS + " (the micro-batch law with mini-batch statistics)",
    "tests/algebra/test_declared_reads.py": "every registered term under a tracing state: reads match declarations",
    "tests/algebra/test_bad_input.py": "bad input across every term and preset, errors naming the field",
    "tests/algebra/test_build_errors.py": "chain orders refused at build time, across the terms",
    "tests/algebra/test_numeric_hardening.py": "non-finite and huge numbers across the objectives",
    "tests/algebra/test_import_graph.py": "no import cycle inside rlobj/algebra (a property of the package)",
    # the vocab engine as a whole
    "tests/ops/test_vocab_allocations.py": "no [tokens, vocab] allocation anywhere in the vocab package "
                                           "and the vocab terms (a memory property, traced)",
    # options named after peers, fixes found by auditing against the authors' code
    "tests/terms/test_peer_conventions.py": "options named after a peer (verl, TRL) across baselines, KL, masks",
    "tests/terms/test_reference_fixes.py": "issue 14's audit against the authors' code: one regression test "
                                           "per defect, across terms and presets",
    # the trainer end to end
    "tests/train/test_pipeline_laws.py": LAWS + ", through the trainer",
    "tests/train/test_guided_laws.py": LAWS + ", through the trainer on guided rows",
    "tests/train/test_registry_fit.py": FITS + " (every registered term, preset and transform)",
    "tests/train/test_model_rewards_fit.py": FITS + " (every model-backed scorer)",
    "tests/train/test_data_loops_fit.py": FITS + " (every data strategy, resumed)",
    "tests/train/test_dapo_fit.py": FITS + " (DAPO's dynamic sampling)",
    "tests/train/test_video_pretext_fit.py": FITS + " (VideoSSR on the tiny vision-language policy)",
    "tests/train/test_vision_train.py": FITS + " (policies, warm-up, evaluation on image rows)",
    "tests/train/test_multiturn_trainer.py": FITS + " (multi-turn rollouts, resume)",
    "tests/train/test_fit.py": FITS + " (the default run, its logs and checkpoints)",
    "tests/train/test_user_code.py": FITS + " (user terms, providers and transforms by dotted path)",
    "tests/train/test_howto_own_data.py": "docs/how-to/own-data.md followed step by step",
    "tests/train/test_config_errors.py": "every bad config stops `rlobj fit` before a model loads",
    "tests/train/test_progress_bar.py": "`rlobj fit`'s output on a terminal and in logs",
    "tests/train/test_loggers.py": "real W&B (offline) and MLflow runs receiving metrics from the trainer",
    "tests/train/test_completions_table.py": "the completions table through the trainer and real loggers",
    "tests/train/test_eval_command.py": "`rlobj eval` end to end (counts, compare, CoT judge, plot)",
    "tests/train/test_resume.py": "a killed run resumed from its checkpoint continues exactly",
    "tests/train/test_checkpoint_kill.py": "kill -9 during a checkpoint write, then resume",
    "tests/train/test_judge_concurrency.py": "judges off the caller's thread, with timeouts, inside the scorer stage",
    "tests/train/test_ddp.py": DISTRIBUTED,
    "tests/train/test_ddp_data_loop.py": DISTRIBUTED + " with a data strategy",
    "tests/train/test_ddp_registry.py": DISTRIBUTED + " for every registered objective",
    "tests/train/test_fsdp.py": DISTRIBUTED,
    "tests/rollout/test_rollout_configs.py": "the example configs of every sampler build what they name",
    # paper features spread over a term, a provider, a transform and a YAML run
    "tests/train/test_clpo_kl.py": "CLPO: a provider (train/data_strategies.py) and a term option "
                                   "(kl_penalty(scale_key=...)) together",
    "tests/train/test_propa.py": "PROPA end to end: a YAML run with the process reward model and SFT/RL interleaving",
    "tests/train/test_r3_dro.py": "DRO/R3: paper reward (train/paper_rewards.py) and a YAML run with the "
                                  "filter transform (its own tests: tests/train/transforms/test_r3.py)",
    "tests/train/test_objective_inputs.py": "the providers computing what a chain's slots_read() asks for, "
                                            "across providers and terms",
    "tests/train/test_reference_providers.py": "issue 14's audit, the trainer's half: providers against "
                                              "the authors' code",
    "tests/train/test_reward_functions.py": "TRL-style reward functions through the scorer stage and DatasetTask",
    "tests/terms/test_vocab_terms.py": "the allocation trace of every full-vocabulary term (divergences, DPH-RL, "
                                       "Lp-Reg, SIREN, the entropy bonus): no tokens x vocab float tensor",
}


def source_modules(root: Path = ROOT) -> set[str]:
    """Every module of rlobj as ``<package path>/<module>``; a package as its folder path."""
    out = set()
    for path in (root / "rlobj").rglob("*.py"):
        name = path.relative_to(root / "rlobj").with_suffix("").as_posix()
        out.add(name.removesuffix("/__init__") if name.endswith("/__init__") else name)
    return out


def namesake(test_path: str) -> str:
    """The source module a test module's name points to: ``tests/a/b/test_c.py`` -> ``a/b/c``."""
    parts = Path(test_path).with_suffix("").parts[1:]
    return "/".join([*parts[:-1], parts[-1].removeprefix("test_")])


def misplaced(test_paths, sources, allowed=ALLOWED) -> list[str]:
    """One message per test module that is neither the test module of a source module, nor in a
    cross-cutting folder, nor allowed with a reason: the module and what to do."""
    messages = []
    for path in sorted(test_paths):
        parts = Path(path).parts
        if namesake(path) in sources or parts[1] in CROSS_CUTTING_FOLDERS or path in allowed:
            continue
        messages.append(
            f"{path}: rlobj/{namesake(path)}.py does not exist, so this is not the test module of a "
            f"source module. If it tests one source module rlobj/<package path>/<module>.py, move its "
            f"tests into tests/<package path>/test_<module>.py (git mv if it moves whole, merge if "
            f"that file exists); if it tests several, split it by source module; if it is "
            f"cross-cutting, put it under tests/<one of {sorted(CROSS_CUTTING_FOLDERS)}>/ or add it "
            f"to ALLOWED in tests/test_test_layout.py with the reason.")
    return messages


def all_test_modules(root: Path = ROOT) -> list[str]:
    """Every ``tests/**/test_*.py``, relative to the repository."""
    return [p.relative_to(root).as_posix() for p in (root / "tests").rglob("test_*.py")]


def test_every_test_module_tests_its_namesake_or_says_why_not():
    messages = misplaced(all_test_modules(), source_modules())
    assert not messages, "\n".join(messages)


def test_a_stray_module_is_caught_and_told_what_to_do():
    sources = {"terms/rewards/outcome", "ops/vocab", "train/multiturn"}
    good = ["tests/terms/rewards/test_outcome.py", "tests/ops/test_vocab.py", "tests/train/test_multiturn.py",
            "tests/docs/test_anything.py", "tests/test_layers.py"]
    assert misplaced(good, sources) == []
    stray = ["tests/terms/test_reward_models.py", "tests/train/test_multiturn_hostile.py"]
    messages = misplaced(good + stray, sources)
    assert [m.split(":")[0] for m in messages] == sorted(stray)
    assert "rlobj/terms/reward_models.py does not exist" in messages[0]
    assert "move its tests into tests/<package path>/test_<module>.py" in messages[0]
    assert "add it to ALLOWED in tests/test_test_layout.py with the reason" in messages[0]
    # a unit test module in the wrong package is caught too
    assert misplaced(["tests/terms/test_outcome.py"], sources)


def test_every_allowed_entry_exists_has_a_reason_and_is_needed():
    sources = source_modules()
    for path, reason in ALLOWED.items():
        assert (ROOT / path).is_file(), f"ALLOWED names {path}, which does not exist: remove the entry"
        assert reason.strip(), f"ALLOWED[{path!r}] gives no reason"
        assert namesake(path) not in sources, f"{path} is the test module of rlobj/{namesake(path)}.py: " \
                                              "remove its ALLOWED entry"
        assert Path(path).parts[1] not in CROSS_CUTTING_FOLDERS, f"{path} is in a cross-cutting folder already"


# The other direction: every public source module has its own test module, or says where it is tested.

TESTED_IN: dict[str, tuple[tuple[str, ...], str]] = {
    # algebra/, data/, ops/ (outside ops/vocab/)
    "algebra/objective": (("tests/test_registry.py", "tests/train/test_objective_inputs.py"),
                          "Objective is what every registry-wide check builds (prepare/loss/__call__, YAML and "
                          "pickle round trips) and what the providers feed; its laws are in tests/algebra"),
    "algebra/term": (("tests/algebra/test_contract.py", "tests/algebra/test_declared_reads.py",
                      "tests/algebra/test_laws.py"),
                     "Term and chain: the declarative contract (tests/algebra/test_contract.py, named after "
                     "algebra/contract.py, which term.py implements with it), declared reads and the laws"),
    "data/tokenizer": (("tests/ops/test_tokenizer.py", "doctest"),
                       "re-exports rlobj.ops.tokenizer's character tokenizer (tested in tests/ops/test_tokenizer.py) "
                       "and defines one constant, the addition alphabet, shown by its doctest"),

    # ops/vocab/, rollout/, verifiers/
    "ops/vocab/dense": (("tests/ops/vocab/test_engine.py",),
                        "the dense reference exists to test the engine: every query against it, values and "
                        "gradients, under several tilings"),
    "ops/vocab/protocol": (("tests/ops/vocab/test_engine.py",),
                           "the query protocol: every query (also the terms' Lp-Reg and SIREN ones) implements it "
                           "and is checked through the engine against the dense reference"),
    "ops/vocab/queries": (("tests/ops/vocab/test_view.py",),
                          "the generic queries are reached through VocabView (values, gradients, properties, hand "
                          "values) and checked against the dense reference in tests/ops/vocab/test_engine.py"),
    "rollout/vllm_ead": (("tests/vllm/test_vllm_ead.py",),
                         "needs the real vLLM, which only scripts/test_vllm.sh's environment has"),
    "rollout/vllm_engine": (("tests/vllm/test_vllm_engine.py", "tests/vllm/test_vllm_training.py"),
                            "needs the real vLLM, which only scripts/test_vllm.sh's environment has"),
    "verifiers/code": (("tests/verifiers/test_sandbox.py", "tests/security/test_attacks.py"),
                       "CodeExecution is the sandbox's reward: its cases (partial credit, all-or-nothing, custom "
                       "languages, errors) run real programs beside the sandbox's own tests and the attacks"),

    # train/ (callbacks .. judges)
    "train/callbacks": (("tests/train/test_progress_bar.py", "tests/train/test_completions_table.py",
                         "tests/train/test_fit.py"),
                        "Lightning callbacks: meaningful only inside a fit; their output is checked through real "
                        "runs (progress lines, the completions table, the evaluation table and plots)"),
    "train/checkpoint_io": (("tests/train/test_checkpoint_kill.py", "tests/security/test_checkpoints.py"),
                            "atomic checkpoint writes and safe loading: kill -9 during a write, and hostile "
                            "checkpoints refused"),
    "train/code_tasks": (("tests/train/test_absolute_zero.py", "tests/train/test_evosyn.py"),
                         "the code-task plumbing of Absolute Zero and EvoSyn, tested with both (real sandboxed "
                         "programs)"),
    "train/config": (("tests/train/test_module.py", "tests/train/test_packing.py", "tests/docs/test_recipes.py"),
                     "the grouped settings are built and validated by the module (tests/train/test_module.py: "
                     "bad settings named) and by every recipe's YAML"),
    "train/data_loops": (("tests/train/test_data_strategies.py", "tests/train/test_synthesis.py",
                          "tests/train/test_prompt_stats.py"),
                         "the DataLoop and its strategies' base: tested through each strategy"),
    "train/datamodule": (("tests/train/test_cli.py", "tests/train/test_fit.py", "tests/train/test_data_strategies.py"),
                         "the LightningDataModule: meaningful inside a fit or the CLI"),
    "train/envs/base": (("tests/vllm/test_vllm_multiturn.py",),
                        "the environment protocol; its implementations have their own test modules under "
                        "tests/train/envs/, and the multi-turn sampler drives it with the real vLLM"),
    "train/forward": (("tests/train/test_objective_inputs.py", "tests/train/test_packing.py",
                       "tests/train/test_module.py"),
                      "the policy forward: log-probs and entropies against plain references of the HF forward, "
                      "packed and unpacked"),
    "train/hf_data": (("tests/train/test_module.py", "tests/train/test_howto_own_data.py",
                       "tests/train/test_reward_functions.py"),
                      "DatasetTask on local JSONL/Parquet files: the own-data how-to step by step, column mapping, "
                      "reward functions"),

    # train/ (metrics .. update), train/providers/, train/transforms/
    "train/policies": (("tests/train/test_vision_train.py", "tests/train/test_video_pretext_fit.py"),
                       "policy builders for vision-language models: exercised by the vision fits"),
    "train/providers/policy": (("tests/train/test_objective_inputs.py", "tests/train/test_reference_providers.py",
                                "tests/train/providers/test_policy_extras_rows.py"),
                               "the policy providers: every slot they compute against a plain forward"),
    "train/trace_tasks": (("tests/reproductions/test_traces_smoke.py",),
                          "the countdown-trace testbed of the reproductions: run end to end by the smoke test"),

}
"""Public source modules without a test module of their own: ``module -> (test modules, reason)``.
Each named test module must use the source module (import it, or import a name it defines);
``"doctest"`` names the module's own docstring examples (run by ``pytest rlobj``), and the module
must have some. An entry whose module has gained its own test module must go."""


def is_export_list(source: str, root: Path = ROOT) -> bool:
    """A package whose ``__init__`` defines no function or class: a list of re-exports, whose names are
    tested in the test modules of the modules that define them."""
    init = root / "rlobj" / source / "__init__.py"
    if not init.is_file():
        return False
    body = ast.parse(init.read_text()).body
    return not any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in body)


def source_file(source: str, root: Path = ROOT) -> Path:
    module = root / "rlobj" / f"{source}.py"
    return module if module.is_file() else root / "rlobj" / source / "__init__.py"


def own_test_module(source: str) -> str:
    """``a/b/c`` -> ``tests/a/b/test_c.py``."""
    *package, leaf = source.split("/")
    return "/".join(["tests", *package, f"test_{leaf}.py"])


def defined_names(source: str, root: Path = ROOT) -> set[str]:
    """The public names a source module defines at its top level."""
    names = set()
    for node in ast.parse(source_file(source, root).read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


def uses(test_path: str, source: str, root: Path = ROOT) -> bool:
    """Whether a test module imports the source module, or imports from one of its packages a name the
    module defines (``from rlobj.data import CountdownTask`` uses ``data/countdown``)."""
    dotted = "rlobj." + source.replace("/", ".")
    packages = {"rlobj." + ".".join(source.split("/")[:i]) for i in range(len(source.split("/")))}
    packages = {p.rstrip(".") for p in packages}
    names = defined_names(source, root)
    for node in ast.walk(ast.parse((root / test_path).read_text())):
        if isinstance(node, ast.Import) and any(a.name == dotted or a.name.startswith(dotted + ".")
                                                for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == dotted or node.module.startswith(dotted + "."):
                return True
            imported = {a.name for a in node.names}
            if node.module in packages and (dotted.rpartition(".")[2] in imported or imported & names):
                return True
    return False


def without_test_module(sources, test_paths, tested_in=TESTED_IN, root: Path = ROOT) -> list[str]:
    """One message per public source module that has no test module of its own, is not a list of
    re-exports, and has no entry in ``tested_in``: the module and what to do."""
    have = {namesake(path) for path in test_paths}
    messages = []
    for source in sorted(sources):
        if any(part.startswith("_") for part in source.split("/")) or source in have or source in tested_in:
            continue
        if is_export_list(source, root):
            continue
        messages.append(
            f"rlobj/{source}: a public source module with no test module of its own. Gather its unit "
            f"tests in {own_test_module(source)} (move them there from the modules that hold them now); "
            f"if it is tested only through cross-cutting modules, add it to TESTED_IN in "
            f"tests/test_test_layout.py naming those test modules and the reason.")
    return messages


def test_every_source_module_has_its_test_module_or_says_where_it_is_tested():
    messages = without_test_module(source_modules(), all_test_modules())
    assert not messages, "\n".join(messages)


def test_a_module_without_tests_is_caught_and_told_what_to_do(tmp_path):
    (tmp_path / "rlobj" / "pkg").mkdir(parents=True)
    (tmp_path / "rlobj" / "pkg" / "__init__.py").write_text('"""exports"""\nfrom rlobj.pkg.a import f\n')
    (tmp_path / "rlobj" / "pkg" / "a.py").write_text("def f():\n    return 1\n")
    (tmp_path / "rlobj" / "pkg" / "b.py").write_text("def g():\n    return 2\n")
    (tmp_path / "rlobj" / "pkg" / "_private.py").write_text("def h():\n    return 3\n")
    sources = source_modules(tmp_path)
    assert sources == {"pkg", "pkg/a", "pkg/b", "pkg/_private"}
    messages = without_test_module(sources, ["tests/pkg/test_a.py"],
                                   tested_in={}, root=tmp_path)
    assert [m.split(":")[0] for m in messages] == ["rlobj/pkg/b"]
    assert "Gather its unit tests in tests/pkg/test_b.py" in messages[0]
    assert "add it to TESTED_IN" in messages[0]
    # an entry in TESTED_IN is accepted ...
    assert without_test_module({"pkg/b"}, [], tested_in={"pkg/b": (("tests/test_x.py",), "why")},
                               root=tmp_path) == []
    # ... and a package that defines a function is not an export list
    (tmp_path / "rlobj" / "pkg" / "__init__.py").write_text("def lazy():\n    return 0\n")
    assert [m.split(":")[0] for m in without_test_module({"pkg"}, [], tested_in={}, root=tmp_path)] \
        == ["rlobj/pkg"]


def test_uses_sees_imports_of_the_module_and_of_its_names(tmp_path):
    (tmp_path / "rlobj" / "pkg").mkdir(parents=True)
    (tmp_path / "rlobj" / "pkg" / "b.py").write_text("def g():\n    return 2\n\nLIMIT = 3\n")
    (tmp_path / "tests").mkdir()
    cases = {"from rlobj.pkg.b import g\n": True, "import rlobj.pkg.b as b\n": True,
             "from rlobj.pkg import b\n": True, "from rlobj.pkg import g\n": True, "from rlobj import LIMIT\n": True,
             "from rlobj.pkg import other\n": False, "from rlobj.pkg.c import g\n": False, "import torch\n": False}
    for text, expected in cases.items():
        (tmp_path / "tests" / "test_x.py").write_text(text)
        assert uses("tests/test_x.py", "pkg/b", tmp_path) is expected, text


def test_every_tested_in_entry_is_true_and_needed():
    sources, have = source_modules(), {namesake(path) for path in all_test_modules()}
    for source, (tests, reason) in TESTED_IN.items():
        assert source in sources, f"TESTED_IN names rlobj/{source}, which does not exist: remove the entry"
        assert source not in have, f"rlobj/{source} has its test module {own_test_module(source)}: " \
                                   "remove its TESTED_IN entry"
        assert not is_export_list(source), f"rlobj/{source} is a list of re-exports: remove its TESTED_IN entry"
        assert reason.strip() and tests, f"TESTED_IN[{source!r}] names no test module or gives no reason"
        for test in tests:
            if test == "doctest":
                assert ">>> " in source_file(source).read_text(), \
                    f"TESTED_IN[{source!r}] names its doctest, but rlobj/{source} has no docstring example"
                continue
            assert (ROOT / test).is_file(), f"TESTED_IN[{source!r}] names {test}, which does not exist"
            assert uses(test, source), f"TESTED_IN[{source!r}] names {test}, which does not use rlobj/{source}"


# Test modules are not libraries: what several modules share lives in a helper module.

def imported_test_modules(path: str, root: Path = ROOT) -> list[str]:
    """The test modules (``test_*``) that the file at ``path`` imports, as written in its imports."""
    found = []
    for node in ast.walk(ast.parse((root / path).read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found += [n for n in names if n.rpartition(".")[2].startswith("test_")]
    return found


def test_no_module_of_tests_imports_a_test_module():
    """Helpers shared by several test modules live in helper modules (``_*.py``, ``*_cases.py``,
    ``batches.py``, conftest), so a test module can be moved, split or deleted on its own."""
    paths = [p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("*.py")]
    problems = [f"{path} imports {', '.join(names)}: move what it uses into a helper module beside it "
                f"(tests/<folder>/_<topic>.py) and import that"
                for path in sorted(paths) for names in [imported_test_modules(path)] if names]
    assert not problems, "\n".join(problems)


def test_a_test_module_imported_by_another_is_caught(tmp_path):
    (tmp_path / "tests").mkdir()
    for text, expected in {"from .test_resume import Kill\n": ["test_resume"],
                           "from presets.test_recipes import check\n": ["presets.test_recipes"],
                           "import test_trl as T\n": ["test_trl"],
                           "from registry_cases import NAMES\nfrom batches import t\n": []}.items():
        (tmp_path / "tests" / "x.py").write_text(text)
        assert imported_test_modules("tests/x.py", tmp_path) == expected, text
