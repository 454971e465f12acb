#!/usr/bin/python3
"""Cross-checks the engine against PyTorch on the shipped weights: loads
weights/reage.blob into the mirror generator (tools/torch_peer.py), compares
its output with the native engine's (build/reage-parity) on the same face,
and exports the generator to ONNX for the browser benchmark.

usage: tools/torch_check.py BLOB NATIVE_OUTPUT.f32|- [OUT.onnx]   (- skips the comparison)"""
import math
import sys

import numpy as np
import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from blob import read_blob  # noqa: E402
from torch_peer import Generator  # noqa: E402


def load_generator(path):
    config, t = read_blob(path)
    ages = config["group_ages"].split(",")
    gen = Generator(int(config["res"]), len(ages), int(config["gen_width"]), int(config["gen_res_ch"]),
                    int(config["gen_nres"]), int(config["gen_code"]), int(config["gen_hidden"]))
    state = {"age_embedding": t["gen.age_embedding"], "code.weight": t["gen.age_code.w"],
             "mlp1.weight": t["gen.mod_mlp1.w"], "mlp1.bias": t["gen.mod_mlp1.b"],
             "mlp2.weight": t["gen.mod_mlp2.w"], "mlp2.bias": t["gen.mod_mlp2.b"],
             "out.weight": t["gen.out.w"], "out.bias": t["gen.out.b"]}
    for level in range(4):
        state[f"enc.{level}.weight"] = t[f"gen.enc{level}.w"]
    for i in range(gen.nres):
        for j in range(2):
            state[f"res_convs.{2 * i + j}.weight"] = t[f"gen.res{i}.conv{j + 1}.w"]
    for j, k in enumerate((2, 1, 0)):
        state[f"dec.{j}.weight"] = t[f"gen.dec{k}.w"]
    gen.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    return gen.eval(), len(ages)


def main():
    blob, native = sys.argv[1], sys.argv[2]
    gen, G = load_generator(blob)
    n = 3 * gen.res * gen.res
    i = np.arange(n, dtype=np.float32)
    # the same face as tests/parity_native.c, in float32 arithmetic
    face = (np.float32(0.8) * np.sin(np.float32(0.01) * i).astype(np.float32)
            * np.cos(np.float32(0.003) * i).astype(np.float32)).astype(np.float32)
    gw = np.zeros((1, G), np.float32)
    gw[0, G // 2 - 1], gw[0, G // 2] = 0.3, 0.7
    with torch.no_grad():
        ours = torch.clamp(gen(torch.from_numpy(face).view(1, 3, gen.res, gen.res), torch.from_numpy(gw)), -1, 1)
    diff = 0.0
    if native != "-":
        ref = np.fromfile(native, np.float32)
        x = face.ravel()
        diff = float(np.abs(ours.numpy().ravel() - ref).max())
        change = float(np.abs(ref - np.clip(x, -1, 1)).max())
        print(f"max |pytorch - engine| = {diff:.2e} (the generator's largest change to the face: {change:.3f})")
    if len(sys.argv) > 3:
        torch.onnx.export(gen, (torch.from_numpy(face).view(1, 3, gen.res, gen.res), torch.from_numpy(gw)), sys.argv[3],
                          input_names=["image", "groupw"], output_names=["aged"], opset_version=13)
        print(f"wrote {sys.argv[3]}")
    sys.exit(0 if diff < 1e-3 and math.isfinite(diff) else 1)


if __name__ == "__main__":
    main()
