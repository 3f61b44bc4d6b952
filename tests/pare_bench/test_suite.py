"""The suite loader: valid suites load, and a broken one reports every problem with its path and line."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from pare_bench import suite as suite_module
from pare_bench.suite import Suite, SuiteError, load_suite, resolve_prompts, suite_hash

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "suites"
# The metric registry is filled by other modules; these tests name the metrics instead of importing them.
METRICS = {"psnr", "ssim", "world", "flops", "latency", "vbench"}
# The zoo imports diffusers (slow); `test_fake_zoo_matches_the_zoo` keeps this copy honest.
FAKE_ZOO = {"tiny-wan-t2v": "t2v", "tiny-wan-i2v": "i2v"}


@pytest.fixture(autouse=True)
def fake_zoo(monkeypatch):
    monkeypatch.setattr(suite_module, "_tiny_models", lambda: dict(FAKE_ZOO))


def load(name: str) -> Suite:
    return load_suite(DATA / name, known_metrics=METRICS)


def problems_of(name: str) -> tuple[str, ...]:
    with pytest.raises(SuiteError) as caught:
        load(name)
    return caught.value.problems


def load_suite_text(extra: str, directory: Path | None = None) -> Suite:
    """A minimal valid suite whose top-level keys in `extra` replace the defaults, loaded from a scratch file."""
    base = (
        "suite: scratch\ntask: t2v\nmodel: tiny-wan-t2v\nprompts: world:smoke\n"
        "systems: [{name: baseline}]\nmetrics: [{metric: world}]\n"
    )
    lines = {line.split(":")[0]: line for line in base.splitlines()}
    for line in extra.splitlines():
        lines.pop(line.split(":")[0], None)
    text = "\n".join(lines.values()) + "\n" + extra
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(directory or scratch) / "scratch.yaml"
        path.write_text(text)
        try:
            return load_suite(path, known_metrics=METRICS)
        finally:
            path.unlink()


def line_of(name: str, needle: str, occurrence: int = 0) -> int:
    """The 1-based line of a fixture that contains `needle`, so tests don't hardcode line numbers."""
    lines = [n for n, line in enumerate((DATA / name).read_text().splitlines(), start=1) if needle in line]
    return lines[occurrence]


def test_valid_suite_loads():
    suite = load("valid.yaml")
    assert (suite.suite, suite.task, suite.model, suite.samples_per_prompt) == ("tiny_t2v", "t2v", "tiny-wan-t2v", 2)
    assert suite.seed.base == 1_000_000 and suite.sampling.scheduler == "unipc" and suite.frames is None
    assert [s.name for s in suite.systems] == ["baseline", "fbcache"]
    assert suite.system("fbcache").cache == {"first_block": {"threshold": 0.05}}
    assert suite.metrics[0].reference == "baseline"
    assert suite.metrics[4].options == {"warmup": 1, "repeats": 3}


def test_load_suite_writes_nothing():
    before = {p: p.stat().st_mtime_ns for p in DATA.rglob("*")}
    load("valid.yaml")
    with pytest.raises(SuiteError):
        load("many_problems.yaml")
    assert {p: p.stat().st_mtime_ns for p in DATA.rglob("*")} == before


def test_suite_hash_is_stable_and_content_addressed():
    suite = load("valid.yaml")
    assert re.fullmatch(r"[0-9a-f]{16}", suite_hash(suite))
    same = Suite.model_validate(suite.model_dump())
    assert suite_hash(same) == suite_hash(suite)
    changed = suite.model_copy(update={"sampling": suite.sampling.model_copy(update={"steps": 21})})
    assert suite_hash(changed) != suite_hash(suite)


def test_world_prompts_resolve_to_the_split():
    from pare_bench.tiny.world.prompts import split_prompts

    assert resolve_prompts(load("valid.yaml"), DATA / "valid.yaml") == split_prompts("eval")


