"""The tiny vision-language run of the registry-wide checks: which registered entries are
multimodal (they read a perturbed-image forward or a visual-dependency / noisy-branch input),
and the YAML settings that train them for 2 RL steps on the tiny LLaVA and coloured squares."""

from rlobj.algebra.term import as_terms

from .pipeline_cases import NAMES, objective_for

#: inputs that only a vision-language run gives a meaning (a perturbed image)
VISUAL_SLOTS = frozenset({"extras:logp_perturbed", "extras:vocab_perturbed", "extras:visual_dependency",
                          "extras:noisy_branch"})


def is_multimodal(name: str) -> bool:
    return any(t.slots_read() & VISUAL_SLOTS for t in as_terms(objective_for(name)))


#: every registered term and recipe that reads a perceptual input
MULTIMODAL_NAMES = [name for name in NAMES if is_multimodal(name)]

PATCHES = {"patches": {"ratio": 0.6, "patch_size": 7, "fill": -1.0}}
#: model settings of the tiny-VLM run: policy, verifier, the patch-blackening providers
VLM_MODEL = {"policy": {"tiny_vlm": {"kind": "llava", "image_size": 28, "patch_size": 7, "hidden_size": 32,
                                     "layers": 1, "heads": 2, "vision_hidden_size": 16, "seed": 0}},
             "verifier": {"class_path": "train.vision_cases.ContainsDigit"},
             "providers": [{"PerturbedContext": {"perturbation": PATCHES}},
                           {"VisualDependency": {"perturbation": PATCHES}},
                           {"NoisyBranchRows": {"start": 0.5}}]}
VLM_DATA = {"train": {"class_path": "rlobj.train.shapes.ShapesTask", "init_args": {"seed": 1, "question": "count"}},
            "eval": {"class_path": "rlobj.train.shapes.ShapesTask", "init_args": {"seed": 2, "question": "count"}}}


class ContainsDigit:
    """Informative rewards for an untrained VLM: 1 when the completion holds a digit."""

    def __call__(self, completion: str, record: dict) -> float:
        return 1.0 if any(c.isdigit() for c in completion) else 0.0
