"""Where a routed system spends its blocks: per-step decisions from the video records, summarized and drawn.

Each routed video record carries `routing`: one "1"/"0" string over the blocks per denoising step (step 0 is
pure noise). The adaptivity measure is the spread across videos at the same step: the mean, over steps, of
the mean Hamming distance between two different videos' block sets (in blocks). A router that sees only the
timestep has spread 0 by construction, which makes it a control for the measure itself.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pare_bench.plots import save_figure  # noqa: E402


def decisions(records: list[dict]) -> dict[str, tuple[list[str], np.ndarray]]:
    """system -> (prompts, (videos, steps, blocks) 0/1 array), for systems whose videos carry routing."""
    by_system: dict[str, list[dict]] = {}
    for record in records:
        if record["kind"] == "video" and "routing" in record and "failed" not in record:
            by_system.setdefault(record["system"], []).append(record)
    return {
        system: (
            [v["prompt"] for v in videos],
            np.array([[[c == "1" for c in step] for step in v["routing"]] for v in videos], dtype=float),
        )
        for system, videos in by_system.items()
    }


def spread(gates: np.ndarray) -> float:
    """Mean over steps of the expected Hamming distance between two different videos' decisions."""
    videos = gates.shape[0]
    if videos < 2:
        return float("nan")
    kept = gates.mean(axis=0)  # (steps, blocks): share of videos keeping the block
    pairwise = 2 * kept * (1 - kept) * videos / (videos - 1)  # P(two different videos disagree), per block
    return float(pairwise.sum(axis=1).mean())


ROUTING_COLUMNS = ("blocks_per_step", "route_spread", "route_sets_per_step")  # `summarize_routing`'s columns
ROUTING_PER_SEED = ("blocks_per_step", "route_spread")  # the ones the report summarises across training seeds


def summarize_routing(records: list[dict]) -> pd.DataFrame:
    """Per routed system: blocks run per step, the spread across videos, distinct block sets per step."""
    rows = {}
    for system, (_, gates) in decisions(records).items():
        distinct = [len({tuple(video) for video in gates[:, step]}) for step in range(gates.shape[1])]
        rows[system] = {
            "blocks_per_step": float(gates.sum(axis=2).mean()),
            "route_spread": spread(gates),
            "route_sets_per_step": float(np.mean(distinct)),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def plot_routing(records: list[dict], path: Path, singles: int = 3) -> bool:
    """Executed blocks per step: the mean over every video, then `singles` single videos of different prompts
    (the same prompts in every row), one row per routed system."""
    routed = decisions(records)
    if not routed:
        return False
    prompts = list(dict.fromkeys(next(iter(routed.values()))[0]))
    chosen = [prompts[round(i * (len(prompts) - 1) / max(1, singles - 1))] for i in range(min(singles, len(prompts)))]
    columns = 1 + len(chosen)
    figure, axes = plt.subplots(
        len(routed), columns, figsize=(2.6 * columns, 2.4 * len(routed)), squeeze=False, sharey=True
    )
    for row, (system, (system_prompts, gates)) in zip(axes, routed.items()):
        panels = [("mean over videos", gates.mean(axis=0))]
        panels += [(prompt, gates[system_prompts.index(prompt)]) for prompt in chosen if prompt in system_prompts]
        for column, (axis, (title, image)) in enumerate(zip(row, panels)):
            shown = axis.imshow(image, cmap="magma", vmin=0, vmax=1, aspect="auto")
            axis.set_title(title if column == 0 else f'"{title}"', fontsize=7)
            axis.set_xlabel("block", fontsize=7)
            if column == 0:
                axis.set_ylabel(f"{system}\nstep (0 = noise)", fontsize=7)
    figure.colorbar(shown, ax=axes.ravel().tolist(), label="share of videos running the block")
    save_figure(figure, path, tight=True)
    return True