def test_file_prompts_are_the_stripped_non_empty_lines():
    suite = load("file_prompts.yaml")
    assert resolve_prompts(suite, DATA / "file_prompts.yaml") == [
        "a red circle moving left",
        "a blue square standing still",
    ]


def test_include_merges_mappings_and_replaces_lists():
    child, base = load("include_child.yaml"), load("valid.yaml")
    assert child.suite == "tiny_t2v_fast"
    assert child.sampling.steps == 8 and child.sampling.guidance == base.sampling.guidance  # merged
    assert [s.name for s in child.systems] == ["baseline", "euler"]  # replaced
    assert child.metrics == base.metrics and child.seed == base.seed  # inherited
    assert child.sampling_for(child.system("euler")).scheduler == "euler"
    assert child.sampling_for(child.system("euler")).steps == 8


def test_include_problems_point_into_the_file_that_has_them(tmp_path):
    (tmp_path / "base.yaml").write_text("suite: base\ntask: t2v\nsamples_per_prompt: 0\n")
    (tmp_path / "child.yaml").write_text(
        "include: base.yaml\nmodel: tiny-wan-t2v\nprompts: world:smoke\n"
        "systems: [{name: baseline}]\nmetrics: [{metric: world}]\nframez: 8\n"
    )
    with pytest.raises(SuiteError) as caught:
        load_suite(tmp_path / "child.yaml", known_metrics=METRICS)
    assert caught.value.problems == (
        f"{tmp_path / 'base.yaml'}:3: samples_per_prompt: Input should be greater than 0 (got 0)",
        (
            f"{tmp_path / 'child.yaml'}:6: framez: unknown key 'framez'; did you mean 'frames'?"
            " (known: ['frames', 'height', 'image_suite', 'include', 'metadata', 'metrics', 'model', 'prompts',"
            " 'samples_per_prompt', 'sampling', 'seed', 'suite', 'systems', 'task', 'weights', 'width'])"
        ),
    )


def test_include_cycle_is_detected():
    (problem,) = problems_of("cycle_a.yaml")
    assert "include cycle" in problem
    assert problem.index("cycle_a.yaml ->") < problem.index("cycle_b.yaml ->") < problem.rindex("cycle_a.yaml")


def test_malformed_yaml_reports_line_and_column():
    (problem,) = problems_of("malformed.yaml")
    # The parser gives up at the ':' after 'guidance' (line 5, column 11); the '[' it could not close
    # opened on line 4, column 10.
    assert problem.startswith(f"{DATA / 'malformed.yaml'}:5:11: malformed YAML at line 5, column 11")
    assert "started at line 4, column 10" in problem


def test_top_level_must_be_a_mapping():
    (problem,) = problems_of("not_a_mapping.yaml")
    assert "top level must be a mapping" in problem and "got a list" in problem


def test_every_problem_is_reported_at_once_with_path_and_line():
    name = "many_problems.yaml"
    with pytest.raises(SuiteError) as caught:
        load(name)
    message = str(caught.value)
    expected = [
        (line_of(name, "sead:"), "sead: unknown key 'sead'; did you mean 'seed'?"),
        (line_of(name, "samples_per_prompt:"), "samples_per_prompt: Input should be a valid integer (got 'two')"),
        (line_of(name, "steps: 0"), "sampling.steps: Input should be greater than 0 (got 0)"),
        (
            line_of(name, "first_blok"),
            ("systems[1].cache.first_blok: unknown cache method 'first_blok'; did you mean 'first_block'?"),
        ),
        (line_of(name, "pnsr"), "metrics[0].metric: unknown metric 'pnsr'; did you mean 'psnr'?"),
        (line_of(name, "teacher"), "metrics[1].reference: reference 'teacher' is not a system of this suite"),
        (line_of(name, "prompts:"), "prompts: prompt file not found"),
    ]
    assert message.startswith(f"invalid suite {DATA / name} ({len(expected)} problems):")
    for line, text in expected:
        assert f"{DATA / name}:{line}: {text}" in message, (text, message)
    assert len(caught.value.problems) == len(expected)


