"""Differential test of lbd's request framing against llhttp (Node's parser, PyPI `llhttp`), over
the bad-inputs catalogue (sections A and B) and a request-desync corpus: lbd never accepts a
request whose framing llhttp rejects, and where both accept they agree, request by request, on
where each one ends. lbd's side comes from its own parser and chunked decoder (FuzzLBCore in
`frames` mode, built beside lbd)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import llhttp

import lbdharness as h
from test_bad_inputs import CASES

HEAD = b"POST / HTTP/1.1\r\nHost: x\r\n"
NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


def post(fields: bytes, body: bytes) -> bytes:
    return HEAD + fields + b"\r\n" + body + NEXT


# Classic desync shapes (CL.TE, TE.CL, TE.TE obfuscations, chunk-size tricks), each followed by
# a second request, so any disagreement on where the first ends shows as a different second one.
DESYNC = {
    "cl-te": post(b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\nG"),
    "te-cl": post(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", b"8\r\nSMUGGLED\r\n0\r\n\r\n"),
    "te-space-before-colon": post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"),
    "te-xchunked": post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"),
    "te-chunked-x": post(b"Transfer-Encoding: chunkedx\r\n", b"0\r\n\r\n"),
    "te-tab": post(b"Transfer-Encoding:\tchunked\r\n", b"0\r\n\r\n"),
    "te-leading-space-value": post(b"Transfer-Encoding:  chunked\r\n", b"0\r\n\r\n"),
    "te-trailing-space": post(b"Transfer-Encoding: chunked \r\n", b"0\r\n\r\n"),
    "te-uppercase": post(b"Transfer-Encoding: CHUNKED\r\n", b"0\r\n\r\n"),
    "te-identity-chunked": post(b"Transfer-Encoding: identity, chunked\r\n", b"0\r\n\r\n"),
    "te-chunked-identity": post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"),
    "te-twice": post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    "te-split": post(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    "te-obs-fold": post(b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n"),
    "te-null": post(b"Transfer-Encoding: chunked\x00\r\n", b"0\r\n\r\n"),
    "te-vertical-tab": post(b"Transfer-Encoding:\x0bchunked\r\n", b"0\r\n\r\n"),
    "te-quoted": post(b'Transfer-Encoding: "chunked"\r\n', b"0\r\n\r\n"),
    "te-name-underscore": post(b"Transfer_Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"),
    "cl-leading-zero": post(b"Content-Length: 005\r\n", b"hello"),
    "cl-plus": post(b"Content-Length: +5\r\n", b"hello"),
    "cl-space-inside": post(b"Content-Length: 5 5\r\n", b"hello"),
    "cl-list": post(b"Content-Length: 5, 5\r\n", b"hello"),
    "cl-two-same": post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
    "cl-two-differ": post(b"Content-Length: 5\r\nContent-Length: 7\r\n", b"hello"),
    "cl-huge": post(b"Content-Length: 18446744073709551621\r\n", b"hello"),
    "cl-trailing-space": post(b"Content-Length: 5 \r\n", b"hello"),
    "cl-tab": post(b"Content-Length:\t5\r\n", b"hello"),
    "cl-obs-fold": post(b"Content-Length:\r\n 5\r\n", b"hello"),
    "cl-on-get": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + NEXT,
    "chunk-size-leading-space": post(b"Transfer-Encoding: chunked\r\n", b" 5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-trailing-space": post(b"Transfer-Encoding: chunked\r\n", b"5 \r\nhello\r\n0\r\n\r\n"),
    "chunk-size-0x": post(b"Transfer-Encoding: chunked\r\n", b"0x5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-plus": post(b"Transfer-Encoding: chunked\r\n", b"+5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-overflow": post(b"Transfer-Encoding: chunked\r\n", b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-leading-zeros": post(b"Transfer-Encoding: chunked\r\n", b"00005\r\nhello\r\n0\r\n\r\n"),
    "chunk-ext": post(b"Transfer-Encoding: chunked\r\n", b"5;a=b\r\nhello\r\n0\r\n\r\n"),
    "chunk-ext-quoted": post(b"Transfer-Encoding: chunked\r\n", b'5;a="b;c"\r\nhello\r\n0\r\n\r\n'),
    "chunk-ext-bare-lf": post(b"Transfer-Encoding: chunked\r\n", b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
    "chunk-lf-only": post(b"Transfer-Encoding: chunked\r\n", b"5\nhello\n0\n\n"),
    "chunk-data-too-long": post(b"Transfer-Encoding: chunked\r\n", b"3\r\nhello\r\n0\r\n\r\n"),
    "chunk-no-crlf-after-data": post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello0\r\n\r\n"),
    "chunk-trailer": post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
    "chunk-trailer-cl": post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nContent-Length: 9\r\n\r\n"),
    "chunk-trailer-obs-fold": post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n"),
    "chunk-last-with-ext": post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0;x=y\r\n\r\n"),
    "te-http10": b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n0\r\n\r\n" + NEXT,
    "bare-lf-head": b"GET / HTTP/1.1\nHost: x\n\n" + NEXT,
    "bare-cr-head": b"GET / HTTP/1.1\rHost: x\r\n\r\n" + NEXT,
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n" + NEXT,
    "header-no-colon": b"GET / HTTP/1.1\r\nHost: x\r\nBroken\r\n\r\n" + NEXT,
    "leading-crlf": b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT,
    "http09": b"GET /\r\n\r\n" + NEXT,
    "two-spaces": b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT,
    "lowercase-version": b"GET / http/1.1\r\nHost: x\r\n\r\n" + NEXT,
    "pipelined-3": NEXT * 3,
    "expect-continue": post(b"Content-Length: 5\r\nExpect: 100-continue\r\n", b"hello"),
    "connection-close-then-more": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + NEXT,
}


# Inputs lbd accepts on purpose where llhttp refuses, with the catalogue line that says so. None
# changes where a request ends.
CATALOGUE_LENIENCY = {
    "H16-trailer-framing-fields": "H16: a trailer carrying Content-Length/Transfer-Encoding/Host is dropped, never merged",
    "chunk-trailer-cl": "H16: a trailer carrying Content-Length is dropped, never merged",
    "H36-http12": "H36: HTTP/1.2 is treated as 1.1 (RFC 9110 §2.5)",
}


class Recorder(llhttp.Request):
    def __init__(self):
        super().__init__()
        self.completed = 0

    def on_message_complete(self):
        self.completed += 1


def llhttp_frames(data: bytes) -> tuple[list[int], str]:
    """Offsets where llhttp completes each request, fed a byte at a time, and how it stopped:
    "reject NAME" on an error, "closed" when it reads no more after a closing request, else
    "incomplete" or "end"."""
    p = Recorder()
    ends: list[int] = []
    for i in range(len(data)):
        try:
            p.execute(data[i:i + 1])
        except llhttp.ClosedConnectionError:
            return ends, "closed"
        except llhttp.Error as e:
            return ends, f"reject {type(e).__name__}"
        if p.completed > len(ends):
            ends.append(i + 1)
    return ends, "end" if ends and ends[-1] == len(data) else "incomplete"


def lbd_frames(cases: dict[str, bytes], tmp: Path) -> dict[str, tuple[list[int], str]]:
    tool = Path(h.LBD_BIN).parent / "FuzzLBCore"
    assert tool.exists(), f"{tool} missing: `swift build` builds it beside lbd"
    paths = {}
    for i, (name, data) in enumerate(cases.items()):
        p = tmp / f"case{i}"
        p.write_bytes(data)
        paths[str(p)] = name
    out = subprocess.run([str(tool), *paths], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, LBD_FUZZ_TARGET="frames"), check=True).stdout
    result: dict[str, tuple[list[int], str]] = {}
    current = None
    for line in out.splitlines():
        word, _, rest = line.partition(" ")
        if word == "file":
            current = paths[rest]
            result[current] = ([], "end")
        elif word == "message":
            result[current][0].append(int(rest))
        else:
            result[current] = (result[current][0], line)
    return result


def test_lbd_is_never_more_lenient_than_llhttp_and_agrees_where_both_accept(tmp_path):
    cases = dict(DESYNC)
    for case in CASES:
        cases[case.id] = case.raw
    ours = lbd_frames(cases, tmp_path)
    lenient, disagree, stricter = [], [], []
    for name, data in cases.items():
        our_ends, our_stop = ours[name]
        their_ends, their_stop = llhttp_frames(data)
        common = min(len(our_ends), len(their_ends))
        if our_ends[:common] != their_ends[:common]:
            disagree.append((name, our_ends, our_stop, their_ends, their_stop))
        elif len(our_ends) > len(their_ends) and their_stop.startswith("reject"):
            lenient.append((name, our_ends, their_ends, their_stop))
        elif len(our_ends) > len(their_ends):
            # llhttp stopped without an error (waiting for more, or closed): lbd must not have
            # found a request there that llhttp was still reading as part of the previous one.
            if their_stop == "incomplete":
                disagree.append((name, our_ends, our_stop, their_ends, their_stop))
        elif len(our_ends) < len(their_ends):
            stricter.append((name, our_stop, their_ends))
    print(f"\n{len(cases)} inputs: lbd stricter than llhttp on {len(stricter)}, "
          f"framing disagreements {len(disagree)}, lbd more lenient {len(lenient)}")
    for s in stricter:
        print("  lbd stricter:", s)
    assert not disagree, f"lbd and llhttp end requests at different places: {disagree}"
    # Where lbd accepts what llhttp rejects, it is only where bad-inputs.md asks for it, and the
    # framing is the same either way: both sides end the request at the same byte.
    unexpected = [x for x in lenient if x[0] not in CATALOGUE_LENIENCY]
    assert not unexpected, f"lbd accepts requests llhttp rejects: {unexpected}"
    for name, our_ends, _, stop in lenient:
        print(f"  lbd accepts, llhttp {stop}: {name} ({CATALOGUE_LENIENCY[name]})")
    assert len(cases) >= 100
