"""EvoSyn: hand-computed ranking and consistency fitness on a toy population, evolution reaching the
known optimum, sandboxed synthesis with dedup/validation/provenance, 2 RL steps from YAML."""

import string

import pytest

from rlobj.ops.errors import RlobjInputError
from rlobj.train.code_tasks import CodeRunner
from rlobj.train.evosyn import (
    EvoSynTasks,
    PassesTests,
    RankingStrategy,
    consistency_fitness,
    evolve,
    pass_matrix,
    synthesize,
)

from ._yaml_fit import fit_from_yaml

RUNNER = CodeRunner(wall_seconds=2.0)
# solution 0 is right; testing 0 accepts everything, testing 1 only the right solution, testing 2
# also accepts the wrong solution 1
TOY = [{"matrix": [[True, True, True], [True, False, True], [True, False, False]], "truth": [True, False, False]}]


def test_ranking_scores_by_hand():
    # iterations 1: counts (the authors' initial strategy)
    assert RankingStrategy().scores(TOY[0]["matrix"]) == ([1.0, 2 / 3, 1 / 3], [1.0, 1 / 3, 2 / 3])
    # iterations 2, rejection 3: u1 = [1, 2/3, 1/3]; v2 = [2 - 3(0 + 1/3 + 2/3), 1, 5/3 - 3/3] = [-1, 1, 2/3]
    u, v = RankingStrategy(2, 3.0).scores(TOY[0]["matrix"])
    assert v == pytest.approx([-1.0, 1.0, 2 / 3]) and u == pytest.approx([1.0, 5 / 6, 1 / 2])
    assert RankingStrategy(2, 3.0).rank(TOY[0]["matrix"]) == ([0, 1, 2], [1, 2, 0])


@pytest.mark.parametrize("strategy, fitness", [
    (RankingStrategy(1, 0.0), 0.0),  # best testing 0 accepts the wrong solutions
    (RankingStrategy(1, 9.0), 0.0),  # rejection has no effect in the first round
    (RankingStrategy(2, 1.5), 0.0),  # best testing 2 accepts wrong solution 1 (among the top 2)
    (RankingStrategy(2, 2.5), 1.0),  # best testing 1: agrees with the human tests (rejection > 2)
    (RankingStrategy(2, 3.0), 1.0),
])
def test_consistency_fitness_on_a_toy_population(strategy, fitness):
    assert consistency_fitness(strategy, TOY, top_s=2) == fitness


def test_evolution_reaches_the_known_optimum_and_never_loses_it():
    best, fitness, history = evolve(TOY, RankingStrategy(), generations=10, islands=2, size=4, top_s=2, seed=0)
    assert consistency_fitness(RankingStrategy(), TOY, top_s=2) == 0.0
    assert fitness == 1.0 == consistency_fitness(best, TOY, top_s=2)
    assert best.iterations == 2 and best.rejection > 2.0  # the region where fitness is 1, found by hand above
    assert history == sorted(history) and history[-1] == 1.0


RIGHT, PARTIAL, CRASH = ("def f(a):\n    return a + 1", "def f(a):\n    return a + 1 if a < 5 else a",
                         "def f(a):\n    return 1 // 0")
WEAK, STRONG, WRONG = ([{"input": "1", "output": "2"}], [{"input": "1", "output": "2"}, {"input": "9", "output": "10"}],
                       [{"input": "1", "output": "3"}])


def test_pass_matrix_runs_every_solution_against_every_testing_in_the_sandbox():
    assert pass_matrix([RIGHT, PARTIAL, CRASH, "import os\ndef f(a):\n    return a + 1"], [WEAK, STRONG, WRONG],
                       RUNNER) == [[True, True, False], [True, False, False], [False, False, False],
                                   [False, False, False]]


