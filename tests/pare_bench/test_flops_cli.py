"""`flops` on real Wan2.1 configs: meta-device run-time count against the formula, recipes, bad input."""

import json

import pytest

from pare_bench.__main__ import main
from pare_bench.wan.zoo import latent_grid


def test_latent_grid_follows_the_vae_and_names_bad_sizes():
    assert latent_grid(81, 480, 832) == (21, 60, 104)  # 21 x 30 x 52 = 32,760 tokens after the 1x2x2 patch
    assert latent_grid(81, 720, 1280) == (21, 90, 160)  # 75,600 tokens
    with pytest.raises(ValueError, match="4k\\+1.*multiple of 16"):
        latent_grid(80, 500, 832)


def test_wan_1_3b_at_480p_counts_agree_and_a_recipe_halves_the_cost(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("width: {ratio: 0.5}\ndepth: {budget: 0.5}\n")
    args = ["flops", "--model", "wan2.1-t2v-1.3b", "--height", "480", "--width", "832", "--recipe", str(recipe)]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    baseline, pare = result["rows"]
    assert result["tokens"] == 32760
    for row in (baseline, pare):
        assert abs(row["runtime_vs_analytic"]) < 0.01
    assert pare["blocks_executed"] == 15 and pare["heads_kept"] == 6 * 30
    assert pare["router"] > 0 and pare["router"] < 1e-4 * pare["per_forward"]
    assert pare["per_video"] == pytest.approx(pare["per_forward"] * 2 * 50)
    assert 0.2 < pare["ratio_to_baseline"] < 0.5


def test_bad_recipe_and_bad_size_exit_2(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("steps: 4\n")
    assert main(["flops", "--model", "wan2.1-t2v-1.3b", "--recipe", str(recipe)]) == 2
    assert "needs a `width` or `depth`" in capsys.readouterr().err
    assert main(["flops", "--model", "wan2.1-t2v-1.3b", "--frames", "80"]) == 2
    assert "4k+1" in capsys.readouterr().err
