#!/usr/bin/env python3
"""Writes the safetensors test fixtures with Hugging Face's own `safetensors` package.

How to run (from the repository root; needs network access to PyPI once):

    python3 -m venv tools/.venv
    tools/.venv/bin/pip install -r tools/requirements.txt
    tools/.venv/bin/python tools/gen_safetensors_fixtures.py

Outputs (all committed; a few KB in total):

    tests/data/safetensors/hf_fixture.safetensors   one file: BOOL U8 I32 I64 F16 BF16 F32 F64,
                                                    a 0-rank scalar, an empty [0, 4] tensor,
                                                    __metadata__ {"format": "pt"}
    tests/data/safetensors/hf_sharded/              model-0000K-of-00003.safetensors +
                                                    model.safetensors.index.json, laid out the
                                                    way transformers' save_pretrained does it
    tests/data/safetensors/expected.json            what the C++ tests compare against: per
                                                    tensor dtype, shape, data_offsets, the raw
                                                    bytes as hex and (where numeric) f32 values
    tests/fuzz/corpus/safetensors_header_fuzz/      seed inputs for the header fuzzer

Deterministic: the data come from SHA-256 in counter mode (no RNG whose stream could change
between numpy versions), and each file's __metadata__ has a single key, because the Rust
writer serialises that map from a HashMap in random order. Rerunning the script reproduces
the committed bytes exactly (checked by `git diff --exit-code tests/data/safetensors`).

BF16: numpy has no bfloat16, so BF16 tensors are built as raw uint16 (f32 rounded to nearest
even) and handed to the Rust writer as dtype "bfloat16" through safetensors.serialize_file.
"""

import hashlib
import json
import os
import shutil
import struct
import sys

import numpy as np
import safetensors
from safetensors import TensorSpec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(ROOT, "tests", "data", "safetensors")
CORPUS_DIR = os.path.join(ROOT, "tests", "fuzz", "corpus", "safetensors_header_fuzz")

# numpy dtype name -> safetensors dtype string (the mapping the Python binding applies).
ST_NAMES = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "uint16": "U16",
    "float16": "F16", "bfloat16": "BF16", "int32": "I32", "uint32": "U32", "float32": "F32",
    "float64": "F64", "int64": "I64", "uint64": "U64",
}


