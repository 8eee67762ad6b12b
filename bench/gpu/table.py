#!/usr/bin/env python3
"""The one table of bench/gpu/check.sh: our kernel timings beside the peer's (fla, or PyTorch's
SDPA for attention) and the bandwidth roofline of the card.

    table.py [--card NAME] [--hbm-tbps X] [--stages FILE] FILE...

FILE: text whose lines may be JSON records (other lines are ignored). A record has
  row (rwkv6 | rwkv7 | attention | ...), impl, B, T, H (or Hq and Hkv), D,
  fwd_ms, fwdbwd_ms (null or absent where the pass is not timed),
  min_bytes_fwd, min_bytes_fwdbwd (the least HBM traffic of the pass),
and optionally error (the row failed: shown as such).
Records whose impl starts with "fla." or "torch." are the peer's; the others are ours (one table
line per impl of ours). The roofline is min_bytes / the card's HBM bandwidth: --hbm-tbps, or from
the card's name (H200 4.8 TB/s, H100 SXM 3.35, H100 NVL 3.9, H100 PCIe 2.0, A100 80GB 2.0,
A100 40GB 1.555); ours' min_bytes when present, else the peer's.
--stages: lines "stage<TAB>status", printed under the table.
Standard library only (the GPU machine has Python, nothing else is assumed).
"""
import argparse
import json
import sys

PEER_PREFIXES = ("fla.", "torch.")


def card_bandwidth(name):
    """HBM bandwidth in bytes/s from nvidia-smi's card name, or None when unknown."""
    n = (name or "").upper()
    if "H200" in n:
        return 4.8e12
    if "H100" in n:
        if "PCIE" in n:
            return 2.0e12
        if "NVL" in n:
            return 3.9e12
        return 3.35e12  # SXM (nvidia-smi: "NVIDIA H100 80GB HBM3")
    if "A100" in n:
        if "40GB" in n:
            return 1.555e12
        return 2.0e12  # 80GB: SXM 2.04, PCIe 1.94
    return None


def shape_key(r):
    if "Hq" in r:
        return (r.get("B"), r.get("T"), "Hq", r.get("Hq"), r.get("Hkv"), r.get("D"))
    return (r.get("B"), r.get("T"), "H", r.get("H"), None, r.get("D"))


def shape_text(r):
    if "Hq" in r:
        return "B=%s T=%s Hq=%s Hkv=%s D=%s" % (r.get("B"), r.get("T"), r.get("Hq"), r.get("Hkv"), r.get("D"))
    return "B=%s T=%s H=%s D=%s" % (r.get("B"), r.get("T"), r.get("H"), r.get("D"))


def read_records(paths):
    records = []
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.readlines()
        except OSError:
            continue  # a stage that never ran leaves no file
        for line in lines:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict) and "row" in r:
                records.append(r)
    return records


def ms(x):
    return "-" if x is None else "%.3f" % x


def build_lines(records, bw):
    ours, peers, order = {}, {}, []
    for r in records:
        key = (r["row"], shape_key(r))
        if key not in order:
            order.append(key)
        impl = str(r.get("impl", ""))
        if impl.startswith(PEER_PREFIXES):
            peers[key] = r  # the last run wins
        else:
            ours.setdefault(key, {})[impl] = r
    lines = []
    for key in order:
        peer = peers.get(key)
        mine = ours.get(key) or {"": None}
        for impl, r in mine.items():
            ref = r if r is not None else peer
            for pass_name, field in (("fwd", "fwd"), ("fwd+bwd", "fwdbwd")):
                o = r.get(field + "_ms") if r else None
                p = peer.get(field + "_ms") if peer else None
                if o is None and p is None and not (r and r.get("error")) and not (peer and peer.get("error")):
                    continue
                min_bytes = (r or {}).get("min_bytes_" + field) or (peer or {}).get("min_bytes_" + field)
                roof = min_bytes / bw * 1e3 if (min_bytes and bw) else None
                ratio = "%.2fx" % (o / p) if (o and p) else "-"
                notes = []
                if r is None:
                    notes.append("ours: no result")
                elif r.get("error"):
                    notes.append("ours failed: %s" % r["error"])
                if peer is None:
                    notes.append("no peer result")
                elif peer.get("error"):
                    notes.append("peer failed: %s" % peer["error"])
                elif p is not None:
                    notes.append("peer " + str(peer.get("impl")))
                if o and roof:
                    notes.append("ours at %.0f%% of roofline" % (100.0 * roof / o))
                label = key[0] + (" (%s)" % impl if impl else "")
                lines.append([label, pass_name, shape_text(ref), ms(o), ms(p), ratio, ms(roof), "; ".join(notes)])
    return lines


def render(lines, card, bw, stages):
    head = ["row", "pass", "shape", "ours ms", "fla/peer ms", "ours/peer", "roofline ms", "notes"]
    out = []
    bw_text = "%.2f TB/s" % (bw / 1e12) if bw else "unknown HBM bandwidth (no roofline; pass --hbm-tbps)"
    out.append("card: %s, %s" % (card or "unknown", bw_text))
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)] if lines else [len(h) for h in head]
    def fmt(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    out.append(fmt(head))
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for l in lines:
        out.append(fmt(l))
    if not lines:
        out.append("(no benchmark results)")
    if stages:
        out.append("")
        out.append("stages:")
        for name, status in stages:
            out.append("  %-12s %s" % (name, status))
    return "\n".join(out) + "\n"


def read_stages(path):
    stages = []
    if not path:
        return stages
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if "\t" in line:
                    name, status = line.split("\t", 1)
                    stages.append((name, status))
    except OSError:
        stages.append(("(stages)", "status file %s missing" % path))
    return stages


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--card", default="")
    ap.add_argument("--hbm-tbps", type=float, default=None)
    ap.add_argument("--stages", default=None)
    ap.add_argument("files", nargs="*")
    a = ap.parse_args(argv)
    bw = a.hbm_tbps * 1e12 if a.hbm_tbps else card_bandwidth(a.card)
    sys.stdout.write(render(build_lines(read_records(a.files), bw), a.card, bw, read_stages(a.stages)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
