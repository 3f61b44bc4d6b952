"""Runs inside the VBench environment (numpy<2, transformers 4.33): never imports pare_bench.

    python vbench_worker.py REQUEST.json

REQUEST: {"videos": DIR, "name": NAME, "output": DIR, "dimensions": [...], "mode": "custom_input",
"prompts": {"file.mp4": "prompt", ...}, "device": "cpu"}. VBench writes OUTPUT/NAME_eval_results.json,
which the harness reads. `local=True`: weights come from VBENCH_CACHE_DIR, which the harness checked.
"""

import json
import sys
from importlib.resources import files


def main(request_path: str) -> None:
    import torch
    from vbench import VBench

    request = json.loads(open(request_path).read())
    bench = VBench(torch.device(request["device"]), str(files("vbench") / "VBench_full_info.json"), request["output"])
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
