#!/usr/bin/python3
"""Builds the tiny FLUX test pack, its golden fixtures and the variant graphs.  Deterministic.

    /usr/bin/python3 tools/testpack/build.py            (from the repo root)
    /usr/bin/python3 tools/testpack/build.py --preview /tmp/previews   (also writes PNGs there)

Writes (and first deletes) only:
    public/packs/flux-test-tiny/          the pack (4 graphs, 2 tokenizers, manifest.json)
    tests/fixtures/reference/             golden pipeline cases + encoder outputs
    tests/fixtures/models/                variant graphs + I/O sets for check_onnx.mjs
    tests/fixtures/tokenizer-cases.json   raw token ids of a few prompts (JS tokenizers)
    tests/fixtures/safety/                the tiny safety-checker classifier (safety_checker.py)
Then run `node tools/testpack/check_onnx.mjs` to compare every graph with PyTorch.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
import zlib
import struct

import numpy as np
import torch
import onnx
from onnx import TensorProto, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import models as M  # noqa: E402
import tokenizers_toy as T  # noqa: E402
import reference_pipeline as R  # noqa: E402
import safety_checker as S  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PACK_REL = "public/packs/flux-test-tiny"
PACK = os.path.join(ROOT, PACK_REL)
REF = os.path.join(ROOT, "tests/fixtures/reference")
MODELS_FIX = os.path.join(ROOT, "tests/fixtures/models")
TOKCASES = os.path.join(ROOT, "tests/fixtures/tokenizer-cases.json")
OPSET = 17

CLIP_LEN, T5_LEN = 77, 256
TRANSFORMER_TARGET_STD = 0.8
VAE_TARGET_STD = 0.45

LONG_PROMPT_WORDS = (
    "a sprawling fantasy city built on the back of a giant turtle swimming through a sea of clouds at golden hour "
    "with towers of white marble and copper domes, bridges of rope and wood connecting floating gardens full of "
    "orange trees and blue flowers, merchants selling spices and silk in crowded markets, children flying paper "
    "kites shaped like dragons, old wizards reading books on balconies, a tall lighthouse glowing with green fire, "
    "waterfalls pouring off the edges into the mist below, flocks of white birds circling the highest spire, "
    "airships with striped balloons docking at wooden piers, lanterns hanging along every street, musicians playing "
    "violins and drums in the main square, a grand cathedral with stained glass windows reflecting the warm light, "
    "snowy mountains far away on the horizon, a pale moon rising over the ocean, soft volumetric light, highly "
    "detailed, intricate architecture, oil painting by an old master, dramatic composition, rich colors, sharp focus, "
    "trending on artstation, masterpiece, award winning, 8k, cinematic still, wide angle, epic scale"
).split()
LONG_PROMPT = " ".join((LONG_PROMPT_WORDS * 3)[:300])

TOKENIZER_TEXTS = [
    "a photo of a cat sitting on a red sofa",
    "A Photo Of A CAT In NEW YORK, Highly Detailed",
    "hello, world! it's a dog's life; isn't it? (really) -- \"yes\"...",
    "a 1024x768 wallpaper, 4k, 35mm f/1.8, 2048 px",
    "  lots   of    extra   spaces\tand\nnew lines  ",
    "",
    LONG_PROMPT,
    "café ☕ naïve crème brûlée",
]


# ----------------------------------------------------------------------------------------------
# small utils
# ----------------------------------------------------------------------------------------------


def rel(p: str) -> str:
    return os.path.relpath(p, ROOT)


def _dumps(obj, indent: int, level: int = 0) -> str:
    """json.dumps(indent=...) but lists of scalars stay on one line (token-id rows)."""
    pad, pad1 = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(obj, dict) and obj:
        items = [f"{pad1}{json.dumps(k, ensure_ascii=False)}: {_dumps(v, indent, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and any(isinstance(v, (dict, list)) for v in obj):
        return "[\n" + ",\n".join(pad1 + _dumps(v, indent, level + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def write_json(path: str, obj, indent=2, compact_lists=False) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = _dumps(obj, indent) if compact_lists else json.dumps(obj, indent=indent, ensure_ascii=False)
    assert json.loads(text) == obj
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text + "\n")


def save_npy(path: str, arr) -> str:
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    arr = np.ascontiguousarray(arr)
    assert arr.dtype.byteorder in ("<", "=", "|"), arr.dtype
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, arr, allow_pickle=False)
    return path


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_png(path: str, img: np.ndarray) -> None:
    """uint8 [H, W, 3] -> PNG (no PIL dependency, previews only)."""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def frame_clip(ids, bos, eos, pad):
    row = [bos] + list(ids)[: CLIP_LEN - 2] + [eos]
    return row + [pad] * (CLIP_LEN - len(row))


def frame_t5(ids, eos, pad, length=T5_LEN):
    row = list(ids)[: length - 1] + [eos]
    return row + [pad] * (length - len(row))


# ----------------------------------------------------------------------------------------------
# ONNX export
# ----------------------------------------------------------------------------------------------


def export_onnx(model, args, path, input_names, output_names, dynamic_axes, external_data=None):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, buf, opset_version=OPSET, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    return save_proto(proto, path, external_data)


def save_proto(proto, path, external_data=None):
    onnx.checker.check_model(proto)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if external_data:
        data_path = os.path.join(os.path.dirname(path), external_data)
        if os.path.exists(data_path):
            os.remove(data_path)  # onnx appends to an existing data file
        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=external_data, size_threshold=0)
    else:
        onnx.save_model(proto, path)
    return path


def to_fp16_graph(proto: onnx.ModelProto) -> onnx.ModelProto:
    """fp32 -> fp16 graph (what model.half() + export gives; torch 1.13 can't run fp16 convs on CPU to trace).
    Float initializers/constants become float16 except Resize scales/roi (which must stay float32)."""
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    g = m.graph
    keep32 = set()
    for n in g.node:
        if n.op_type == "Resize":
            keep32.update(n.input[1:3])
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in keep32:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for n in g.node:
        if n.op_type == "Constant" and n.output[0] not in keep32:
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
        if n.op_type == "ConstantOfShape":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
    for vi in list(g.input) + list(g.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    del g.value_info[:]
    onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    return m


# ----------------------------------------------------------------------------------------------
# build steps
# ----------------------------------------------------------------------------------------------


def build_tokenizers():
    corpus = T.build_corpus()
    merges = T.train_clip_bpe(corpus, T.CLIP_NUM_MERGES)
    clip_vocab = T.clip_vocab(merges)
    t5_vocab = T.t5_full_vocab(T.build_t5_vocab(corpus))
    write_json(os.path.join(PACK, "tokenizer/tokenizer.json"), T.clip_tokenizer_json(clip_vocab, merges))
    write_json(os.path.join(PACK, "tokenizer/tokenizer_config.json"), T.clip_tokenizer_config())
    write_json(os.path.join(PACK, "tokenizer_2/tokenizer.json"), T.t5_tokenizer_json(t5_vocab))
    write_json(os.path.join(PACK, "tokenizer_2/tokenizer_config.json"), T.t5_tokenizer_config())
    print(f"tokenizers: corpus {len(corpus)} chars; CLIP {len(merges)} merges, vocab {len(clip_vocab)} "
          f"(bos {clip_vocab[T.CLIP_BOS]}, eos {clip_vocab[T.CLIP_EOS]}); T5 vocab {len(t5_vocab)}")
    return corpus, merges, clip_vocab, t5_vocab


def tokenize_cases(merges, clip_vocab, t5_vocab):
    res = subprocess.run(["node", os.path.join(HERE, "tokenize_cases.mjs")], cwd=ROOT, check=True,
                         input=json.dumps({"pack": PACK, "texts": TOKENIZER_TEXTS}).encode(), capture_output=True)
    js = json.loads(res.stdout)
    sp = js["specials"]
    assert sp["clip"] == {"bos": clip_vocab[T.CLIP_BOS], "eos": clip_vocab[T.CLIP_EOS], "pad": clip_vocab[T.CLIP_EOS],
                          "unk": clip_vocab[T.CLIP_EOS]}, sp
    assert sp["t5"] == {"eos": 1, "pad": 0, "unk": 2}, sp
    cases, problems = [], []
    for c in js["cases"]:
        entry = {"text": c["text"]}
        for name, py in (("clip", T.clip_encode(c["text"], clip_vocab, merges)), ("t5", T.t5_encode(c["text"], t5_vocab))):
            a = c[name]["tokenizers"]
            if a != py:
                problems.append(f"{name} {c['text'][:40]!r}: JS {a} != python reference {py}")
            entry[name] = {"ids": a, "tokens": c[name]["tokens"], "decoded": c[name]["decoded"]}
        entry["clip"]["framed"] = frame_clip(entry["clip"]["ids"], sp["clip"]["bos"], sp["clip"]["eos"], sp["clip"]["pad"])
        entry["t5"]["framed_256"] = frame_t5(entry["t5"]["ids"], 1, 0)
        # with_specials must equal the post-processor framing without truncation
        assert c["clip"]["with_specials"] == [sp["clip"]["bos"]] + entry["clip"]["ids"] + [sp["clip"]["eos"]]
        assert c["t5"]["with_specials"] == entry["t5"]["ids"] + [1]
        cases.append(entry)
    doc = {
        "description": "Raw token ids (encode(text, {add_special_tokens: false})) of the flux-test-tiny toy tokenizers, "
                       "identical in @huggingface/tokenizers and in the independent "
                       "Python reference encoder of tools/testpack/tokenizers_toy.py. `framed` / `framed_256` follow "
                       "docs/flux-pipeline.md §2 (CLIP: BOS + ids[:75] + EOS, padded with EOS to 77; "
                       "T5: ids[:255] + </s>, padded with <pad> to 256).",
        "tokenizers": {"clip": "public/packs/flux-test-tiny/tokenizer", "t5": "public/packs/flux-test-tiny/tokenizer_2"},
        "specials": sp,
        "disagreements": problems,
        "cases": cases,
    }
    write_json(TOKCASES, doc, compact_lists=True)
    print(f"tokenizer cases: {len(cases)} texts, {len(problems)} disagreement(s)")
    for p in problems:
        print("  DISAGREEMENT:", p)
    if problems:
        raise SystemExit("@huggingface/tokenizers and the Python reference encoder disagree")
    return doc


def make_models(clip_vocab_size: int, t5_vocab_size: int):
    tcfg = M.TransformerConfig()
    transformer = M.FluxTransformer2DModel(tcfg)

    def t_gain(name: str) -> float:
        # modulation Linears (fed by the conditioning vector only): smaller, so (1 + scale) stays ~1 and gates ~0.5
        if name.endswith(".linear") and ("norm" in name):
            return 0.5
        return 1.0

    M.init_params(transformer, torch.Generator().manual_seed(1001), linear_gain=t_gain)
    clip = M.ClipTextModel(M.ClipConfig(vocab_size=clip_vocab_size))
    M.init_params(clip, torch.Generator().manual_seed(1002), embedding_std=0.5)
    t5 = M.T5EncoderModel(M.T5Config(vocab_size=t5_vocab_size))
    # T5 has no 1/sqrt(d_kv) in attention; like HF's init, q gets std (d_model * d_kv)^-0.5 instead
    M.init_params(t5, torch.Generator().manual_seed(1003), embedding_std=lambda n: 0.5 if "relative" in n else 1.0,
                  linear_gain=lambda n: t5.cfg.d_kv ** -0.5 if n.endswith("SelfAttention.q") else 1.0)
    vae = M.VaeDecoder(M.VaeConfig())
    M.init_params(vae, torch.Generator().manual_seed(1004))
    for m in (transformer, clip, t5, vae):
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
    return transformer, clip, t5, vae


@torch.no_grad()
def calibrate(transformer, vae, clip, t5, tok):
    """Rescale the last layers so outputs have the intended spread (deterministic, data from fixed seeds)."""
    c0 = tok["cases"][0]
    clip_ids = torch.tensor([c0["clip"]["framed"]], dtype=torch.int64)
    t5_ids = torch.tensor([c0["t5"]["framed_256"]], dtype=torch.int32)
    emb, pooled = R.encode_prompt(clip, t5, clip_ids, t5_ids)
    g = torch.Generator().manual_seed(7)
    lat = torch.randn(1, 16, 8, 8, generator=g)
    img_ids = R._prepare_latent_image_ids(1, 4, 4, "cpu", torch.float32)
    x = R._pack_latents(lat, 1, 16, 8, 8)
    outs = [transformer(x, emb, pooled, torch.tensor([s]), img_ids, torch.zeros(T5_LEN, 3)) for s in (1.0, 0.75, 0.5, 0.25)]
    std0 = float(torch.stack(outs).std())
    k = TRANSFORMER_TARGET_STD / std0
    transformer.proj_out.weight.mul_(k)
    transformer.proj_out.bias.mul_(k)
    # VAE: decode the 4-step result of that prompt
    out = R.flux_pipeline(transformer, vae, lat, emb, pooled, 4, 64, 64)
    z = torch.from_numpy(out.final_latents) / R.SCALING_FACTOR + R.SHIFT_FACTOR
    y = vae(z)
    std_v = float(y.std())
    kv = VAE_TARGET_STD / std_v
    vae.conv_out.weight.mul_(kv)
    vae.conv_out.bias.mul_(kv)
    y = vae(z)
    mean = y.mean(dim=(0, 2, 3))
    vae.conv_out.bias.sub_(mean).add_(torch.tensor([0.06, -0.02, -0.05]))  # centred, slight warm tint
    print(f"calibration: transformer proj_out x{k:.4f} (raw std {std0:.3f}); vae conv_out x{kv:.4f} (raw std {std_v:.3f})")


def export_pack(transformer, clip, t5, vae):
    B, S, L = 1, 16, 8
    targs = (torch.randn(B, S, 64), torch.randn(B, L, 64), torch.randn(B, 32), torch.tensor([0.5]),
             R._prepare_latent_image_ids(B, 4, 4, "cpu", torch.float32), torch.zeros(L, 3))
    tin = ["hidden_states", "encoder_hidden_states", "pooled_projections", "timestep", "img_ids", "txt_ids"]
    tdyn = {"hidden_states": {0: "B", 1: "S"}, "encoder_hidden_states": {0: "B", 1: "L"}, "pooled_projections": {0: "B"},
            "timestep": {0: "B"}, "img_ids": {0: "S"}, "txt_ids": {0: "L"}}
    export_onnx(transformer, targs, os.path.join(PACK, "transformer/model.onnx"), tin, ["latent"],
                {**tdyn, "latent": {0: "B", 1: "S"}}, external_data="model.onnx.data")
    export_onnx(transformer, targs, os.path.join(MODELS_FIX, "transformer-optimum.onnx"), tin, ["out_hidden_states"],
                {**tdyn, "out_hidden_states": {0: "B", 1: "S"}})
    t3 = M.Transformer3DIds(transformer)
    targs3 = targs[:4] + (targs[4][None].expand(B, -1, -1).contiguous(), targs[5][None].expand(B, -1, -1).contiguous())
    tdyn3 = {**tdyn, "img_ids": {0: "B", 1: "S"}, "txt_ids": {0: "B", 1: "L"}, "latent": {0: "B", 1: "S"}}
    export_onnx(t3, targs3, os.path.join(MODELS_FIX, "transformer-3d-ids.onnx"), tin, ["latent"], tdyn3)

    ids = torch.full((1, CLIP_LEN), 5, dtype=torch.int64)
    ids[0, 0] = clip.cfg.vocab_size - 2
    ids[0, 3:] = clip.cfg.vocab_size - 1
    export_onnx(clip, (ids,), os.path.join(PACK, "clip/model.onnx"), ["input_ids"], ["last_hidden_state", "pooler_output"],
                {"input_ids": {0: "B"}, "last_hidden_state": {0: "B"}, "pooler_output": {0: "B"}})
    clip_h = M.ClipTextModel(clip.cfg, outputs="hidden")
    clip_h.load_state_dict(clip.state_dict())
    clip_h.eval()
    export_onnx(clip_h, (ids,), os.path.join(MODELS_FIX, "clip-hidden-only.onnx"), ["input_ids"], ["last_hidden_state"],
                {"input_ids": {0: "B"}, "last_hidden_state": {0: "B"}})

    t5ids = torch.tensor([[5, 6, 7, 8, 1, 0, 0, 0]], dtype=torch.int32)
    export_onnx(t5, (t5ids,), os.path.join(PACK, "t5/model.onnx"), ["input_ids"], ["last_hidden_state"],
                {"input_ids": {0: "B", 1: "L"}, "last_hidden_state": {0: "B", 1: "L"}})

    z = torch.randn(1, 16, 4, 4)
    export_onnx(vae, (z,), os.path.join(PACK, "vae_decoder/model.onnx"), ["latent"], ["images"],
                {"latent": {0: "B", 2: "h", 3: "w"}, "images": {0: "B", 2: "H", 3: "W"}})
    export_onnx(vae, (z,), os.path.join(MODELS_FIX, "vae-optimum.onnx"), ["latent_sample"], ["sample"],
                {"latent_sample": {0: "B", 2: "h", 3: "w"}, "sample": {0: "B", 2: "H", 3: "W"}})
    fp32 = onnx.load(os.path.join(PACK, "vae_decoder/model.onnx"))
    save_proto(to_fp16_graph(fp32), os.path.join(MODELS_FIX, "vae-fp16.onnx"))


@torch.no_grad()
def io_fixtures(transformer, clip, t5, vae, tok):
    """Inputs + PyTorch outputs for check_onnx.mjs (and for the project's graph-binding tests)."""
    checks = []
    io_dir = os.path.join(MODELS_FIX, "io")
    g = torch.Generator().manual_seed(2001)

    def add(graph, name, inputs: dict, outputs: dict, tol=2e-5):
        d = os.path.join(io_dir, name)
        entry = {"name": name, "graph": graph, "tolerance": tol, "inputs": {}, "outputs": {}}
        for k, v in inputs.items():
            entry["inputs"][k] = rel(save_npy(os.path.join(d, f"in_{k}.npy"), v))
        for k, v in outputs.items():
            entry["outputs"][k] = rel(save_npy(os.path.join(d, f"out_{k}.npy"), v))
        checks.append(entry)

    # transformer: B2, S=12 (h=6, w=8 latent), L=20, non-trivial ids on all three rope axes
    B, S, L = 2, 12, 20
    x = torch.randn(B, S, 64, generator=g)
    e = torch.randn(B, L, 64, generator=g)
    p = torch.randn(B, 32, generator=g)
    ts = torch.tensor([1.0, 0.75])
    img_ids = R._prepare_latent_image_ids(1, 3, 4, "cpu", torch.float32)
    img_ids[:, 0] = 1.0
    txt_ids = torch.randint(0, 4, (L, 3), generator=g).float()
    y = transformer(x, e, p, ts, img_ids, txt_ids)
    tin = {"hidden_states": x, "encoder_hidden_states": e, "pooled_projections": p, "timestep": ts,
           "img_ids": img_ids, "txt_ids": txt_ids}
    add(f"{PACK_REL}/transformer/model.onnx", "transformer", tin, {"latent": y})
    add("tests/fixtures/models/transformer-optimum.onnx", "transformer-optimum", tin, {"out_hidden_states": y})
    tin3 = dict(tin, img_ids=img_ids[None].expand(B, -1, -1).contiguous(), txt_ids=txt_ids[None].expand(B, -1, -1).contiguous())
    add("tests/fixtures/models/transformer-3d-ids.onnx", "transformer-3d-ids", tin3, {"latent": y})
    # a second transformer set in the real t2i layout (txt_ids zeros, L=256, S=16, B=1, sigma 0.25)
    x1 = torch.randn(1, 16, 64, generator=g)
    e1 = torch.randn(1, T5_LEN, 64, generator=g)
    p1 = torch.randn(1, 32, generator=g)
    ids1 = R._prepare_latent_image_ids(1, 4, 4, "cpu", torch.float32)
    y1 = transformer(x1, e1, p1, torch.tensor([0.25]), ids1, torch.zeros(T5_LEN, 3))
    add(f"{PACK_REL}/transformer/model.onnx", "transformer-t2i", {"hidden_states": x1, "encoder_hidden_states": e1,
        "pooled_projections": p1, "timestep": torch.tensor([0.25]), "img_ids": ids1, "txt_ids": torch.zeros(T5_LEN, 3)}, {"latent": y1})

    # encoders: the three framed prompts of tests/fixtures/reference/encoders
    enc = os.path.join(REF, "encoders")
    clip_ids = torch.from_numpy(np.load(os.path.join(enc, "clip_input_ids.npy")))
    t5_ids = torch.from_numpy(np.load(os.path.join(enc, "t5_input_ids.npy")))
    hs, pooled = clip(clip_ids)
    add(f"{PACK_REL}/clip/model.onnx", "clip", {"input_ids": clip_ids}, {"last_hidden_state": hs, "pooler_output": pooled})
    add("tests/fixtures/models/clip-hidden-only.onnx", "clip-hidden-only", {"input_ids": clip_ids}, {"last_hidden_state": hs})
    add(f"{PACK_REL}/t5/model.onnx", "t5", {"input_ids": t5_ids}, {"last_hidden_state": t5(t5_ids)})
    short = torch.randint(0, t5.cfg.vocab_size, (2, 77), generator=g).to(torch.int32)
    add(f"{PACK_REL}/t5/model.onnx", "t5-L77", {"input_ids": short}, {"last_hidden_state": t5(short)})

    # vae: B2, 6x4 latent -> 48x32 image
    z = torch.randn(2, 16, 6, 4, generator=g) * 3.0 + 0.1159
    img = vae(z)
    add(f"{PACK_REL}/vae_decoder/model.onnx", "vae", {"latent": z}, {"images": img})
    add("tests/fixtures/models/vae-optimum.onnx", "vae-optimum", {"latent_sample": z}, {"sample": img})
    # fp16: reference = the fp32 module with fp16-rounded weights on the fp16-rounded input
    vae16 = M.VaeDecoder(vae.cfg)
    vae16.load_state_dict({k: v.half().float() for k, v in vae.state_dict().items()})
    vae16.eval()
    z16 = z.half()
    add("tests/fixtures/models/vae-fp16.onnx", "vae-fp16", {"latent": z16.numpy()},
        {"images": vae16(z16.float()).half().numpy()}, tol=3e-2)
    write_json(os.path.join(MODELS_FIX, "checks.json"), {
        "description": "I/O sets for tools/testpack/check_onnx.mjs: each graph run on the saved inputs must reproduce the "
                       "PyTorch outputs within `tolerance` (max abs diff).",
        "checks": checks})
    return checks


@torch.no_grad()
def encoder_fixtures(clip, t5, tok):
    sp = tok["specials"]
    rows = [tok["cases"][0], tok["cases"][6], tok["cases"][5]]  # plain, 300-word overflow, empty
    clip_ids = np.array([r["clip"]["framed"] for r in rows], dtype=np.int64)
    t5_ids = np.array([r["t5"]["framed_256"] for r in rows], dtype=np.int32)
    hs, pooled = clip(torch.from_numpy(clip_ids))
    t5_out = t5(torch.from_numpy(t5_ids))
    d = os.path.join(REF, "encoders")
    save_npy(os.path.join(d, "clip_input_ids.npy"), clip_ids)
    save_npy(os.path.join(d, "clip_pooler_output.npy"), pooled)
    save_npy(os.path.join(d, "clip_last_hidden_state.npy"), hs)
    save_npy(os.path.join(d, "t5_input_ids.npy"), t5_ids)
    save_npy(os.path.join(d, "t5_last_hidden_state.npy"), t5_out)
    eos_pos = [int(np.argmax(r)) for r in clip_ids]
    write_json(os.path.join(d, "case.json"), {
        "texts": [r["text"] for r in rows],
        "clip": {"input_ids": "clip_input_ids.npy (int64 [3,77])", "pooler_output": "clip_pooler_output.npy (float32 [3,32])",
                 "last_hidden_state": "clip_last_hidden_state.npy (float32 [3,77,32])", "eos_positions": eos_pos,
                 "specials": sp["clip"]},
        "t5": {"input_ids": "t5_input_ids.npy (int32 [3,256])", "last_hidden_state": "t5_last_hidden_state.npy (float32 [3,256,64])",
               "specials": sp["t5"]},
        "notes": "Framing per docs/flux-pipeline.md §2 from the raw ids in tests/fixtures/tokenizer-cases.json; "
                 "outputs from the PyTorch modules (tools/testpack/models.py), no attention masks.",
    })
    print(f"encoders: pooled std {float(pooled.std()):.3f}, t5 std {float(t5_out.std()):.3f}, eos positions {eos_pos}")


REF_CASES = [
    # name, steps, width, height, batch, L, prompt indices (None = random embeddings), seed
    ("steps1_64x64_b1", 1, 64, 64, 1, 256, [0], 3001),
    ("steps2_80x48_b1", 2, 80, 48, 1, 256, [1], 3002),
    ("steps3_32x48_b2", 3, 32, 48, 2, 256, [2, 3], 3003),
    ("steps4_64x64_b1", 4, 64, 64, 1, 256, [0], 3004),
    ("steps4_48x32_b1_L77", 4, 48, 32, 1, 77, None, 3005),
]


@torch.no_grad()
def reference_cases(transformer, clip, t5, vae, tok, preview_dir=None):
    stats = []
    for name, steps, W, H, B, L, prompts, seed in REF_CASES:
        g = torch.Generator().manual_seed(seed)
        h, w = 2 * (H // 16), 2 * (W // 16)
        latents = torch.randn(B, 16, h, w, generator=g)
        d = os.path.join(REF, name)
        info = {"steps": steps, "width": W, "height": H, "batch": B, "L": L}
        if prompts is not None:
            rows = [tok["cases"][i] for i in prompts]
            clip_ids = torch.tensor([r["clip"]["framed"] for r in rows], dtype=torch.int64)
            t5_ids = torch.tensor([frame_t5(r["t5"]["ids"], 1, 0, L) for r in rows], dtype=torch.int32)
            emb, pooled = R.encode_prompt(clip, t5, clip_ids, t5_ids)
            save_npy(os.path.join(d, "clip_input_ids.npy"), clip_ids)
            save_npy(os.path.join(d, "t5_input_ids.npy"), t5_ids)
            info["prompts"] = [r["text"] for r in rows]
            notes = ("prompt_embeds / pooled_prompt_embeds are the PyTorch T5 / CLIP outputs for the framed ids "
                     "clip_input_ids.npy / t5_input_ids.npy of `prompts` (so text -> image can be tested end to end).")
        else:
            emb = torch.randn(B, L, 64, generator=g)
            pooled = torch.randn(B, 32, generator=g)
            notes = "prompt_embeds / pooled_prompt_embeds are random N(0,1); L=77 tests a text length taken from the inputs."
        out = R.flux_pipeline(transformer, vae, latents, emb, pooled, steps, H, W)
        save_npy(os.path.join(d, "latents.npy"), latents)
        save_npy(os.path.join(d, "prompt_embeds.npy"), emb)
        save_npy(os.path.join(d, "pooled_prompt_embeds.npy"), pooled)
        save_npy(os.path.join(d, "final_latents.npy"), out.final_latents)
        save_npy(os.path.join(d, "image.npy"), out.image)
        info.update({
            "sigmas": out.sigmas,
            "timesteps_fed": out.timesteps_fed,
            "files": {"latents": "latents.npy", "prompt_embeds": "prompt_embeds.npy",
                      "pooled_prompt_embeds": "pooled_prompt_embeds.npy", "final_latents": "final_latents.npy",
                      "image": "image.npy"},
            "notes": "diffusers FluxPipeline semantics (tools/testpack/reference_pipeline.py) on the PyTorch modules, fp32. "
                     "latents.npy is the unpacked initial noise [B,16,h,w] (torch.randn, seed in `seed`); final_latents.npy "
                     "is the denoised, unpacked latent before `/ 0.3611 + 0.1159`; image.npy is uint8 [B,H,W,3] "
                     "(round(clamp(x/2+0.5,0,1)*255)). " + notes,
            "seed": seed,
        })
        write_json(os.path.join(d, "case.json"), info, compact_lists=True)
        img_f = out.image_float
        s = {"case": name, "image_std": float(img_f.std()), "image_min": float(img_f.min()), "image_max": float(img_f.max()),
             "clipped_frac": float(np.mean(np.abs(img_f) > 1.0)), "u8_min": int(out.image.min()), "u8_max": int(out.image.max()),
             "u8_mean": float(out.image.mean()), "final_latent_std": float(out.final_latents.std())}
        stats.append(s)
        if preview_dir:
            for b in range(B):
                write_png(os.path.join(preview_dir, f"{name}_{b}.png"), out.image[b])
    return stats


@torch.no_grad()
def transformer_stats(transformer, tok, clip, t5):
    c0 = tok["cases"][0]
    emb, pooled = R.encode_prompt(clip, t5, torch.tensor([c0["clip"]["framed"]]), torch.tensor([c0["t5"]["framed_256"]], dtype=torch.int32))
    g = torch.Generator().manual_seed(4001)
    lat = torch.randn(1, 16, 8, 8, generator=g)
    x = R._pack_latents(lat, 1, 16, 8, 8)
    ids = R._prepare_latent_image_ids(1, 4, 4, "cpu", torch.float32)
    res = {}
    for s in (1.0, 0.75, 0.5, 0.25):
        y = transformer(x, emb, pooled, torch.tensor([s]), ids, torch.zeros(T5_LEN, 3))
        res[s] = (float(y.std()), float(y.abs().max()))
    y_bad = transformer(x, emb, pooled, torch.tensor([750.0]), ids, torch.zeros(T5_LEN, 3))
    y_ok = transformer(x, emb, pooled, torch.tensor([0.75]), ids, torch.zeros(T5_LEN, 3))
    y_752 = transformer(x, emb, pooled, torch.tensor([0.752]), ids, torch.zeros(T5_LEN, 3))
    y_noids = transformer(x, emb, pooled, torch.tensor([0.75]), torch.zeros_like(ids), torch.zeros(T5_LEN, 3))
    return res, float((y_bad - y_ok).abs().max()), float((y_752 - y_ok).abs().max()), float((y_noids - y_ok).abs().max())


def write_manifest():
    files = []
    for dirpath, _, names in os.walk(PACK):
        for n in names:
            p = os.path.join(dirpath, n)
            rp = os.path.relpath(p, PACK).replace(os.sep, "/")
            if rp == "manifest.json":
                continue
            files.append({"path": rp, "size": os.path.getsize(p), "sha256": sha256_file(p)})
    files.sort(key=lambda f: f["path"])
    manifest = {
        "format": "flux-webgpu-pack",
        "formatVersion": 1,
        "id": "flux-test-tiny",
        "name": "FLUX test pack (tiny random weights — not FLUX.1)",
        "description": ("A tiny random-weight model with the real FLUX.1 [schnell] structure and I/O (CLIP-like and "
                        "T5-like text encoders, a 2+2-block FLUX transformer, an AutoencoderKL-style decoder) and toy "
                        "tokenizers. It runs the full pipeline in a second but only produces abstract patterns. "
                        "Built by tools/testpack/build.py for tests and the offline demo."),
        "model": "flux.1-schnell",
        "testPack": True,
        "license": "Apache-2.0",
        "files": files,
        "components": {
            "clip": {"graph": "clip/model.onnx", "dtype": "float32", "weights": "float32",
                     "outputs": {"pooled": "pooler_output"}},
            "t5": {"graph": "t5/model.onnx", "dtype": "float32", "weights": "float32"},
            "transformer": {"graph": "transformer/model.onnx", "dtype": "float32", "weights": "float32",
                            "externalData": [{"path": "model.onnx.data", "file": "transformer/model.onnx.data"}]},
            "vae_decoder": {"graph": "vae_decoder/model.onnx", "dtype": "float32", "weights": "float32"},
        },
        "tokenizers": {
            "clip": {"tokenizer": "tokenizer/tokenizer.json", "config": "tokenizer/tokenizer_config.json"},
            "t5": {"tokenizer": "tokenizer_2/tokenizer.json", "config": "tokenizer_2/tokenizer_config.json"},
        },
    }
    write_json(os.path.join(PACK, "manifest.json"), manifest)
    return manifest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preview", help="also write PNG previews of the reference images to this folder")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)
    for d in (PACK, REF, MODELS_FIX):
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)

    _, merges, clip_vocab, t5_vocab = build_tokenizers()
    tok = tokenize_cases(merges, clip_vocab, t5_vocab)
    transformer, clip, t5, vae = make_models(len(clip_vocab), len(t5_vocab))
    calibrate(transformer, vae, clip, t5, tok)
    n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in
                (("transformer", transformer), ("clip", clip), ("t5", t5), ("vae_decoder", vae))}
    print("params:", n_params)

    export_pack(transformer, clip, t5, vae)
    encoder_fixtures(clip, t5, tok)
    io_fixtures(transformer, clip, t5, vae, tok)
    stats = reference_cases(transformer, clip, t5, vae, tok, args.preview)
    tstats, d_bad, d_752, d_noids = transformer_stats(transformer, tok, clip, t5)
    manifest = write_manifest()

    print("transformer output (prompt 0, 8x8 latent):",
          ", ".join(f"sigma {s}: std {v[0]:.3f} max {v[1]:.2f}" for s, v in tstats.items()))
    print(f"  sensitivity: |v(750)-v(0.75)|max {d_bad:.3f}; |v(0.752)-v(0.75)|max {d_752:.4f}; zero img_ids {d_noids:.3f}")
    print("reference cases:")
    for s in stats:
        print(f"  {s['case']:22s} vae std {s['image_std']:.3f} range [{s['image_min']:.2f}, {s['image_max']:.2f}] "
              f"clipped {100 * s['clipped_frac']:.1f}%  uint8 [{s['u8_min']}, {s['u8_max']}] mean {s['u8_mean']:.1f}  "
              f"final latent std {s['final_latent_std']:.3f}")
    total = sum(f["size"] for f in manifest["files"])
    print(f"pack: {len(manifest['files'])} files, {total} bytes")
    S.main()  # tests/fixtures/safety/: the tiny safety-checker classifier and PIL resize references


if __name__ == "__main__":
    main()
