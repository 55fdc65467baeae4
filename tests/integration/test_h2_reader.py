#!/usr/bin/env python3
"""The HTTP/2 frame reader (common/http/h2.c) against an independent
implementation: Python's h2 package (python3-h2), a client and a server
connection talking to each other in memory.

Random conversations (requests with and without bodies, priority, padded
DATA, header blocks large enough to be split over CONTINUATION frames,
responses with trailers, pushed streams, resets from either side, pings,
window updates, settings changes and GOAWAY) are recorded byte for byte in both
directions. tests/progs/h2_read.c reads each direction whole, one byte
at a time and in pieces of 13; what it reports (header blocks with their
decoded fields, DATA lengths without padding, END_STREAM, resets, GOAWAY,
settings) must be exactly what the h2 connection on the receiving side
reported. Then a direction that is not HTTP/2 (an HTTP/1 request where
the preface should be) and one with a CONTINUATION out of place must be
reported lost, not followed.

Usage: test_h2_reader.py BUILD_DIR SOURCE_DIR"""
import os
import random
import subprocess
import sys

DEBIAN_PY = "/usr/bin/python3"

try:
    import h2.config
    import h2.connection
    import h2.events as ev
    import h2.settings
except ImportError:
    if sys.executable != DEBIAN_PY and os.path.exists(DEBIAN_PY) and not os.environ.get(
            "TEST_H2_REEXEC"):
        os.environ["TEST_H2_REEXEC"] = "1"
        os.execv(DEBIAN_PY, [DEBIAN_PY] + sys.argv)
    print("SKIP: python3-h2 is not installed (apt-get install python3-h2)")
    sys.exit(77)

BUILD = sys.argv[1]
READER = os.path.join(BUILD, "tests", "dynobs-h2-read")


def config(client):
    return h2.config.H2Configuration(client_side=client, header_encoding=None,
                                     validate_inbound_headers=False,
                                     normalize_inbound_headers=False,
                                     validate_outbound_headers=False,
                                     normalize_outbound_headers=False)


def block_lines(stream, headers, end_stream, promised=False):
    out = [f"begin {stream} {int(bool(end_stream))} {int(promised)}"]
    for n, v in headers:
        out.append(f"field {bytes(n).hex() or '-'} {bytes(v).hex() or '-'}")
    out.append(f"end {stream}")
    return out


def expected(events):
    """What our reader must report for the frames that made these h2 events."""
    out = []
    for e in events:
        if isinstance(e, (ev.RequestReceived, ev.ResponseReceived, ev.TrailersReceived,
                          ev.InformationalResponseReceived)):
            out += block_lines(e.stream_id, e.headers, getattr(e, "stream_ended", None))
        elif isinstance(e, ev.PushedStreamReceived):
            out += block_lines(e.pushed_stream_id, e.headers, False, True)
        elif isinstance(e, ev.DataReceived):
            out.append(f"data {e.stream_id} {len(e.data)} {int(e.stream_ended is not None)}")
        elif isinstance(e, ev.StreamReset):
            out.append(f"reset {e.stream_id} {int(e.error_code)}")
        elif isinstance(e, ev.ConnectionTerminated):
            out.append(f"goaway {e.last_stream_id} {int(e.error_code)}")
        elif isinstance(e, ev.RemoteSettingsChanged):
            for code, ch in e.changed_settings.items():
                out.append(f"setting {int(code)} {ch.new_value}")
    return out


class Conversation:
    def __init__(self):
        self.c = h2.connection.H2Connection(config(True))
        self.s = h2.connection.H2Connection(config(False))
        self.bytes = {"c2s": bytearray(), "s2c": bytearray()}
        self.want = {"c2s": [], "s2c": []}

    def pump(self):
        for _ in range(4):
            moved = False
            for src, dst, key in ((self.c, self.s, "c2s"), (self.s, self.c, "s2c")):
                d = src.data_to_send()
                if d:
                    moved = True
                    self.bytes[key] += d
                    self.want[key] += expected(dst.receive_data(d))
            if not moved:
                return


def random_headers(rng, big=False):
    hs = [(b"x-" + bytes(rng.choice(b"abcdefgh") for _ in range(rng.randrange(1, 8))),
           bytes(rng.randrange(32, 127) for _ in range(rng.randrange(0, 50))))
          for _ in range(rng.randrange(0, 6))]
    if big:
        hs += [(b"x-big-%d" % i, bytes(rng.randrange(32, 127) for _ in range(900)))
               for i in range(rng.randrange(20, 45))]
    return hs


