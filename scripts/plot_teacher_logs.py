"""Plot teacher training logs: loss, the swap probe, and in-training EMA eval scores.

Usage: python scripts/plot_teacher_logs.py [RUN_DIR ...] [--out PNG] [--after RUN=PREVIOUS ...]
Each RUN_DIR holds a `log.jsonl` written by `python -m pare_bench train-teacher` (default: every folder
under docs/teachers/). The swap probe is the loss with each moving object's direction word swapped for
its opposite minus the loss with the right word, at fixed noise levels: above zero means the model
uses the word. The binding probe exchanges the motion words of a two-object prompt's objects: above zero
means the model knows which object each word belongs to. `--after t2v-C=t2v-B` draws run t2v-C (trained
`--init` from t2v-B's weights) after t2v-B's last step.
"""

import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).parents[1] / "docs" / "teachers"


def _smooth(values: list[float], window: int = 25) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot(runs: list[Path], out: Path, after: dict[str, str] | None = None) -> None:
    logs = {run: [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()] for run in runs}
    last = {run.name: records[-1]["step"] for run, records in logs.items()}
    for run, records in logs.items():  # a continued run: its steps count on from its predecessor's last
        offset = last.get((after or {}).get(run.name), 0)
        logs[run] = [{**r, "step": r["step"] + offset} for r in records]
    with_evals = any("eval" in r for records in logs.values() for r in records)
    with_binding = any("bind_0.9" in r for records in logs.values() for r in records)
    panels = 2 + with_binding + with_evals
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.8))
    axes = list(axes)
    loss_axis, probe_axis = axes[:2]
    bind_axis = axes[2] if with_binding else None
    eval_axis = axes[-1] if with_evals else None
    for run, records in logs.items():
        loss = _smooth([r["loss"] for r in records])
        first = records[0]["step"] + len(records) - len(loss)
        loss_axis.plot(np.arange(len(loss)) + first, loss, lw=0.8, label=run.name)
        probes = [r for r in records if any(k.startswith("swap_") for k in r)]
        for key, style in (("swap_0.5", ":"), ("swap_0.75", "--"), ("swap_0.9", "-")):
            if probes and key in probes[0]:
                probe_axis.plot(
                    [r["step"] for r in probes], [r[key] for r in probes], style, label=f"{run.name} t={key[5:]}"
                )
        binds = [r for r in records if "bind_0.9" in r]
        if bind_axis and binds:
            bind_axis.plot([r["step"] for r in binds], [r["bind_0.9"] for r in binds], "-o", ms=3, label=run.name)
        evals = [r for r in records if "eval" in r]
        for metric, style in (("motion_direction", "-o"), ("still_accuracy", "--s"), ("colour_fidelity", ":^")):
            if eval_axis and evals and metric in evals[0]["eval"]:
                eval_axis.plot(
                    [r["step"] for r in evals], [r["eval"][metric] for r in evals], style, label=f"{run.name} {metric}"
                )
    loss_axis.set(xlabel="step", ylabel="loss (25-step mean)", yscale="log", title="training loss (motion-weighted)")
    probe_axis.axhline(0, color="grey", lw=0.5)
    probe_axis.set(xlabel="step", ylabel="loss(swapped word) - loss(right word)", title="swap probe (EMA weights)")
    if bind_axis:
        bind_axis.axhline(0, color="grey", lw=0.5)
        bind_axis.set(
            xlabel="step", ylabel="loss(words exchanged) - loss(right)", title="binding probe at t=0.9 (EMA weights)"
        )
    if eval_axis:
        eval_axis.set(xlabel="step", ylabel="score", ylim=(0, 1.05), title="EMA on held-out seeds (eval split)")
    for axis in axes:
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "curves.png")
    parser.add_argument("--after", action="append", default=[], help="RUN=PREVIOUS: RUN continues PREVIOUS")
    args = parser.parse_args()
    runs = args.runs or sorted(p.parent for p in ROOT.glob("*/log.jsonl"))
    plot(runs, args.out, dict(item.split("=", 1) for item in args.after))


if __name__ == "__main__":
    main()
