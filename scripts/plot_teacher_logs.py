"""Plot the teachers' training logs (loss and in-training EMA eval scores) to docs/teachers/curves.png.

Usage: python scripts/plot_teacher_logs.py
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).parents[1] / "docs" / "teachers"


def main() -> None:
    figure, (loss_axis, eval_axis) = plt.subplots(1, 2, figsize=(10, 3.5))
    for log in sorted(ROOT.glob("*/log.jsonl")):
        records = [json.loads(line) for line in log.read_text().splitlines()]
        loss_axis.plot([r["step"] for r in records], [r["loss"] for r in records], label=log.parent.name, lw=0.6)
        evals = [r for r in records if "eval" in r]
        for metric, style in (("colour_fidelity", "-o"), ("motion_direction", "--s")):
            eval_axis.plot(
                [r["step"] for r in evals],
                [r["eval"][metric] for r in evals],
                style,
                label=f"{log.parent.name} {metric}",
            )
    loss_axis.set(xlabel="step", ylabel="flow-matching loss", yscale="log", title="training loss (batch 256)")
    eval_axis.set(xlabel="step", ylabel="score", ylim=(0, 1.05), title="EMA on held-out seeds (eval split)")
    loss_axis.legend(fontsize=7)
    eval_axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(ROOT / "curves.png", dpi=100)


if __name__ == "__main__":
    main()