def det_bytes(label: str, n: int) -> bytes:
    """n pseudo-random bytes that depend only on `label`."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def det_f32(label: str, shape) -> np.ndarray:
    """Values in [-2, 2) with at most 24 significant bits, so exact in f32."""
    count = int(np.prod(shape, dtype=np.int64))
    words = np.frombuffer(det_bytes(label, 4 * count), dtype="<u4")
    vals = (words >> np.uint32(8)).astype(np.float64) / float(1 << 24) * 4.0 - 2.0
    return vals.astype(np.float32).reshape(shape)


def det_int(label: str, shape, dtype, lo: int, hi: int) -> np.ndarray:
    count = int(np.prod(shape, dtype=np.int64))
    words = np.frombuffer(det_bytes(label, 4 * count), dtype="<u4").astype(np.int64)
    return (lo + words % (hi - lo)).astype(dtype).reshape(shape)


def f32_to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even f32 -> bf16, as raw uint16 (no NaNs in our data)."""
    u = a.astype("<f4").view("<u4").astype(np.uint64)
    rounded = (u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    return rounded.astype("<u2")


class Tensor:
    """One tensor: its safetensors dtype, shape, little-endian bytes and f32 view."""

    def __init__(self, dtype: str, array: np.ndarray, f32=None):
        self.dtype = dtype  # numpy-style name the binding understands ("bfloat16" included)
        self.array = np.ascontiguousarray(array)
        self.shape = list(array.shape)
        self.f32 = f32  # list of floats, or None when not numeric


def numeric(label, shape, kind):
    if kind == "float32":
        a = det_f32(label, shape)
        return Tensor("float32", a, [float(x) for x in a.ravel()])
    if kind == "float64":
        a = det_f32(label, shape).astype(np.float64)
        return Tensor("float64", a, [float(x) for x in a.ravel()])
    if kind == "float16":
        a = det_f32(label, shape).astype(np.float16)
        return Tensor("float16", a, [float(x) for x in a.astype(np.float32).ravel()])
    if kind == "bfloat16":
        bits = f32_to_bf16_bits(det_f32(label, shape))
        vals = (bits.astype("<u4") << np.uint32(16)).view("<f4")
        return Tensor("bfloat16", bits, [float(x) for x in vals.ravel()])
    if kind == "bool":
        a = det_int(label, shape, np.int64, 0, 2).astype(np.bool_)
        return Tensor("bool", a, [float(x) for x in a.ravel()])
    ranges = {"uint8": (0, 256), "int32": (-100000, 100000), "int64": (-1000000, 1000000)}
    lo, hi = ranges[kind]
    a = det_int(label, shape, kind, lo, hi)
    return Tensor(kind, a, [float(x) for x in a.ravel()])


def serialize_file(tensors: dict, path: str, metadata: dict) -> None:
    """Writes with the Rust writer in the `safetensors` package (safetensors.serialize_file)."""
    specs = {
        name: TensorSpec(dtype=t.dtype, shape=t.shape, data_ptr=t.array.ctypes.data,
                         data_len=t.array.nbytes)
        for name, t in tensors.items()
    }
    safetensors.serialize_file(specs, path, metadata=metadata)


def describe(path: str, tensors: dict) -> dict:
    """Expected values, read back with the package's own deserializer."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    out = {"header_size": n, "metadata": header.get("__metadata__", {}), "tensors": {}}
    for name, view in safetensors.deserialize(blob):
        t = tensors[name]
        entry = header[name]
        assert bytes(view["data"]) == t.array.tobytes(), name
        assert entry["dtype"] == ST_NAMES[t.dtype] and entry["shape"] == t.shape, name
        out["tensors"][name] = {
            "dtype": entry["dtype"],
            "shape": entry["shape"],
            "data_offsets": entry["data_offsets"],
            "hex": t.array.tobytes().hex(),
            "f32": t.f32,
        }
    return out


def hf_fixture() -> dict:
    return {
        "embed.weight": numeric("embed", (4, 3), "bfloat16"),
        "norm.weight": numeric("norm", (5,), "float16"),
        "proj.weight": numeric("proj", (2, 3, 2), "float32"),
        "proj.bias64": numeric("bias64", (2,), "float64"),
        "ids": numeric("ids", (6,), "int32"),
        "positions": numeric("positions", (2, 2), "int64"),
        "mask": numeric("mask", (7,), "uint8"),
        "flags": numeric("flags", (3,), "bool"),
        "scale": numeric("scale", (), "float32"),
        "empty": numeric("empty", (0, 4), "float32"),
    }


# A tiny Qwen2-shaped state dict (hidden 4, vocab 8, one layer), in module order as
# transformers iterates it, sharded with huggingface_hub's greedy rule.
SHARDED_MAX_SHARD_SIZE = 96


def hf_sharded() -> dict:
    t = {}
    t["model.embed_tokens.weight"] = numeric("s.embed", (8, 4), "bfloat16")
    p = "model.layers.0."
    t[p + "input_layernorm.weight"] = numeric("s.ln1", (4,), "float32")
    t[p + "self_attn.q_proj.weight"] = numeric("s.q", (4, 4), "bfloat16")
    t[p + "self_attn.q_proj.bias"] = numeric("s.qb", (4,), "bfloat16")
    t[p + "self_attn.k_proj.weight"] = numeric("s.k", (2, 4), "bfloat16")
    t[p + "self_attn.k_proj.bias"] = numeric("s.kb", (2,), "bfloat16")
    t[p + "mlp.down_proj.weight"] = numeric("s.down", (4, 6), "bfloat16")
    t[p + "post_attention_layernorm.weight"] = numeric("s.ln2", (4,), "float32")
    t["model.norm.weight"] = numeric("s.norm", (4,), "float32")
    t["lm_head.weight"] = numeric("s.head", (8, 4), "bfloat16")
    return t


def split_into_shards(tensors: dict, max_shard_size: int) -> list:
    """huggingface_hub split_state_dict_into_shards_factory, minus the storage-sharing logic."""
    shards, current, current_size = [], {}, 0
    for name, t in tensors.items():
        size = t.array.nbytes
        if size > max_shard_size:
            shards.append({name: t})
            continue
        if current_size + size > max_shard_size:
            shards.append(current)
            current, current_size = {}, 0
        current[name] = t
        current_size += size
    if current:
        shards.append(current)
    return shards


def write_sharded(out_dir: str, tensors: dict) -> dict:
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    shards = split_into_shards(tensors, SHARDED_MAX_SHARD_SIZE)
    assert len(shards) >= 2
    weight_map, files = {}, {}
    for k, shard in enumerate(shards, start=1):
        name = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        serialize_file(shard, os.path.join(out_dir, name), {"format": "pt"})
        files[name] = describe(os.path.join(out_dir, name), shard)
        for tensor_name in shard:
            weight_map[tensor_name] = name
    total_size = sum(t.array.nbytes for t in tensors.values())
    index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")  # as save_pretrained does
    return {
        "max_shard_size": SHARDED_MAX_SHARD_SIZE,
        "order": list(tensors),
        "total_size": total_size,
        "weight_map": weight_map,
        "files": files,
    }


def le_u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def raw_file(header: str, data: bytes = b"") -> bytes:
    h = header.encode("utf-8")
    return le_u64(len(h)) + h + data


def write_corpus(fixture_path: str) -> None:
    shutil.rmtree(CORPUS_DIR, ignore_errors=True)
    os.makedirs(CORPUS_DIR)
    one = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    two = ('{"__metadata__":{"format":"pt"},"b":{"dtype":"I8","shape":[],"data_offsets":[8,9]},'
           '"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}')
    seeds = {
        "valid_hf_fixture": open(fixture_path, "rb").read(),
        "valid_one_tensor": raw_file(one, bytes(range(8))),
        "valid_two_unordered": raw_file(two, bytes(range(9))),
        "valid_empty_and_scalar": raw_file(
            '{"e":{"dtype":"U16","shape":[3,0],"data_offsets":[0,0]},'
            '"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}   ', bytes(8)),
        "valid_no_tensors": raw_file("{}      "),
        "bad_duplicate_key": raw_file(one[:-1] + ',"a":{"dtype":"U8","shape":[0],'
                                      '"data_offsets":[8,8]}}', bytes(8)),
        "bad_overlap": raw_file('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},'
                                '"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}', bytes(6)),
        "bad_hole": raw_file('{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}', bytes(4)),
        "bad_lying_shape": raw_file('{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],'
                                    '"data_offsets":[0,8]}}', bytes(8)),
        "bad_header_length": le_u64(1 << 40) + b"{}",
        "bad_utf8": le_u64(4) + b'{"\xff"',
    }
    # The fuzz target also feeds the bytes after the prefix to the model-index parser.
    index_path = os.path.join(DATA_DIR, "hf_sharded", "model.safetensors.index.json")
    seeds["index_hf_sharded"] = le_u64(0) + open(index_path, "rb").read()
    for name, blob in seeds.items():
        with open(os.path.join(CORPUS_DIR, name), "wb") as f:
            f.write(blob)


def main() -> int:
    os.makedirs(DATA_DIR, exist_ok=True)
    fixture = hf_fixture()
    fixture_path = os.path.join(DATA_DIR, "hf_fixture.safetensors")
    serialize_file(fixture, fixture_path, {"format": "pt"})
    expected = {
        "generator": f"safetensors {safetensors.__version__} (tools/gen_safetensors_fixtures.py)",
        "hf_fixture.safetensors": describe(fixture_path, fixture),
        "hf_sharded": write_sharded(os.path.join(DATA_DIR, "hf_sharded"), hf_sharded()),
    }
    expected["hf_fixture.safetensors"]["order"] = list(fixture)
    with open(os.path.join(DATA_DIR, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    write_corpus(fixture_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
