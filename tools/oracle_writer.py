"""Deterministic safetensors writer for the committed oracle fixtures (tests/data/oracles/).

Used by tools/gen_recurrence_goldens.py and tools/gen_mixer_goldens.py; not a script.

Why not `safetensors.torch.save_file`: its Rust writer serialises `__metadata__` from a HashMap
in random order, so a file with more than one metadata key is not byte-reproducible. This writer
emits the same format (docs/formats/safetensors.md) deterministically:
  - the JSON header has `__metadata__` first (keys sorted), then the tensors sorted by name;
  - compact JSON (no spaces), ASCII-only (non-ASCII escaped), padded with spaces to a multiple
    of 8 bytes;
  - tensor data in the same (name) order, little-endian, contiguous, no gaps.
Every file written is read back with the `safetensors` package and compared bit for bit.
"""

import json
import struct

import numpy as np
import torch

_DTYPES = {
    np.dtype("<f8"): "F64",
    np.dtype("<f4"): "F32",
    np.dtype("<i4"): "I32",
}


def _as_numpy(t):
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().contiguous().numpy()
    a = np.ascontiguousarray(t)
    if a.dtype.newbyteorder("<") not in _DTYPES:
        raise TypeError(f"unsupported dtype {a.dtype}")
    return a.astype(a.dtype.newbyteorder("<"), copy=False)


def write_safetensors(path, tensors, metadata):
    """tensors: {name: torch.Tensor | np.ndarray} (F64, F32 or I32); metadata: {str: str}."""
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"metadata must be str->str, got {k!r}: {type(v)}")
    arrays = {name: _as_numpy(t) for name, t in tensors.items()}
    header = {"__metadata__": {k: metadata[k] for k in sorted(metadata)}}
    blobs = []
    offset = 0
    for name in sorted(arrays):
        a = arrays[name]
        raw = a.tobytes(order="C")
        header[name] = {
            "dtype": _DTYPES[a.dtype],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    _verify(path, arrays, metadata)


def _verify(path, arrays, metadata):
    from safetensors import safe_open

    with safe_open(path, framework="np") as f:
        if dict(f.metadata() or {}) != dict(metadata):
            raise RuntimeError(f"{path}: metadata did not round-trip")
        if sorted(f.keys()) != sorted(arrays):
            raise RuntimeError(f"{path}: tensor names did not round-trip")
        for name, a in arrays.items():
            b = f.get_tensor(name)
            if b.dtype != a.dtype or b.shape != a.shape or b.tobytes() != a.tobytes():
                raise RuntimeError(f"{path}: tensor {name} did not round-trip")
