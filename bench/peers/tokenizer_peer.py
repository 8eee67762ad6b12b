#!/usr/bin/env python3
"""Peer of bench/tokenizer_bench.cpp: Hugging Face `tokenizers` encoding the same six Austen
novels with the same vendored Qwen2.5 tokenizer.json, printing the same JSON line.

    RAYON_NUM_THREADS=1 tools/.venv/bin/python bench/peers/tokenizer_peer.py --threads 1

Two formulations, each timed, the faster one reported (`formulation`): `Tokenizer.encode` per
document and `encode_batch_fast` over all of them (no offsets), the batch one with
RAYON_NUM_THREADS set to the thread count (set before `tokenizers` is imported; with one thread
`encode` runs on the calling thread alone). --paragraphs: each novel cut after every blank line. Each round uses a fresh Tokenizer, so its BPE cache starts empty like
the C++ side's encoders. `check` is FNV-1a 64 of all ids (4 little-endian bytes each).
"""

import argparse
import gzip
import json
import os
import statistics
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOVELS = ["emma", "mansfield_park", "northanger_abbey", "persuasion", "pride_and_prejudice",
          "sense_and_sensibility"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--paragraphs", action="store_true",
                    help="documents = each novel cut after every blank line (as the C++ side)")
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if args.threads > 1 else "false"
    import tokenizers  # after the environment is set

    t0 = time.perf_counter()
    with gzip.open(os.path.join(ROOT, "data", "qwen2.5-tokenizer", "tokenizer.json.gz"), "rb") as f:
        spec = f.read().decode("utf-8")
    tok = tokenizers.Tokenizer.from_str(spec)
    load_s = time.perf_counter() - t0
    docs = []
    for name in NOVELS:
        with gzip.open(os.path.join(ROOT, "data", "austen", name + ".txt.gz"), "rb") as f:
            docs.append(f.read().decode("utf-8", errors="replace"))
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    if args.paragraphs:
        pieces = []
        for d in docs:
            pos = 0
            while pos < len(d):
                end = d.find("\n\n", pos)
                end = len(d) if end < 0 else end + 2
                pieces.append(d[pos:end])
                pos = end
        docs = pieces

    def run(formulation):
        samples, ids = [], []
        for _ in range(args.rounds):
            t = tokenizers.Tokenizer.from_str(spec)
            start = time.perf_counter()
            if formulation == "encode":
                encs = [t.encode(d, add_special_tokens=False) for d in docs]
            else:
                encs = t.encode_batch_fast(docs, add_special_tokens=False)
            samples.append(time.perf_counter() - start)
            ids = [e.ids for e in encs]
        return samples, ids

    results = {f: run(f) for f in ("encode", "encode_batch_fast")}
    formulation = min(results, key=lambda f: statistics.median_low(results[f][0]))
    samples, ids = results[formulation]
    if [len(v) for v in ids] != [len(v) for v in results["encode"][1]] or ids != results["encode"][1]:
        sys.exit("tokenizer_peer: encode and encode_batch_fast disagree")
    h = 0xcbf29ce484222325
    tokens = 0
    for v in ids:
        tokens += len(v)
        for b in struct.pack("<%dI" % len(v), *v):
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    median = statistics.median_low(samples)
    print(json.dumps({
        "bench": "tokenizer", "impl": "tokenizers " + tokenizers.__version__, "formulation": formulation,
        "threads": args.threads, "rounds": args.rounds, "paragraphs": args.paragraphs,
        "documents": len(docs), "bytes": nbytes,
        "tokens": tokens, "load_s": round(load_s, 3), "samples_s": [round(s, 4) for s in samples],
        "median_s": round(median, 4), "min_s": round(min(samples), 4),
        "tok_per_s": round(tokens / median), "mb_per_s": round(nbytes / median / 1e6, 2),
        "check": "%016x" % h}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