def test_empty_prompt_file():
    (problem,) = problems_of("empty_prompts.yaml")
    assert f":{line_of('empty_prompts.yaml', 'prompts:')}: prompts: prompt file" in problem
    assert "has no prompts" in problem


def test_unknown_world_split():
    with pytest.raises(SuiteError, match=r"unknown world split 'evl'; did you mean 'eval'\?"):
        load_suite_text("prompts: world:evl\n")


def test_unknown_model_suggests_a_zoo_name():
    (problem,) = problems_of("unknown_model.yaml")
    assert "model: unknown model 'tiny-wan-tv2'; did you mean 'tiny-wan-t2v'?" in problem
    assert "['tiny-wan-i2v', 'tiny-wan-t2v', 'wan2.1-i2v-14b-480p'" in problem  # tiny and real Wan names


def test_local_model_directory_is_accepted(tmp_path):
    (tmp_path / "my_model").mkdir()
    assert load_suite_text("model: my_model\n", tmp_path).model == "my_model"


def test_task_must_match_the_model():
    (problem,) = problems_of("task_mismatch.yaml")
    assert "task: task 't2v' does not match model 'tiny-wan-i2v', whose task is 'i2v'" in problem


def test_duplicate_system_names():
    (problem,) = problems_of("duplicate_systems.yaml")
    assert f":{line_of('duplicate_systems.yaml', 'name: baseline', 1)}: systems[2].name: " in problem
    assert "duplicate system name 'baseline' (also systems[0])" in problem


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("frames: 0\n", "frames: Input should be greater than 0"),
        ("frames: -3\n", "frames: Input should be greater than 0"),
        ("frames: 100\n", "frames: tiny-wan-t2v takes at most 64 frames (its rotary embedding covers 64 positions)"),
        ("sampling: {steps: 0}\n", "sampling.steps: Input should be greater than 0"),
        ("systems: [{name: s, sampling: {steps: -2}}]\n", "systems[0].sampling.steps: Input should be greater than 0"),
        ("sampling: {guidance: 0.5}\n", "sampling.guidance: Input should be greater than or equal to 1"),
        ("sampling: {steps: true}\n", "sampling.steps: Input should be a valid integer (got True)"),
        ("seed: {base: -1}\n", "seed.base: Input should be greater than or equal to 0"),
        ("sampling: {scheduler: dpm}\n", "sampling.scheduler: Input should be 'unipc' or 'euler'"),
        ("systems: []\n", "systems: List should have at least 1 item"),
        ("systems: [{name: c, cache: {first_block: {}, mag_cache: {}}}]\n", "cache must name exactly one method"),
        ("systems: [{name: c, sampling: {step: 4}}]\n", "systems[0].sampling.step: unknown key 'step'; did you mean"),
        ("a: 1\na: 2\n", "a: duplicate key 'a' (also on line"),
        ("systems: [{name: a, seeds: [0]}]\n", "seeds replicate a trained recipe; this system has no recipe"),
        ("systems: [{name: a, seeds: [1, 1], recipe: {width: {ratio: 0.5}}}]\n", "seeds must be distinct"),
        ("systems: [{name: a, seeds: [], recipe: {width: {ratio: 0.5}}}]\n", "seeds: List should have at least 1"),
        (
            "systems: [{name: a-s0}, {name: a, seeds: [0], recipe: {width: {ratio: 0.5}}}]\n",
            "duplicate system name 'a-s0' (also systems[0])",
        ),
        ("systems: [{name: a, recipe: {width: {ratio: 0.5, cross_ratio: 1.0}}}]\n", "cross_ratio: Input should be"),
        (
            "systems: [{name: a, recipe: {depth: {budget: 0.6, static_floor: 0.5}}}]\n",
            "static_floor bounds the fixed block set of `router: static`; this router learns",
        ),
        (
            "systems: [{name: a, recipe: {depth: {budget: 0.6, static_floor: 0.7, router: static}}}]\n",
            "static_floor 0.7 is above the budget 0.6",
        ),
    ],
)
def test_field_problems(extra, expected):
    with pytest.raises(SuiteError) as caught:
        load_suite_text(extra)
    assert expected in str(caught.value)


