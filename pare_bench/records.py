"""The run records: one pydantic model per kind of line in a run's `records.jsonl`.

`RunStore.append` validates every record against these before it is written, so a misspelt or missing field
fails where it is made, not in the report that reads it later. Each record keeps exactly the fields it was given
(`exclude_unset`): optional fields such as `flops` or `failed` are present only when they were measured.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: str


class VideoRecord(_Record):
    """One generated (or scored) video: its prompt and seed, and what was measured while it was made."""

    kind: Literal["video"] = "video"
    name: str
    prompt: str
    index: int
    seed: int | None
    seconds: float  # how long it plays
    vbench_long: bool  # VBench-Long scores it (5 s or more)
    steps: int | None = None  # denoising steps it was sampled with
    flops: int | None = None  # executed FLOPs of the sampling call, when it ran under the counter
    routing: list[str] | None = None  # routed systems: the executed blocks per step ("1101...")
    failed: str | None = None  # why no frames were kept


class LatencyRecord(_Record):
    """Whole-video generation times of one system, timed in rounds interleaved with the other systems."""

    kind: Literal["latency"] = "latency"
    names: list[str]
    seconds: list[float]
    warmup: int
    threads: int
    rounds: Literal["interleaved"]


class MetricRecord(_Record):
    """A per-video metric's values (one or several columns) for one video."""

    kind: Literal["metric"] = "metric"
    name: str
    metric: str
    reference: str | None
    values: dict[str, float]
    held_out: bool | None  # world metrics: the prompt is a held-out composition


class DistributionRecord(_Record):
    """A metric over a system's whole set of videos (FID)."""

    kind: Literal["distribution"] = "distribution"
    metric: str
    value: float
    videos: int


class VbenchRecord(_Record):
    """VBench's own per-dimension scores of one system (its dimension names are the extra fields)."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["vbench"] = "vbench"


class HeadsRecord(_Record):
    """A width system's head plan beside the teacher's temporal scores (the report's head-roles plot)."""

    kind: Literal["heads"] = "heads"
    temporal: list[list[float]]
    keep: list[list[int]]
    overlap_importance: float | None = None  # Jaccard of the kept heads with the importance-only plan's
    temporal_kept: float | None = None  # share of the kept heads from the temporal half


class FlopsCheckRecord(_Record):
    """One system's FLOPs by three counters: the closed form, torch's run-time counter and fvcore."""

    kind: Literal["flops_check"] = "flops_check"
    forwards_per_video: int
    analytic_per_forward: float
    analytic_per_video: float
    runtime_per_video: float
    fvcore_x2_per_forward: float | None  # None where fvcore cannot trace the model (a routed one)


class TrainingRecord(_Record):
    """One training stage of a trained system's artifact, as its log says (`artifacts.stage_summary`)."""

    kind: Literal["training"] = "training"
    stage: str  # recovery, joint or step_distill
    directory: str  # the artifact folder's name (its recipe hash)
    steps: int
    stopped: str | None  # "plateau" when the stop rule ended it
    seconds: float | None  # compute time from the log (None for logs without times)
    curve: list[list[float]]  # [step, validation loss] pairs


Record = Annotated[
    VideoRecord
    | LatencyRecord
    | MetricRecord
    | DistributionRecord
    | VbenchRecord
    | HeadsRecord
    | FlopsCheckRecord
    | TrainingRecord,
    Field(discriminator="kind"),
]
RECORD = TypeAdapter(Record)


def record_line(record: dict | BaseModel) -> dict:
    """The record as it is written: validated against its kind's model, only the fields it was given."""
    model = record if isinstance(record, BaseModel) else RECORD.validate_python(record)
    return {"kind": model.kind, **model.model_dump(exclude_unset=True, mode="json")}
