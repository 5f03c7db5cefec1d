"""Images from an exported generator with numpy, onnxruntime and Pillow only (no torch, no ganforge).
Usage: python onnx_generate.py G.onnx OUT.png [N]; G.onnx and its sidecar G.onnx.json from `ganforge export`."""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

path, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8
spec, rng = json.loads(Path(path + ".json").read_text()), np.random.default_rng(0)
feeds = {}
for i in spec["inputs"]:  # latents and noise from N(0, 1), classes uniform, psi 0.7
    shape = [n if s == "batch" else s for s in i["shape"]]
    feeds[i["name"]] = (rng.integers(0, i["classes"], shape) if i["kind"] == "class" else np.array(0.7)
                        if i["kind"] == "truncation" else rng.standard_normal(shape)).astype(i["dtype"])
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
image = session.run(["image"], {x.name: feeds[x.name] for x in session.get_inputs()})[0]  # (n, C, H, W)
pixels = ((image.clip(-1, 1) + 1) * 127.5).round().astype(np.uint8).transpose(0, 2, 3, 1)
row = np.concatenate(list(pixels), axis=1)  # the n images side by side
Image.fromarray(row[..., 0] if row.shape[-1] == 1 else row).save(out)
print(f"wrote {out}: {n} images from {spec['recipe']}")