def test_wan_frame_counts_must_be_4k_plus_1(tmp_path):
    (tmp_path / "wan" / "vae").mkdir(parents=True)
    with pytest.raises(SuiteError) as caught:
        load_suite_text("model: wan\nframes: 80\n", directory=tmp_path)
    assert "frames: Wan needs 4k+1 frames (its VAE compresses time 4x); got 80, use 77 or 81" in str(caught.value)
    assert load_suite_text("model: wan\nframes: 81\n", directory=tmp_path).frames == 81


def test_seeds_expand_into_one_system_per_recipe_seed():
    suite = load_suite_text(
        "systems: [{name: base}, {name: pw, seeds: [2, 0], recipe: {width: {ratio: 0.5, score: random}}}]\n"
        "metrics: [{metric: psnr, reference: base}]\n"
    )
    assert [(s.name, s.replica_of, s.seeds) for s in suite.systems] == [
        ("base", None, None),
        ("pw-s2", "pw", None),
        ("pw-s0", "pw", None),
    ]
    assert [s.recipe.width.seed for s in suite.systems[1:]] == [2, 0]
    assert {s.recipe.width.score for s in suite.systems[1:]} == {"random"}


def test_suites_built_in_code_get_the_cross_field_checks():
    with pytest.raises(ValidationError, match="duplicate system name"):
        Suite(suite="s", task="t2v", model="m", prompts="p", systems=[{"name": "a"}, {"name": "a"}], metrics=[])
    with pytest.raises(ValidationError, match="reference 'b' is not a system"):
        Suite(
            suite="s",
            task="t2v",
            model="m",
            prompts="p",
            systems=[{"name": "a"}],
            metrics=[{"metric": "psnr", "reference": "b"}],
        )


def test_fake_zoo_matches_the_zoo(monkeypatch):
    monkeypatch.undo()  # the real zoo, which imports diffusers
    assert suite_module._tiny_models() == FAKE_ZOO


REPO_SUITES = sorted((ROOT / "suites").glob("*.yaml"))


@pytest.mark.parametrize("path", REPO_SUITES, ids=[p.name for p in REPO_SUITES])
def test_shipped_suites_load(path, monkeypatch):
    """Every shipped suite loads against the real metric registry and zoo."""
    monkeypatch.undo()
    suite = load_suite(path)
    if suite.prompts.startswith("vbench-i2v:"):  # VBench's I2V image suite is a download the user provides
        monkeypatch.delenv("VBENCH_I2V_DIR", raising=False)
        with pytest.raises(FileNotFoundError, match="VBench I2V image suite: .*vbench2_i2v_full_info.json is missing"):
            resolve_prompts(suite, path)
        return
    assert resolve_prompts(suite, path)


@pytest.mark.parametrize(
    ("dimensions", "expected"),
    [
        ("[temporal_flicker]", "unknown VBench dimension 'temporal_flicker'; did you mean 'temporal_flickering'?"),
        ("[color]", "VBench dimension 'color' needs VBench's own prompt suite: add `mode: standard`"),
        ("[]", "vbench needs `dimensions:`, a non-empty list"),
        ("[i2v_subject]", "VBench dimension 'i2v_subject' scores image-to-video; this suite's task is not i2v"),
        ("[color], mode: standard", "vbench `mode: standard` scores VBench's own prompt suite: set `prompts: vbench"),
    ],
)
def test_vbench_dimensions_are_checked(dimensions, expected):
    with pytest.raises(SuiteError) as caught:
        load_suite_text(f"metrics: [{{metric: vbench, dimensions: {dimensions}}}]\n")
    assert expected in str(caught.value)


def test_vbench_prompt_selection_is_checked():
    with pytest.raises(SuiteError, match="unknown VBench prompt selection 'colour'; did you mean 'color'"):
        load_suite_text("prompts: vbench:colour\n")
