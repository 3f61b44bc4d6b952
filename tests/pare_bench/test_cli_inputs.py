"""Bad command-line input: exit 2, a message that names the fix, and no run directory."""

from pathlib import Path

import pytest

from pare_bench.__main__ import main

SUITE = Path(__file__).parents[1] / "data" / "suites" / "run_tiny.yaml"


@pytest.mark.parametrize("limit", ["0", "-1", "two"])
def test_a_limit_below_one_exits_2_and_writes_nothing(limit, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(SUITE), "--out", str(tmp_path / "run"), "--limit", limit])
    assert exit_info.value.code == 2
    assert "--limit" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_misspelt_key_inside_a_metric_entry_is_named_with_did_you_mean(tmp_path, capsys):
    text = SUITE.read_text().replace("include: ../../../", f"include: {Path(__file__).parents[2]}/")
    path = tmp_path / "suite.yaml"
    path.write_text(text + "metrics:\n  - {metric: psnr, referense: baseline}\n  - {metric: latency, repeat: 3}\n")
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'referense' for metric 'psnr'; did you mean 'reference'?" in err
    assert "unknown key 'repeat' for metric 'latency'; did you mean 'repeats'?" in err
    assert not (tmp_path / "run").exists()


def test_a_missing_suite_lists_the_suites_that_exist(tmp_path, capsys):
    assert main(["run", "suites/tiny_t2x.yaml", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "no such suite file" in err and "suites/tiny_t2v.yaml" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "what, expected",
    [("suites", "ci_smoke"), ("metrics", "motion_direction"), ("models", "tiny-wan-i2v"), ("systems", "fbcache")],
)
def test_list_names_what_the_harness_knows(what, expected, capsys):
    assert main(["list", what]) == 0
    assert expected in capsys.readouterr().out
