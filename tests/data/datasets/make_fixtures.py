#!/usr/bin/env python3
"""Writes the small token-file fixtures used by tests/storage/dataset_test.cpp.

Standard library only, so it runs anywhere; each writer mirrors the byte layout of the tool
named below (see docs/formats/datasets.md):
  megatron_u16.{bin,idx}       Megatron/RWKV-LM binidx builder: dtype code 8 (uint16),
                               doc_idx = 0..S, documents [11 12 13] [21 22] [31] + EOS 0.
  make_data_hf_i32.{bin,idx}   RADLADS make_data_hf.py: int32 (code 4) because the vocab is
                               > 65536, EOS 151643 appended, doc_idx = range(S) (no final S).
  tokens_u4.npy                np.save(np.array([...], dtype='<u4')) with NumPy >= 1.14
                               (format 1.0, header padded to 64 bytes).
Run from anywhere: python3 tests/data/datasets/make_fixtures.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write_binidx(prefix, code, fmt, docs, eos, doc_idx_mode):
    itemsize = struct.calcsize("<" + fmt)
    sizes, pointers, data = [], [], b""
    for doc in docs:
        toks = list(doc) + [eos]
        pointers.append(len(data))
        sizes.append(len(toks))
        data += struct.pack("<%d%s" % (len(toks), fmt), *toks)
    assert len(data) == sum(sizes) * itemsize
    doc_idx = list(range(len(sizes) + 1)) if doc_idx_mode == "megatron" else list(range(len(sizes)))
    idx = b"MMIDIDX\x00\x00"
    idx += struct.pack("<Q", 1)
    idx += struct.pack("<B", code)
    idx += struct.pack("<Q", len(sizes))
    idx += struct.pack("<Q", len(doc_idx))
    idx += struct.pack("<%di" % len(sizes), *sizes)
    idx += struct.pack("<%dq" % len(pointers), *pointers)
    idx += struct.pack("<%dq" % len(doc_idx), *doc_idx)
    with open(os.path.join(HERE, prefix + ".bin"), "wb") as f:
        f.write(data)
    with open(os.path.join(HERE, prefix + ".idx"), "wb") as f:
        f.write(idx)


def write_npy(name, descr, fmt, values):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }" % (descr, len(values))
    pre_len = 6 + 2 + 2
    total = pre_len + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    out = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")
    out += struct.pack("<%d%s" % (len(values), fmt), *values)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(out)


if __name__ == "__main__":
    write_binidx("megatron_u16", 8, "H", [[11, 12, 13], [21, 22], [31]], 0, "megatron")
    write_binidx("make_data_hf_i32", 4, "i", [[151000, 5], [7, 8, 9]], 151643, "make_data_hf")
    write_npy("tokens_u4.npy", "<u4", "I", [0, 1, 2, 151643, 4294967295])