def conversation(rng):
    cv = Conversation()
    cv.c.initiate_connection()
    cv.s.initiate_connection()
    cv.pump()
    open_streams = []
    for _ in range(rng.randrange(3, 25)):
        k = rng.random()
        if k < 0.35 or not open_streams:
            sid = cv.c.get_next_available_stream_id()
            body = rng.random() < 0.4
            big = rng.random() < 0.15
            kw = {}
            # (h2 4.1 miscounts the priority fields of a block it splits.)
            if not big and rng.random() < 0.2:
                kw = {"priority_weight": rng.randrange(1, 256)}
            cv.c.send_headers(sid, [(b":method", b"POST" if body else b"GET"),
                                    (b":path", b"/p/%d" % rng.randrange(1000)),
                                    (b":scheme", b"http"), (b":authority", b"example.test")]
                              + random_headers(rng, big=big), end_stream=not body, **kw)
            if body:
                cv.c.send_data(sid, os.urandom(rng.randrange(0, 3000)), end_stream=True,
                               pad_length=rng.choice([None, 0, 7, 200]))
            open_streams.append(sid)
        elif k < 0.7:
            sid = open_streams.pop(rng.randrange(len(open_streams)))
            cv.pump()
            if rng.random() < 0.15:
                cv.s.push_stream(sid, cv.s.get_next_available_stream_id(),
                                 [(b":method", b"GET"), (b":path", b"/pushed"),
                                  (b":scheme", b"http"), (b":authority", b"example.test")])
            cv.s.send_headers(sid, [(b":status", rng.choice([b"200", b"404", b"500"]))]
                              + random_headers(rng))
            cv.s.send_data(sid, os.urandom(rng.randrange(0, 2000)),
                           pad_length=rng.choice([None, 3]))
            if rng.random() < 0.5:
                cv.s.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
            else:
                cv.s.end_stream(sid)
        elif k < 0.8:
            sid = open_streams.pop(rng.randrange(len(open_streams)))
            cv.pump()
            (cv.c if rng.random() < 0.5 else cv.s).reset_stream(sid, rng.choice([0, 2, 8]))
        elif k < 0.9:
            cv.c.ping(os.urandom(8))
            cv.c.increment_flow_control_window(1000)
        else:
            # (h2 4.1's own decoder refuses the size update its peer's
            # encoder sends after a HEADER_TABLE_SIZE change: size updates
            # are tested against python3-hpack in test_hpack.py.)
            (cv.c if rng.random() < 0.5 else cv.s).update_settings(
                {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: rng.randrange(10, 200),
                 h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: rng.randrange(65535, 1 << 20)})
        cv.pump()
    cv.s.close_connection(last_stream_id=7)
    cv.pump()
    return cv


def read(direction, data, step):
    r = subprocess.run([READER, "client" if direction == "c2s" else "server", str(step)],
                       input=bytes(data), capture_output=True, check=True)
    return r.stdout.decode().splitlines()


def without_settings(lines):
    return [x for x in lines if not x.startswith("setting ")]


def main():
    if not os.path.exists(READER):
        print(f"FAIL: {READER} was not built")
        return 1
    rng = random.Random(int(os.environ.get("TEST_H2_SEED", "2026")))
    failures, blocks, continuations = [], 0, 0
    for i in range(40):
        cv = conversation(rng)
        for d in ("c2s", "s2c"):
            want = cv.want[d]
            blocks += sum(1 for x in want if x.startswith("begin"))
            for step in (0, 1, 13):
                got = read(d, cv.bytes[d], step)
                # Settings are compared as a multiset: h2 reports them in
                # a dict per frame.
                if (without_settings(got) != without_settings(want) or
                        sorted(x for x in got if x.startswith("setting")) !=
                        sorted(x for x in want if x.startswith("setting"))):
                    first = next((j for j, (a, b) in enumerate(zip(got, want)) if a != b),
                                 min(len(got), len(want)))
                    failures.append(f"conversation {i} {d} step {step}: line {first}: "
                                    f"{got[first:first + 2]} != {want[first:first + 2]}")
                    break
        continuations += cv.bytes["c2s"].count(b"\x09\x04")  # a rough count, printed only
    print(f"40 conversations, {blocks} header blocks read alike whole, bytewise and in 13s")

    lost = read("c2s", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0)
    if not lost or not lost[-1].startswith("lost"):
        failures.append(f"an HTTP/1 request was not refused: {lost}")
    # SETTINGS, then a CONTINUATION with no header block open.
    bad = h2.connection.H2Connection(config(True))
    bad.initiate_connection()
    data = bad.data_to_send() + bytes([0, 0, 1, 9, 4, 0, 0, 0, 1, 0x82])
    lost = read("c2s", data, 0)
    if not lost or lost[-1] != "lost -71":
        failures.append(f"a CONTINUATION out of place was not refused: {lost}")

    for f in failures:
        print("FAIL:", f)
    print("ok" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
