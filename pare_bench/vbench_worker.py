"""Runs inside the VBench environment (numpy<2, transformers 4.33): never imports pare_bench.

    python vbench_worker.py REQUEST.json

REQUEST: {"videos": DIR, "name": NAME, "output": DIR, "dimensions": [...], "mode": MODE, "device": "cpu",
"prompts": {"file.mp4": "prompt", ...}, "images": {"prompt": "image path", ...}, "image_dimensions":
{"prompt": [...]}, "long": false}.

MODE "custom_input": the harness's own prompts (VBench reads them from `prompts`). "vbench_standard": VBench's
prompt suite (VBench_full_info.json); files must be named `{prompt}-{index}.mp4` after its prompts. "i2v":
vbench2_beta_i2v (i2v_subject, i2v_background, camera_motion and the quality dimensions), with the harness's
conditioning images (each scored on its `image_dimensions`, default all): the worker writes the full-info file
VBenchI2V reads and puts each image where it
looks (`vbench2_beta_i2v/data/crop/1-1/` under the working directory). `long`: the videos are 5 s or longer
and go through vbench2_beta_long's VBenchLong, which splits them into clips first. Weights VBench would fetch
from the network (dreamsim, co-tracker) are pointed at VBENCH_CACHE_DIR, so nothing is downloaded.

VBench writes OUTPUT/NAME_eval_results.json, which the harness reads. `local=True`: weights come from
VBENCH_CACHE_DIR, which the harness checked.
"""

import json
import os
import shutil
import sys
from importlib.resources import files


def _i2v(request: dict, device) -> None:
    from vbench2_beta_i2v import VBenchI2V

    output = request["output"]
    crop = os.path.join(output, "vbench2_beta_i2v", "data", "crop", "1-1")
    os.makedirs(crop, exist_ok=True)
    info = []
    for index, (prompt, image) in enumerate(sorted(request["images"].items())):
        name = f"image-{index}{os.path.splitext(image)[1]}"
        shutil.copy(image, os.path.join(crop, name))
        dimensions = request["image_dimensions"].get(prompt, request["dimensions"])
        info.append({"prompt_en": prompt, "dimension": dimensions, "image_name": name})
    full_info = os.path.join(output, "i2v_full_info.json")
    with open(full_info, "w") as handle:
        json.dump(info, handle)
    cache = os.environ["VBENCH_CACHE_DIR"]
    if not os.path.exists(os.path.join(output, "models")):  # dreamsim (i2v_background) reads ./models
        os.symlink(os.path.join(cache, "dreamsim_models"), os.path.join(output, "models"))
    import torch

    torch.hub.set_dir(os.path.join(cache, "torch_hub"))  # co-tracker (camera_motion), checked by the harness
    os.chdir(output)  # VBenchI2V reads images relative to the working directory
    bench = VBenchI2V(device, full_info, output)
    bench.evaluate(
        videos_path=request["videos"],
        name=request["name"],
        dimension_list=request["dimensions"],
        local=True,
        resolution="1-1",
    )


def main(request_path: str) -> None:
    import torch

    request = json.loads(open(request_path).read())
    device = torch.device(request["device"])
    if request["mode"] == "i2v":
        _i2v(request, device)
        return
    if request.get("long"):
        from vbench2_beta_long import VBenchLong as Bench
    else:
        from vbench import VBench as Bench
    bench = Bench(device, str(files("vbench") / "VBench_full_info.json"), request["output"])
    bench.evaluate(
        videos_path=request["videos"],
        name=request["name"],
        prompt_list=request.get("prompts") or [],
        dimension_list=request["dimensions"],
        local=True,
        mode=request["mode"],
    )


if __name__ == "__main__":
    main(sys.argv[1])
