r"""VideoSSR's self-supervised pretext tasks as data, on synthetic frames, with their rewards.

After He et al., "VideoSSR: Video Self-Supervised Reinforcement Learning" (arXiv:2511.06281),
following the authors' code (``lcqysl/VideoSSR@b0d2acb7bb040adb40bcd308e68f9c3bc2ca0699``:
``pretext_tasks/{grounding,counting,jigsaw}.py`` and the rewards in
``verl/verl/utils/reward_score/{grounding,counting,jigsaw}.py``). The answers come from how the
video was changed, so they are right by construction; no annotation is involved.

Each source is a :class:`~rlobj.data.tasks.TaskSource` whose record ``i`` (the same for the same
``i`` and seed) is ``{"prompt", "images", "answer", "task", ...}`` with ``images`` a list of
``H x W x 3`` ``uint8`` frames (the row key the trainer's image rows use). The frames of the
underlying "video" are synthetic (:func:`synthetic_video`: a drifting colour gradient and a
moving bar, so order and colour are visible), not decoded from files.

* :class:`AnomalyGrounding`: a segment of ``t`` frames ($t \in [8, 16]$, as the authors) is
  perturbed; answer ``"start-end"`` in seconds (``start / fps``, ``(start + t) / fps``, one
  decimal). Perturbations: ``grayscale``, ``invert``, ``channel_swap``, ``rotate180``, ``mirror``,
  ``noise`` (Gaussian, $\sigma \in [35, 70]$), ``shuffle`` (the segment's frames permuted),
  ``stutter_hold`` (2-5 frames of the segment held in turn). The authors' zoom, blur,
  saturation, 90-degree rotations and cross-video swap are not implemented.
* :class:`ObjectCounting`: circles, squares and triangles (random colour in [50, 255], size 20-40 %
  of the shorter side, rotated) drawn on 1-3 frames per shape at least ``min_frame_interval + 1``
  frames apart, 1-3 instances per frame, one shape kind per frame; answer
  ``"circles,squares,triangles"``. Instances do not overlap (an instance that cannot be placed
  after 50 tries is not drawn and not counted).
* :class:`TemporalJigsaw`: the video is cut into ``clips`` clips shown in a shuffled order; the
  answer gives, for each original clip in turn, the (1-based) position where it is shown, as the
  authors' ``answer_list[original] = position + 1``.

Rewards (:class:`VideoSSRReward`, a verifier, dispatching on ``sample["task"]``): grounding,
the IoU of the predicted and true intervals; counting, the mean over shapes of
$\max(0, 1 - |p - g| / |g|)$ (0 when the number of numbers differs); jigsaw,
$1 - \sum_k |\mathrm{pos}_\text{pred}(k) - \mathrm{pos}_\text{true}(k)| / \lfloor n^2 / 2 \rfloor$
over the answer's characters (0 unless a permutation of the answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlobj.data.tasks import TaskSource
from rlobj.ops.errors import RlobjInputError

__all__ = ["synthetic_video", "AnomalyGrounding", "ObjectCounting", "TemporalJigsaw", "VideoSSRReward",
           "interval_iou", "count_reward", "order_reward", "PERTURBATIONS"]


def synthetic_video(rng: np.random.Generator, frames: int, height: int, width: int,
                    background: str = "moving") -> list[np.ndarray]:
    """``frames`` frames ``height x width x 3`` uint8: a colour gradient drifting over time and a bar
    moving left to right (``background="moving"``), or black frames (``"black"``)."""
    if background == "black":
        return [np.zeros((height, width, 3), np.uint8) for _ in range(frames)]
    if background != "moving":
        raise RlobjInputError(f"background: expected 'moving' or 'black', got {background!r}")
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    phase, colour = rng.uniform(0, 2 * np.pi, size=3), rng.integers(60, 256, size=3)
    out = []
    for t in range(frames):
        shift = 2 * np.pi * t / max(frames, 1)
        image = np.stack([127 + 100 * np.sin(xs / width * 2 * np.pi + phase[c] + shift * (c + 1)) * np.cos(ys / height)
                          for c in range(3)], axis=-1)
        bar = int(round(t * (width - 4) / max(frames - 1, 1)))
        image[:, bar:bar + 4] = colour
        out.append(np.clip(image, 0, 255).astype(np.uint8))
    return out


def _noise(frame, rng):
    return np.clip(frame + rng.normal(0, rng.uniform(35, 70), frame.shape), 0, 255).astype(np.uint8)


PERTURBATIONS = {
    "grayscale": ("the video becomes black and white",
                  lambda f, rng: np.repeat(np.round(f @ np.array([0.299, 0.587, 0.114]))[..., None], 3, -1)
                  .astype(np.uint8)),
    "invert": ("the colours of the video are inverted", lambda f, rng: 255 - f),
    "channel_swap": ("the red and blue channels of the video are swapped", lambda f, rng: f[..., ::-1].copy()),
    "rotate180": ("the video is turned upside down", lambda f, rng: f[::-1, ::-1].copy()),
    "mirror": ("the video is mirrored left to right", lambda f, rng: f[:, ::-1].copy()),
    "noise": ("strong noise is added to the video", _noise),
    "shuffle": ("the frames are shuffled, so events happen in a scrambled order", None),
    "stutter_hold": ("the video freezes and stutters on a few frames", None),
}


class _Source(TaskSource):
    def __init__(self, frames: int, height: int, width: int, fps: float, seed: int, background: str):
        for name, value, low in (("frames", frames, 2), ("height", height, 8), ("width", width, 8)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise RlobjInputError(f"{type(self).__name__}.{name}: expected an int >= {low}, got {value!r}")
        if not isinstance(fps, (int, float)) or fps <= 0:
            raise RlobjInputError(f"{type(self).__name__}.fps: expected a positive number, got {fps!r}")
        self.frames, self.height, self.width, self.fps = frames, height, width, float(fps)
        self.seed, self.background = int(seed), background

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(index)])

    def base_frames(self, index: int) -> list[np.ndarray]:
        """The unchanged video of record ``index`` (the first draws of its generator)."""
        return synthetic_video(self.rng(index), self.frames, self.height, self.width, self.background)


class AnomalyGrounding(_Source):
    """Find the perturbed segment (see the module docstring).

    Args:
        perturbation: a key of :data:`PERTURBATIONS`.
        frames, height, width, fps: the video (the authors sample 48 frames).
        min_len, max_len: segment length range in frames (authors: 8, 16).
        seed: stream seed.
    """

    def __init__(self, perturbation: str = "channel_swap", frames: int = 48, height: int = 32, width: int = 32,
                 fps: float = 2.0, min_len: int = 8, max_len: int = 16, seed: int = 0, background: str = "moving"):
        super().__init__(frames, height, width, fps, seed, background)
        if perturbation not in PERTURBATIONS:
            raise RlobjInputError(f"AnomalyGrounding.perturbation: expected one of {sorted(PERTURBATIONS)}, "
                                  f"got {perturbation!r}")
        if not 1 <= min_len <= max_len <= frames:
            raise RlobjInputError(f"AnomalyGrounding: need 1 <= min_len <= max_len <= frames, got {min_len}, "
                                  f"{max_len}, {frames}")
        self.perturbation, self.min_len, self.max_len = perturbation, min_len, max_len

    def record(self, index: int) -> dict[str, Any]:
        rng = self.rng(index)
        video = synthetic_video(rng, self.frames, self.height, self.width, self.background)
        length = int(rng.integers(self.min_len, self.max_len + 1))
        start = int(rng.integers(0, self.frames - length + 1))
        segment = video[start:start + length]
        description, change = PERTURBATIONS[self.perturbation]
        if self.perturbation == "shuffle":
            segment = [segment[i] for i in rng.permutation(length)]
        elif self.perturbation == "stutter_hold":
            holds = int(rng.choice([2, 3, 4, 5]))
            chosen = np.linspace(0, length - 1, holds).astype(int)
            segment = [segment[i] for k, i in enumerate(chosen) for _ in range(length // holds + (k < length % holds))]
        else:
            segment = [change(frame, rng) for frame in segment]
        images = video[:start] + segment + video[start + length:]
        answer = f"{start / self.fps:.1f}-{(start + length) / self.fps:.1f}"
        prompt = (f"The video has {self.frames} frames at {self.fps:g} frames per second. In one segment, "
                  f"{description}. Give the start and end time of that segment in seconds as start-end.")
        return {"prompt": prompt, "images": images, "answer": answer, "task": "grounding",
                "segment": [start, start + length], "perturbation": self.perturbation}


SHAPES = ("circle", "square", "triangle")


def _shape_mask(kind: str, shape: tuple[int, int], centre: tuple[float, float], size: float, angle: float) -> np.ndarray:
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    cy, cx = centre
    if kind == "circle":
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= (size / 2) ** 2
    if kind == "square":
        points = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * size / 2
    else:
        height = size * 3 ** 0.5 / 2
        points = np.array([[0, -height / 2], [size / 2, height / 2], [-size / 2, height / 2]], np.float64)
    c, s = np.cos(angle), np.sin(angle)
    points = points @ np.array([[c, s], [-s, c]]) + np.array([cx, cy])
    inside = np.ones(shape, bool)
    for k in range(len(points)):  # convex polygon: the same side of every edge
        (x0, y0), (x1, y1) = points[k], points[(k + 1) % len(points)]
        inside &= (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0) >= 0
    return inside


_RADIUS = {"circle": 0.5, "square": 2 ** -0.5, "triangle": 3 ** -0.5}  # bounding radius / size


class ObjectCounting(_Source):
    """Count the shapes drawn into the video (see the module docstring).

    Args:
        max_frames_per_shape, max_instances_per_frame, min_frame_interval: the authors' 3, 3, 8.
        frames, height, width, fps, seed, background: the video.
    """

    def __init__(self, frames: int = 48, height: int = 64, width: int = 64, fps: float = 2.0,
                 max_frames_per_shape: int = 3, max_instances_per_frame: int = 3, min_frame_interval: int = 8,
                 seed: int = 0, background: str = "moving"):
        super().__init__(frames, height, width, fps, seed, background)
        self.max_frames, self.max_instances, self.interval = max_frames_per_shape, max_instances_per_frame, \
            min_frame_interval

    def record(self, index: int) -> dict[str, Any]:
        rng = self.rng(index)
        video = [f.copy() for f in synthetic_video(rng, self.frames, self.height, self.width, self.background)]
        available, counts, placed = set(range(self.frames)), dict.fromkeys(SHAPES, 0), {}
        for kind in SHAPES:
            wanted, chosen = int(rng.integers(1, self.max_frames + 1)), []
            for frame in rng.permutation(sorted(available)).tolist():
                if all(abs(frame - other) > self.interval for other in chosen):
                    chosen.append(frame)
                if len(chosen) == wanted:
                    break
            available.difference_update(chosen)
            for frame in chosen:
                drawn = self._draw(video[frame], kind, int(rng.integers(1, self.max_instances + 1)), rng)
                counts[kind] += drawn
                placed[frame] = {"shape": kind, "count": drawn}
        answer = ",".join(str(counts[k]) for k in SHAPES)
        prompt = ("Count the circles, squares and triangles drawn into this video (any colour, any rotation, on "
                  "one or more frames). Answer as circles,squares,triangles.")
        return {"prompt": prompt, "images": video, "answer": answer, "task": "counting", "shapes": placed}

    def _draw(self, frame: np.ndarray, kind: str, count: int, rng: np.random.Generator) -> int:
        side, centres, drawn = min(self.height, self.width), [], 0
        for _ in range(count):
            size = float(rng.integers(int(side * 0.2), int(side * 0.4) + 1))
            radius = size * _RADIUS[kind] + 1
            for _ in range(50):
                cy, cx = rng.uniform(radius, self.height - radius), rng.uniform(radius, self.width - radius)
                if all((cy - y) ** 2 + (cx - x) ** 2 > (radius + r + 1) ** 2 for y, x, r in centres):
                    break
            else:
                continue
            mask = _shape_mask(kind, frame.shape[:2], (cy, cx), size, float(rng.uniform(0, 2 * np.pi)))
            if not mask.any():
                continue
            frame[mask] = rng.integers(50, 256, size=3)
            centres.append((cy, cx, radius))
            drawn += 1
        return drawn


class TemporalJigsaw(_Source):
    """Put shuffled clips back in order (see the module docstring).

    Args:
        clips: number of clips (authors: 6 or 8; at most 9 so the answer is one digit per clip).
        frames, height, width, fps, seed, background: the video (``frames`` divisible by ``clips``).
    """

    def __init__(self, clips: int = 6, frames: int = 48, height: int = 32, width: int = 32, fps: float = 2.0,
                 seed: int = 0, background: str = "moving"):
        super().__init__(frames, height, width, fps, seed, background)
        if isinstance(clips, bool) or not isinstance(clips, int) or not 2 <= clips <= 9 or frames % clips:
            raise RlobjInputError(f"TemporalJigsaw.clips: expected an int in [2, 9] dividing frames={frames}, "
                                  f"got {clips!r}")
        self.clips = clips

    def record(self, index: int) -> dict[str, Any]:
        rng = self.rng(index)
        video = synthetic_video(rng, self.frames, self.height, self.width, self.background)
        per = self.frames // self.clips
        shown = rng.permutation(self.clips).tolist()  # shown[position] = original clip
        answer = [""] * self.clips
        for position, original in enumerate(shown):
            answer[original] = str(position + 1)
        images = [frame for original in shown for frame in video[original * per:(original + 1) * per]]
        prompt = (f"This video is {self.clips} clips of {per} frames each, shown in a shuffled order. For the first, "
                  f"second, ... part of the original video, give the position (1 to {self.clips}) of the clip that "
                  f"shows it, as one {self.clips}-digit number.")
        return {"prompt": prompt, "images": images, "answer": "".join(answer), "task": "jigsaw", "order": shown}


def _interval(text: str) -> tuple[float, float] | None:
    match = re.match(r"^\s*([\d.]+)\s*-\s*([\d.]+)\s*$", str(text))
    if not match:
        return None
    try:
        start, end = float(match.group(1)), float(match.group(2))
    except ValueError:
        return None
    return (start, end) if start <= end else None


def interval_iou(prediction: str, truth: str) -> float:
    """IoU of ``"a-b"`` intervals (0 when either does not parse; the authors' 0 for two equal points).

    Example:
        >>> interval_iou("1.0-3.0", "2.0-4.0")
        0.3333333333333333
    """
    pred, gold = _interval(prediction), _interval(truth)
    if pred is None or gold is None:
        return 0.0
    inter = max(0.0, min(pred[1], gold[1]) - max(pred[0], gold[0]))
    union = (pred[1] - pred[0]) + (gold[1] - gold[0]) - inter
    if union < 1e-9:
        return 1.0 if inter > 0 else 0.0
    return inter / union


def count_reward(prediction: str, truth: str) -> float:
    """Mean over the truth's numbers of ``max(0, 1 - |p - g| / |g|)``; 0 if the counts of numbers differ.

    Example:
        >>> round(count_reward("3, 1, 2", "3,2,2"), 6)  # (1 + (1 - 1/2) + 1) / 3
        0.833333
    """
    gold = [float(x) for x in str(truth).split(",")]
    pred = [float(x) for x in re.findall(r"\d+", str(prediction))]
    if len(pred) != len(gold):
        return 0.0
    return sum(1.0 if p == g else max(0.0, 1.0 - abs(p - g) / (abs(g) + 1e-9)) for p, g in zip(pred, gold,
                                                                                              strict=True)) / len(gold)


def order_reward(prediction: str, truth: str) -> float:
    """``1 - sum |position error| / floor(n^2 / 2)``; 0 unless the prediction is a permutation of the truth.

    Example:
        >>> order_reward("213", "123")
        0.5
    """
    pred, gold = str(prediction).strip(), str(truth).strip()
    if sorted(pred) != sorted(gold) or not gold:
        return 0.0
    worst = len(gold) ** 2 // 2
    return 1.0 - sum(abs(pred.find(c) - gold.find(c)) for c in gold) / worst if worst else 1.0


@dataclass(frozen=True)
class VideoSSRReward:
    """Verifier of the pretext rows: :func:`interval_iou`, :func:`count_reward` or :func:`order_reward`
    of the completion against ``sample["answer"]``, by ``sample["task"]``."""

    def __call__(self, completion: str, sample) -> float:
        task = sample.get("task")
        score = {"grounding": interval_iou, "counting": count_reward, "jigsaw": order_reward}.get(task)
        if score is None:
            raise KeyError(f"VideoSSRReward: sample['task'] must be 'grounding', 'counting' or 'jigsaw', got {task!r}")
        return float(score(str(completion), str(sample["answer"])))
