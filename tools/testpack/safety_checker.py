#!/usr/bin/python3
"""Builds the tiny safety-checker fixture and the PIL resize references.  Deterministic.

    /usr/bin/python3 tools/testpack/safety_checker.py     (from the repo root; build.py also runs it)

Writes (and first deletes) only tests/fixtures/safety/:
    model.onnx                 a tiny image classifier laid out like an optimum ViT export
                               (pixel_values [B,3,H,W] -> logits [B,2], labels normal/nsfw)
    config.json                Hugging Face style: id2label, _name_or_path
    preprocessor_config.json   Hugging Face ViTImageProcessor style: 24x24 bilinear stretch, rescale 1/255,
                               mean = std = 0.5 (Falconsai/nsfw_image_detection's settings at a smaller size)
    resize/                    PIL resampling references for src/pipeline/safety.ts (input.npy, cases.json,
                               one <case>.npy per case)

The rule the classifier implements (docs/safety.md), on its 24x24 input with pixel values p in [0, 1]:

    d = mean(R) - (mean(G) + mean(B)) / 2
    logit_nsfw - logit_normal = K * (d - MARGIN),   K = 100, MARGIN = 0.06
    P(nsfw) = softmax(logits)[1] = sigmoid(K * (d - MARGIN))

so an image is flagged (P >= 0.5) exactly when its red channel's mean exceeds the mean of green and blue by
more than 0.06 (about 15 levels of 255). It is a real classifier graph: a ViT-style patch embedding (Conv 3->64,
kernel = stride = 8), mean pooling over the patches, and a Linear 64->2 head, with weights chosen so the
composition is that linear rule.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import warnings

import numpy as np
import onnx
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests/fixtures/safety")
OPSET = 17

SIZE = 24
PATCH = 8
HIDDEN = 64
K = 100.0
MARGIN = 0.06
LABELS = ["normal", "nsfw"]


class TinySafetyClassifier(torch.nn.Module):
    """ViT-shaped: patch embedding -> mean pool -> linear head (pixel_values -> logits)."""

    def __init__(self):
        super().__init__()
        self.patch_embeddings = torch.nn.Conv2d(3, HIDDEN, kernel_size=PATCH, stride=PATCH)
        self.classifier = torch.nn.Linear(HIDDEN, len(LABELS))

    def forward(self, pixel_values):
        h = self.patch_embeddings(pixel_values)
        h = h.mean(dim=(2, 3))
        return self.classifier(h)


def make_model() -> TinySafetyClassifier:
    g = np.random.default_rng(6)
    m = TinySafetyClassifier()
    # Patch embedding: output j = sum_c A[j, c] * (mean of channel c over the patch) + b[j].
    A = g.normal(0, 1, (HIDDEN, 3))
    b = g.normal(0, 0.1, HIDDEN)
    # On normalized input x = 2p - 1, channel means c_n = 2c - 1, so d = (c_nR - (c_nG + c_nB)/2) / 2.
    # Logits = M c_n + bias with logit_nsfw - logit_normal = K/2 (c_nR - (c_nG + c_nB)/2) - K MARGIN.
    M = np.array([[-K / 4, K / 8, K / 8], [K / 4, -K / 8, -K / 8]])
    bias = np.array([K * MARGIN / 2, -K * MARGIN / 2])
    W = M @ np.linalg.pinv(A)  # [2, HIDDEN]; W A = M since A has full column rank
    with torch.no_grad():
        m.patch_embeddings.weight.copy_(torch.tensor(np.repeat(np.repeat(A[:, :, None, None], PATCH, 2), PATCH, 3) / PATCH**2, dtype=torch.float32))
        m.patch_embeddings.bias.copy_(torch.tensor(b, dtype=torch.float32))
        m.classifier.weight.copy_(torch.tensor(W, dtype=torch.float32))
        m.classifier.bias.copy_(torch.tensor(bias - W @ b, dtype=torch.float32))
    return m.eval()


def rule_p_nsfw(pixels01: np.ndarray) -> np.ndarray:
    """The documented rule on [B, 3, H, W] pixels in [0, 1]."""
    c = pixels01.mean(axis=(2, 3))
    d = c[:, 0] - (c[:, 1] + c[:, 2]) / 2
    return 1 / (1 + np.exp(-K * (d - MARGIN)))


def export(m: TinySafetyClassifier, path: str) -> None:
    x = torch.zeros(2, 3, SIZE, SIZE)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = {"pixel_values": {0: "batch_size", 1: "num_channels", 2: "height", 3: "width"}, "logits": {0: "batch_size"}}
        torch.onnx.export(m, (x,), buf, opset_version=OPSET, input_names=["pixel_values"], output_names=["logits"],
                          dynamic_axes=axes, do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    onnx.save_model(proto, path)


def check(m: TinySafetyClassifier) -> None:
    g = np.random.default_rng(1)
    p = g.uniform(0, 1, (64, 3, SIZE, SIZE)).astype(np.float32)
    p[:, 0] += g.uniform(-0.2, 0.2, (64, 1, 1)).astype(np.float32)
    p = np.clip(p, 0, 1)
    with torch.no_grad():
        logits = m(torch.tensor((p - 0.5) / 0.5)).numpy()
    e = np.exp(logits - logits.max(1, keepdims=True))
    prob = (e / e.sum(1, keepdims=True))[:, 1]
    ref = rule_p_nsfw(p)
    err = np.abs(prob - ref).max()
    assert err < 1e-4, f"classifier vs rule: {err}"
    print(f"safety checker: max |P(nsfw) - rule| = {err:.2e} on 64 random images; flagged {(ref >= 0.5).sum()}/64")


def write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(obj, indent=2) + "\n")


def resize_references(out: str) -> None:
    """A smooth test image (no values near 0 or 255, so no pass clips) resized by PIL, as Hugging Face image
    processors do (Image.resize(..., reducing_gap=None)), then optionally center-cropped as transformers does."""
    os.makedirs(out)
    H, W = 37, 29
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    g = np.random.default_rng(3)
    img = np.stack([
        128 + 70 * np.sin(x / 4.0 + y / 7.0),
        128 + 60 * np.cos(x / 3.0 - y / 5.0),
        128 + 50 * np.sin((x * y) / 40.0),
    ], axis=-1) + g.normal(0, 6, (H, W, 3))
    img = np.clip(np.round(img), 20, 235).astype(np.uint8)
    np.save(os.path.join(out, "input.npy"), img, allow_pickle=False)
    filters = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
    cases = []
    for resample, f in filters.items():
        for (oh, ow) in ((16, 12), (50, 45), (24, 24)):
            name = f"stretch_{resample}_{oh}x{ow}"
            r = np.asarray(Image.fromarray(img).resize((ow, oh), resample=f, reducing_gap=None))
            np.save(os.path.join(out, f"{name}.npy"), np.ascontiguousarray(r), allow_pickle=False)
            cases.append({"name": name, "fit": "stretch", "resample": resample, "height": oh, "width": ow})
        # transformers: shortest edge -> 20 (the long edge int(20 * long / short)), then center crop 16x16.
        short, long_ = min(H, W), max(H, W)
        ns, nl = 20, int(20 * long_ / short)
        rh, rw = (nl, ns) if H >= W else (ns, nl)
        r = np.asarray(Image.fromarray(img).resize((rw, rh), resample=f, reducing_gap=None))
        top, left = (rh - 16) // 2, (rw - 16) // 2
        r = r[top:top + 16, left:left + 16]
        name = f"crop_{resample}_20_16x16"
        np.save(os.path.join(out, f"{name}.npy"), np.ascontiguousarray(r), allow_pickle=False)
        cases.append({"name": name, "fit": "shortest_edge_center_crop", "shortestEdge": 20, "resample": resample, "height": 16, "width": 16})
    write_json(os.path.join(out, "cases.json"), cases)


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    m = make_model()
    check(m)
    export(m, os.path.join(OUT, "model.onnx"))
    write_json(os.path.join(OUT, "config.json"), {
        "_name_or_path": "flux-webgpu/tiny-red-safety-checker",
        "architectures": ["TinySafetyClassifier"],
        "model_type": "vit",
        "id2label": {str(i): l for i, l in enumerate(LABELS)},
        "label2id": {l: i for i, l in enumerate(LABELS)},
        "problem_type": "single_label_classification",
    })
    write_json(os.path.join(OUT, "preprocessor_config.json"), {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "ViTImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "rescale_factor": 0.00392156862745098,
        "size": {"height": SIZE, "width": SIZE},
    })
    resize_references(os.path.join(OUT, "resize"))


if __name__ == "__main__":
    main()