def test_synthesis_keeps_validated_unique_instances_with_provenance():
    candidates = [{"prompt": "Add one to a.", "solutions": [RIGHT, PARTIAL, CRASH], "testings": [WEAK, STRONG, WRONG]},
                  {"prompt": "Double a.", "solutions": [RIGHT, CRASH], "testings": [[{"input": "2", "output": "4"}]]},
                  {"prompt": "add  one to a.", "solutions": [RIGHT], "testings": [WEAK]},
                  {"prompt": "Broken.", "solutions": [RIGHT], "testings": [[{"input": "os.system('id')",
                                                                             "output": "0"}]]}]
    kept, counts = synthesize(candidates, RankingStrategy(2, 3.0), RUNNER, fitness=1.0)
    assert dict(counts) == {"kept": 1, "no_passing_pair": 1, "duplicate": 1, "invalid": 1}
    # matrix [[T, T, F], [T, F, F], [F, F, F]]: u1 = [1, 1/2, 0]; v2 = [3/2 - 3/2, 1, 0] -> testing 1 (STRONG)
    assert kept == [{"prompt": "Add one to a.", "tests": STRONG, "answer": RIGHT, "completion": RIGHT,
                     "provenance": {"source": 0, "solution": 0, "testing": 1,
                                    "strategy": {"iterations": 2, "rejection": 3.0}, "fitness": 1.0}}]
    verifier = PassesTests(wall_seconds=2.0)
    assert verifier(f"```python\n{RIGHT}\n```", kept[0]) == 1.0
    assert verifier(PARTIAL, kept[0]) == 0.0
    assert verifier("import subprocess\ndef f(a):\n    return a + 1", kept[0]) == 0.0


def test_tasks_evolve_on_seeds_then_synthesize():
    seeds = [{"solutions": [RIGHT, PARTIAL, CRASH], "testings": [WEAK, STRONG, [{"input": "0", "output": "1"}]],
              "human_tests": STRONG}]
    tasks = EvoSynTasks([{"prompt": "p", "solutions": [RIGHT, PARTIAL], "testings": [WEAK, STRONG]}], seeds=seeds,
                        generations=3, top_s=1, wall_seconds=2.0)
    assert tasks.fitness == 1.0 and tasks.history[-1] == 1.0
    assert tasks.record(5)["provenance"]["fitness"] == 1.0 and tasks.record(0)["prompt"] == "p"
    with pytest.raises(RlobjInputError, match="no candidate was kept"):
        EvoSynTasks([{"prompt": "p", "solutions": [CRASH], "testings": [WEAK]}], wall_seconds=2.0)
    with pytest.raises(RlobjInputError, match="iterations"):
        RankingStrategy(0)


def test_evosyn_tasks_train_two_rl_steps_from_yaml(tmp_path):
    candidates = [{"prompt": "Add one to a:", "solutions": [RIGHT, PARTIAL], "testings": [WEAK, STRONG]},
                  {"prompt": "Return a:", "solutions": ["def f(a):\n    return a"], "testings": [WEAK, [
                      {"input": "1", "output": "1"}]]}]
    model = {"policy": {"tiny_model": {"hidden_size": 64, "layers": 1, "heads": 2, "seed": 0},
                        "tokenizer_chars": string.ascii_letters + string.digits + string.punctuation + " \n"},
             "rollout": {"group_size": 2, "max_new_tokens": 6}, "warmup": {"steps": 0, "eval_at_end": False},
             "verifier": {"class_path": "rlobj.train.evosyn.PassesTests", "init_args": {"wall_seconds": 2.0}},
             "seed": 0}
    data = {"train": {"class_path": "rlobj.train.evosyn.EvoSynTasks",
                      "init_args": {"candidates": candidates, "wall_seconds": 2.0}},
            "eval": {"class_path": "rlobj.train.evosyn.EvoSynTasks",
                     "init_args": {"candidates": candidates, "wall_seconds": 2.0}},
            "prompts_per_step": 2, "eval_size": 2}
    cli = fit_from_yaml(tmp_path, model, data)
    assert cli.model.rl_updates >= 2
    records = cli.model.last_batch[0].records
    assert {r["prompt"] for r in records} == {"Add one to a:", "Return a:"}
    assert all("provenance" in r and r["tests"] for r in records)
