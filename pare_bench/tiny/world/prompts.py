"""The tiny world's prompt grammar, vocabulary and splits.

A prompt names one or two objects, each a (colour, shape, motion) triple:

    "a red circle moving left"
    "a blue square moving up and a yellow circle standing still"

Held-out compositions are whole triples that never occur in a training prompt, so an evaluation
on them measures generalisation to new combinations of known words, not memorisation.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass

COLOURS = ("red", "green", "blue", "yellow", "magenta")
SHAPES = ("circle", "square")
MOTIONS = ("left", "right", "up", "down", "still")

# Unit displacement per motion word, in (dx, dy) image coordinates (y grows downwards).
MOTION_VECTORS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1), "still": (0, 0)}

# Triples never shown in training. Every colour, shape and motion word still occurs in training,
# only these combinations do not.
HELD_OUT_TRIPLES = frozenset(
    {
        ("red", "square", "up"),
        ("green", "circle", "left"),
        ("blue", "square", "still"),
        ("yellow", "circle", "down"),
        ("magenta", "square", "right"),
        ("blue", "circle", "right"),
    }
)

PAD, NULL = "<pad>", "<null>"
VOCAB = (PAD, NULL, "a", "and", "moving", "standing", *COLOURS, *SHAPES, *MOTIONS)
TOKEN_IDS = {word: index for index, word in enumerate(VOCAB)}
MAX_TOKENS = 16  # the longest prompt, two objects, is 11 words


@dataclass(frozen=True)
class WorldObject:
    colour: str
    shape: str
    motion: str

    def phrase(self) -> str:
        verb = "standing still" if self.motion == "still" else f"moving {self.motion}"
        return f"a {self.colour} {self.shape} {verb}"

    @property
    def triple(self) -> tuple[str, str, str]:
        return (self.colour, self.shape, self.motion)


@dataclass(frozen=True)
class Prompt:
    objects: tuple[WorldObject, ...]

    @property
    def text(self) -> str:
        return " and ".join(obj.phrase() for obj in self.objects)

    @property
    def held_out(self) -> bool:
        return any(obj.triple in HELD_OUT_TRIPLES for obj in self.objects)


def parse_prompt(text: str) -> Prompt:
    """Invert `Prompt.text`; raises ValueError naming the first word that does not fit the grammar."""
    objects = []
    for phrase in text.strip().split(" and "):
        words = phrase.split()
        if len(words) != 5 or words[0] != "a":
            raise ValueError(f"not a world prompt: {text!r} (expected 'a <colour> <shape> moving <dir>')")
        _, colour, shape, verb, motion = words
        if colour not in COLOURS or shape not in SHAPES:
            raise ValueError(f"unknown colour or shape in {phrase!r}; colours {COLOURS}, shapes {SHAPES}")
        if (verb, motion) != ("standing", "still") and not (verb == "moving" and motion in MOTIONS[:4]):
            raise ValueError(f"unknown motion in {phrase!r}; use 'moving left|right|up|down' or 'standing still'")
        objects.append(WorldObject(colour, shape, motion))
    if len({obj.colour for obj in objects}) != len(objects) or len(objects) > 2:
        raise ValueError(f"a world prompt has one or two objects of distinct colours: {text!r}")
    return Prompt(tuple(objects))


def tokenize(text: str) -> list[int]:
    """Word ids padded to MAX_TOKENS. The empty string is the CFG null prompt."""
    words = text.split() if text else [NULL]
    unknown = [word for word in words if word not in TOKEN_IDS]
    if unknown:
        raise ValueError(f"words outside the world vocabulary: {unknown}")
    return [TOKEN_IDS[word] for word in words] + [TOKEN_IDS[PAD]] * (MAX_TOKENS - len(words))


def all_objects() -> list[WorldObject]:
    return [WorldObject(*triple) for triple in itertools.product(COLOURS, SHAPES, MOTIONS)]


def train_objects() -> list[WorldObject]:
    return [obj for obj in all_objects() if obj.triple not in HELD_OUT_TRIPLES]


def sample_prompt(rng: random.Random, objects: list[WorldObject], two_object_prob: float) -> Prompt:
    first = rng.choice(objects)
    if rng.random() >= two_object_prob:
        return Prompt((first,))
    second = rng.choice([obj for obj in objects if obj.colour != first.colour])
    return Prompt((first, second))


def _split_prompts(objects: list[WorldObject], seed: int, singles: int, pairs: int) -> list[str]:
    rng = random.Random(seed)
    chosen = rng.sample(objects, min(singles, len(objects)))
    prompts = [Prompt((obj,)).text for obj in chosen]
    while len(prompts) < len(chosen) + pairs:
        text = sample_prompt(rng, objects, two_object_prob=1.0).text
        if text not in prompts:
            prompts.append(text)
    return prompts


def held_out_prompts() -> list[str]:
    """Every held-out triple alone, plus pairs in which one object is held out."""
    held = [WorldObject(*triple) for triple in sorted(HELD_OUT_TRIPLES)]
    rng = random.Random(7)
    pairs = []
    for obj in held:
        partner = rng.choice([other for other in train_objects() if other.colour != obj.colour])
        pairs.append(Prompt((obj, partner)).text)
    return [Prompt((obj,)).text for obj in held] + pairs


def _twin(obj: WorldObject, avoid: set[str], rng: random.Random, deficit: Counter) -> WorldObject:
    """A training-split object with `obj`'s shape and motion and another colour (not in `avoid`): of the
    allowed colours, one the held-in set is furthest behind on (`deficit`), so the colour mixes stay close."""
    colours = [c for c in COLOURS if c not in avoid and (c, obj.shape, obj.motion) not in HELD_OUT_TRIPLES]
    most = max(deficit[c] for c in colours)
    return WorldObject(rng.choice([c for c in colours if deficit[c] == most]), obj.shape, obj.motion)


def matched_prompts(count: int = 64, seed: int = 5) -> tuple[list[str], list[str]]:
    """(held-in, held-out): `count` distinct prompts each, matched one to one.

    Held-out: every held-out triple alone, then pairs of a held-out triple (in turn) and a training partner.
    Held-in: each held-out prompt with its held-out objects replaced by training objects of the same shape and
    motion in another colour. Both sets have the same object counts, shapes and motions, prompt for prompt, so
    a gap between them is the compositions, not the mix (colours differ only where the twin's had to).
    """
    rng = random.Random(seed)
    held = [WorldObject(*triple) for triple in sorted(HELD_OUT_TRIPLES)]
    heldout = [Prompt((obj,)) for obj in held]
    partners = train_objects()
    turn = 0
    while len(heldout) < count:
        obj = held[turn % len(held)]
        pair = Prompt((obj, rng.choice([p for p in partners if p.colour != obj.colour])))
        if pair not in heldout:
            heldout.append(pair)
            turn += 1
    heldin: list[Prompt] = []
    deficit = Counter(obj.colour for prompt in heldout for obj in prompt.objects)  # held-out minus held-in
    for prompt in heldout:
        while True:
            objects, used = [], set()
            for obj in prompt.objects:
                if obj.triple in HELD_OUT_TRIPLES:
                    others = {o.colour for o in prompt.objects if o is not obj}
                    obj = _twin(obj, used | others, rng, deficit)
                objects.append(obj)
                used.add(obj.colour)
            twin = Prompt(tuple(objects))
            if twin not in heldin:
                break
        heldin.append(twin)
        deficit.subtract(obj.colour for obj in twin.objects)
    return [p.text for p in heldin], [p.text for p in heldout]


def validation_prompts(count: int = 32, seed: int = 13) -> list[str]:
    """Training-composition prompts for choosing settings (half single, half two-object), none of them in any
    `matched_prompts` set, so a choice made on them is never scored on the prompts that report it."""
    taken = {text for size in (32, 64) for side in matched_prompts(size) for text in side}
    rng = random.Random(seed)
    singles = [text for obj in train_objects() if (text := Prompt((obj,)).text) not in taken]
    prompts = rng.sample(singles, min(count // 2, len(singles)))
    while len(prompts) < count:
        text = sample_prompt(rng, train_objects(), two_object_prob=1.0).text
        if text not in taken and text not in prompts:
            prompts.append(text)
    return prompts


# Seed ranges: training renders draw from [0, EVAL_SEED_BASE); evaluation seeds start at EVAL_SEED_BASE.
EVAL_SEED_BASE = 1_000_000

SPLITS = {
    "train": lambda: [Prompt((obj,)).text for obj in train_objects()],
    "eval": lambda: _split_prompts(train_objects(), seed=11, singles=10, pairs=6),
    "heldout": held_out_prompts,
    "smoke": lambda: _split_prompts(train_objects(), seed=11, singles=3, pairs=1),
    # The tiny suites' prompt set: held-out seeds and held-out compositions side by side.
    "benchmark": lambda: SPLITS["eval"]() + SPLITS["heldout"](),
    # Comparisons that need power: 64 + 64 prompts, held-in and held-out matched prompt for prompt.
    "matched": lambda: sum(matched_prompts(), []),
    # 32 + 32 matched prompts: the ablation suites (64 prompts x 4 seeds per system).
    "matched32": lambda: sum(matched_prompts(32), []),
    # Choosing settings (the temporal quota): prompts outside every matched set, scored with other seeds.
    "validation": validation_prompts,
}


def split_prompts(name: str) -> list[str]:
    if name not in SPLITS:
        raise ValueError(f"unknown world split {name!r}; known splits: {sorted(SPLITS)}")
    return SPLITS[name]()
