#!/usr/bin/env python3
"""The HPACK decoder (common/http/hpack.c) against an independent encoder
and decoder: Python's hpack package (python3-hpack), which python3-h2
and so many Python HTTP/2 peers use.

Sequences of random header lists (static-table names and values, custom
names, every octet in values, indexed and never-indexed fields, Huffman
on and off, dynamic table size updates down to 0 and up to 16384 so that
entries are evicted and the table's byte ring wraps) are encoded by
hpack.Encoder, decoded by tests/progs/hpack_decode.c, fed whole, one
byte at a time and in pieces of 7, and compared field by field with what
hpack.Decoder reads from the same bytes. Then the fields the shim writes
(a literal without indexing) are appended to a block and must be read
by hpack.Decoder without changing its table, and a size update beyond
the decoder's cap must be refused (the connection is then left alone).

Usage: test_hpack.py BUILD_DIR SOURCE_DIR"""
import os
import random
import struct
import subprocess
import sys

DEBIAN_PY = "/usr/bin/python3"

try:
    import hpack
except ImportError:
    if sys.executable != DEBIAN_PY and os.path.exists(DEBIAN_PY) and not os.environ.get(
            "TEST_HPACK_REEXEC"):
        os.environ["TEST_HPACK_REEXEC"] = "1"
        os.execv(DEBIAN_PY, [DEBIAN_PY] + sys.argv)
    print("SKIP: python3-hpack is not installed (apt-get install python3-hpack)")
    sys.exit(77)

BUILD = sys.argv[1]
DECODER = os.path.join(BUILD, "tests", "dynobs-hpack-decode")
COMMON_NAMES = [b":method", b":path", b":authority", b":scheme", b":status", b"content-type",
                b"user-agent", b"accept", b"cache-control", b"cookie", b"te",
                b"grpc-timeout", b"grpc-status", b"traceparent", b"tracestate"]
COMMON_VALUES = [b"GET", b"POST", b"/", b"/index.html", b"http", b"https", b"200", b"404",
                 b"application/grpc", b"trailers", b"gzip, deflate"]


def random_value(rng):
    k = rng.random()
    if k < 0.3:
        return rng.choice(COMMON_VALUES)
    if k < 0.5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
    if k < 0.55:
        return bytes(rng.randrange(32, 127) for _ in range(rng.randrange(200, 3000)))
    return bytes(rng.randrange(32, 127) for _ in range(rng.randrange(0, 60)))


def random_headers(rng):
    out = []
    for _ in range(rng.randrange(0, 14)):
        if rng.random() < 0.6:
            name = rng.choice(COMMON_NAMES)
        else:
            name = b"x-" + bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz-0123456789")
                                 for _ in range(rng.randrange(1, 20)))
        value = random_value(rng)
        if rng.random() < 0.1:
            out.append(hpack.NeverIndexedHeaderTuple(name, value))
        else:
            out.append((name, value))
    return out


def run_decoder(blocks, step):
    data = b"".join(struct.pack(">I", len(b)) + b for b in blocks)
    r = subprocess.run([DECODER, str(step)], input=data, capture_output=True, check=True)
    return r.stdout.decode().splitlines()


def unhex(s):
    return b"" if s == "-" else bytes.fromhex(s)


def parse(lines):
    """[[(kind, name, value), ...] per block], or the error line."""
    blocks, cur = [], []
    for line in lines:
        if line == "end":
            blocks.append(cur)
            cur = []
        elif line.startswith("error"):
            return blocks, line
        else:
            kind, name, value = line.split(" ")
            cur.append((kind, unhex(name), unhex(value)))
    return blocks, None


def check_sequence(rng, seq_no, failures):
    enc, dec = hpack.Encoder(), hpack.Decoder()
    dec.max_allowed_table_size = 1 << 20
    blocks, want = [], []
    for i in range(rng.randrange(1, 40)):
        if rng.random() < 0.15:
            enc.header_table_size = rng.choice([0, 64, 256, 1000, 4096, 8192, 16384])
        block = enc.encode(random_headers(rng), huffman=rng.random() < 0.7)
        blocks.append(block)
        want.append([(bytes(n), bytes(v)) for n, v in dec.decode(block, raw=True)])
    for step in (0, 1, 7):
        got, err = parse(run_decoder(blocks, step))
        if err:
            failures.append(f"sequence {seq_no} step {step}: {err} after {len(got)} blocks")
            continue
        names = [[(n, v) for _, n, v in b] for b in got]
        if names != want:
            bad = next(i for i in range(len(want)) if i >= len(names) or names[i] != want[i])
            failures.append(f"sequence {seq_no} step {step}: block {bad} differs: "
                            f"{names[bad] if bad < len(names) else None!r} != {want[bad]!r}")
        kinds = {k for b in got for k, _, _ in b}
        if any(k.endswith("t") for k in kinds):
            failures.append(f"sequence {seq_no}: a value was cut")
    return blocks


def literal_field(name, value):
    """The bytes common/http/hpack.c's dynobs__hpack_literal writes: a
    literal without indexing, literal name, no Huffman (RFC 7541 6.2.2),
    with lengths below 127 as here."""
    assert len(name) < 127 and len(value) < 127
    return bytes([0, len(name)]) + name + bytes([len(value)]) + value


def main():
    if not os.path.exists(DECODER):
        print(f"FAIL: {DECODER} was not built")
        return 1
    rng = random.Random(int(os.environ.get("TEST_HPACK_SEED", "7615")))
    failures = []
    total_blocks = 0
    for seq in range(60):
        total_blocks += len(check_sequence(rng, seq, failures))
    print(f"{total_blocks} blocks in 60 sequences decoded alike whole, bytewise and in 7s")

    # The shim's field, appended to a block that indexes, is read by an
    # independent decoder, and the next block (which refers to the
    # table) still decodes alike on both sides: the table did not move.
    enc, dec = hpack.Encoder(), hpack.Decoder()
    tp = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    first = enc.encode([(b":method", b"GET"), (b"x-a", b"1"), (b":path", b"/a")])
    block = first + literal_field(b"traceparent", tp)
    got = dec.decode(block, raw=True)
    if (b"traceparent", tp) not in [(bytes(n), bytes(v)) for n, v in got]:
        failures.append(f"the appended traceparent was not read: {got!r}")
    second = enc.encode([(b"x-a", b"1"), (b":path", b"/a")])
    ours, err = parse(run_decoder([block, second], 0))
    theirs = [(bytes(n), bytes(v)) for n, v in dec.decode(second, raw=True)]
    if err or [(n, v) for _, n, v in ours[1]] != theirs or ours[0][-1] != ("3", b"traceparent", tp):
        failures.append(f"after the appended field: ours {ours!r} {err}, theirs {theirs!r}")

    # A table larger than the cap: refused, not followed wrongly.
    enc = hpack.Encoder()
    enc.header_table_size = 65536
    _, err = parse(run_decoder([enc.encode([(b"x-a", b"1")])], 0))
    if err != "error -7":  # -E2BIG
        failures.append(f"a 65536-byte table was not refused: {err!r}")

    for f in failures:
        print("FAIL:", f)
    print("ok" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
