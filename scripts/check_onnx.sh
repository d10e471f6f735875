#!/usr/bin/env bash
# An ONNX model exported by annkit runs where annkit and torch are not: this builds a fresh virtual environment that
# holds only onnxruntime and numpy (and what they need), loads the model there and predicts with it.
#
#   scripts/check_onnx.sh                 # trains a small playground model with feature crosses, exports it, checks it
#   scripts/check_onnx.sh model.onnx      # checks a model you exported (annkit export checkpoint=<run dir>)
#
# The first form needs annkit on the PATH (the project's .venv). Prints the model's metadata, its inputs and
# outputs, and its answers for a few inputs; fails when torch or annkit can be imported in that environment.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
model=${1:-}
if [ -z "$model" ]; then
  annkit train dataset=playground dataset.kind=xor 'dataset.features=[x1,x2,x1_sq,x1_x2,sin_x1]' \
    model.hidden=[8] trainer.epochs=20 logger.images_every=0 "hydra.run.dir=$work/run" > "$work/train.log"
  annkit export "checkpoint=$work/run" "hydra.run.dir=$work/export" > "$work/export.log"
  model=$work/export/model.onnx
  echo "exported $model from a playground run (features x1, x2, x1_sq, x1_x2, sin_x1)"
fi
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q onnxruntime numpy
"$work/venv/bin/python" - "$model" <<'PY'
import importlib.util
import json
import sys

import numpy as np
import onnxruntime as ort

for name in ("torch", "annkit"):
    assert importlib.util.find_spec(name) is None, f"{name} is importable: this is not a clean environment"
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
print("onnxruntime", ort.__version__, "· numpy", np.__version__, "· no torch, no annkit")
for key in sorted(meta):
    print(f"  {key} = {meta[key]}")
(inp,) = session.get_inputs()
print("input ", inp.name, inp.shape, inp.type)
for out in session.get_outputs():
    print("output", out.name, out.shape, out.type)
classes = json.loads(meta["annkit.classes"])
shape = [4 if isinstance(d, str) else d for d in inp.shape]
rng = np.random.default_rng(0)
if inp.type == "tensor(uint8)":
    x = rng.integers(0, 256, size=shape, dtype=np.uint8)
else:
    x = rng.uniform(-6, 6, size=shape).astype(np.float32)
answers = session.run(None, {inp.name: x})
for i in range(len(x)):
    row = x[i] if x.ndim == 2 else f"image {i}"
    if meta["annkit.task"] == "classification":
        p, k = answers[0][i], answers[1][i]
        print(f"  {row} → {classes[k]} (p = {[round(float(v), 4) for v in p]})")
    else:
        print(f"  {row} → {[round(float(v), 4) for v in answers[0][i]]}")
PY
