"""Hostile archives against the CLI (seekable file and pipe) and the daemon.

tests/cli/test_cli.py and tests/unit/test_npz.c already cover the fixture
archives of tests/data/npz (one of each kind, read from a file).  This suite
adds what they leave out: every hostile name and method variant, both ways
of reading (a file uses the central directory, a pipe only local headers),
the daemon's answer to the same archives, zip bombs measured by the memory
they cost, and 10^5 members.
"""
import json
import subprocess
import time

import numpy as np
import pytest

import harness as h

W = h.npy_bytes(np.arange(4, dtype=np.float32))
FULL = h.npy_bytes(np.arange(32, dtype=np.float32))


def member(name, data=W, **kw):
    m = {"name": name, "data": data}
    m.update(kw)
    return m


def truncated_stream(name, data, keep):
    """Sizes and CRC of the whole member, a deflate stream of only keep bytes."""
    import zlib
    return {"name": name, "comp": h.deflate(data[:keep]), "crc": zlib.crc32(data) & 0xFFFFFFFF,
            "size": len(data)}


# (id, members, words the message must contain, and for the pipe's
# streaming reader: True for the same words, other words, or False when
# only the central directory shows the problem)
HOSTILE = [
    ("name-absolute", [member("/etc/w.npy")], ["absolute path"], True),
    ("name-dotdot", [member("a/../../w.npy")], ["'..'"], True),
    ("name-dotdot-backslash", [member("..\\w.npy")], ["'..'"], True),
    # A pipe's reader gets the name from libarchive as a C string, cut at
    # the NUL: "w", refused as not a .npy member.
    ("name-nul", [member(b"w\x00x.npy")], ["NUL"], ["member 'w' is not a .npy"]),
    ("name-latin1", [member(b"caf\xe9.npy")], ["UTF-8"], True),
    ("name-overlong-dot", [member(b"\xc0\xae\xc0\xae/w.npy")], ["UTF-8"], True),
    ("name-surrogate", [member(b"\xed\xa0\x80.npy")], ["UTF-8"], True),
    ("name-not-npy", [member("w.npy"), member("w.npz")], ["not a .npy"], True),
    ("name-too-long", [member("k" * 1100 + ".npy")], ["1104 bytes"], True),
    ("local-vs-central-name", [member("a.npy", cd_name="b.npy")], ["central directory"], False),
    ("duplicate-stored", [member("w.npy", method=0), member("w.npy", method=0)],
     ["duplicate"], True),
    ("duplicate-mixed", [member("w.npy", method=8), member("v.npy"), member("w.npy", method=0)],
     ["duplicate"], True),
    ("encrypted-zipcrypto", [member("w.npy", flags=0x1)], ["encrypt"], True),
    ("encrypted-strong", [member("w.npy", flags=0x41)], ["encrypt"], True),
    ("encrypted-aes", [member("w.npy", method=99, flags=0x1)], ["encrypt"], True),
    ("method-lzma", [member("w.npy", method=14)], ["lzma"], True),
    ("method-zstd", [member("w.npy", method=93)], ["zstd"], True),
    ("method-deflate64", [member("w.npy", method=9)], ["deflate64"],
     ["compression method", "deflation-64"]),
    ("method-unknown", [member("w.npy", method=77)], ["compression method"], True),
    ("npy-claims-more-stored", [member("short.npy", FULL[:-28], method=0)],
     ["'short'", "holds 100"], True),
    ("npy-claims-less-stored", [member("long.npy", FULL + b"\0" * 4, method=0)],
     ["'long'", "holds 132"], True),
    ("npy-claims-more-deflated", [member("short.npy", FULL[:-28])], ["'short'", "holds 100"], True),
    ("npy-claims-less-deflated", [member("long.npy", FULL + b"\0" * 4)],
     ["'long'", "holds 132"], True),
    # The zip's sizes agree with the header, the deflate stream is shorter
    # or longer: only inflating shows it (here the index pass already
    # inflates the whole small member).
    ("stream-shorter-than-sizes", [truncated_stream("cut.npy", FULL, len(FULL) - 40)],
     ["'cut'", "wrong size"], False),
    ("stream-longer-than-sizes", [member("lie.npy", FULL + b"\1" * 64, size=len(FULL))],
     ["'lie'", "wrong size"], False),
]

SPEC_ANY = {"weightbridge_spec": 1, "unmapped": "ignore", "layers": [
    {"name": "x", "type": "Custom", "weights": [{"name": "w", "from": "w"}]}]}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    paths = {}
    for cid, members, _, _ in HOSTILE:
        p = d / (cid + ".npz")
        p.write_bytes(h.raw_zip(members))
        paths[cid] = p
    return paths


def pipe_cli(*args, data):
    """The CLI reading its archive from a pipe (/dev/stdin): the streaming
    reader, which sees only local headers."""
    p = subprocess.run([str(h.BUILD / "weightbridge"), *map(str, args)], input=data,
                       capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


@pytest.mark.parametrize("cid,members,words,streaming", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_archive_cli(hostile, tmp_path, cid, members, words, streaming):
    """inspect and convert refuse with exit 2, a message naming the member,
    no output and no temporary file; the read pass catches what the index
    cannot."""
    path = hostile[cid]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC_ANY))
    rc, out, err, _, _ = h.cli("convert", path, "--spec", spec, "-o", tmp_path / "o.h5")
    assert rc == 2, (cid, rc, out, err)
    for w in words:
        assert w in err, (cid, w, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]
    if streaming:
        rc, out, err = pipe_cli("inspect", "/dev/stdin", data=path.read_bytes())
        assert rc == 2, (cid, rc, out, err)
        for w in (words if streaming is True else streaming):
            assert w in err, (cid, "pipe", w, err)


@pytest.mark.parametrize("cid,members,words,streaming", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_archive_daemon(daemon, hostile, cid, members, words, streaming):
    """The daemon answers the same archives with a 422 problem (inspect) or
    a failed job, never a 5xx, and keeps no upload."""
    data = hostile[cid].read_bytes()
    r = daemon.request("POST", "/v1/inspect", data, {"Content-Type": "application/zip"})
    assert r.status == 422, (cid, r.status, r.body)
    p = r.json()
    assert p["type"].endswith(("/archive-invalid", "/npy-invalid", "/limit-exceeded")), p
    for w in words:
        assert w in p["detail"], (cid, w, p)
    # The client is never told where the daemon keeps its files.
    assert str(daemon.spool) not in p["detail"] and "upload-" not in p["detail"], p
    # A job on the same archive fails the same way.
    r = daemon.submit(data, SPEC_ANY, "?wait=30", filename="hostile.npz")
    assert r.status == 200, r.body
    j = r.json()
    assert j["state"] == "failed" and j["error"]["status"] == 422, j
    assert str(daemon.spool) not in j["error"]["detail"], j
    assert "input.npz" not in j["error"]["detail"], j
    rep = daemon.request("GET", f"/v1/jobs/{j['id']}/report")
    assert rep.status in (200, 404), rep.body
    assert str(daemon.spool).encode() not in rep.body, rep.body[:500]
    assert list((daemon.spool / "tmp").iterdir()) == []


def test_mid_name_slash_is_a_key_not_a_path(tmp_path):
    """'blocks/0.weight' is a legal key (np.savez writes it for such a
    name); keys only ever name tensors, never files."""
    p = tmp_path / "m.npz"
    p.write_bytes(h.raw_zip([member("blocks/0.weight.npy")]))
    rc, out, err, _, _ = h.cli("inspect", p)
    assert rc == 0 and "blocks/0.weight" in out, err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.npz"]


# ---- zip bombs ------------------------------------------------------------------

RSS_BOUND_KIB = 96 * 1024   # a CLI that allocated a bomb would need GiBs


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    out = {}
    # 256 MiB of zeros in a 250 KB deflate stream: ratio about 1030.
    hdr = h.npy_header("|u1", (256 << 20,))
    comp, crc = h.deflate_zeros(hdr, 256 << 20)
    out["ratio"] = d / "ratio.npz"
    out["ratio"].write_bytes(h.raw_zip([{"name": "zeros.npy", "comp": comp, "crc": crc,
                                         "size": len(hdr) + (256 << 20)}]))
    # zip64 sizes declaring 64 GiB for a 1 KB stream.
    hdr = h.npy_header("<f4", (16 << 30,))
    out["declared"] = d / "declared.npz"
    out["declared"].write_bytes(h.raw_zip([{"name": "big.npy", "comp": h.deflate(hdr),
                                            "crc": 0, "size": len(hdr) + (64 << 30)}],
                                          zip64=True))
    # Sizes and header say 16 bytes; the stream inflates to 1 GiB.
    hdr16 = h.npy_bytes(np.zeros(16, np.uint8))
    comp, crc = h.deflate_zeros(hdr16, 1 << 30)
    out["lying"] = d / "lying.npz"
    out["lying"].write_bytes(h.raw_zip([{"name": "zeros.npy", "comp": comp, "crc": crc,
                                         "size": len(hdr16)}]))
    # 40 members of 1 MiB + a bit each, under the ratio, over a 32 MiB total.
    members = []
    for i in range(40):
        hdr = h.npy_header("|u1", (1 << 20,))
        c, crc = h.deflate_zeros(hdr, 1 << 20)
        members.append({"name": "m%d.npy" % i, "comp": c, "crc": crc,
                        "size": len(hdr) + (1 << 20)})
    out["total"] = d / "total.npz"
    out["total"].write_bytes(h.raw_zip(members))
    return out


LYING_SPEC = {"weightbridge_spec": 1, "layers": [
    {"name": "z", "type": "Custom", "weights": [{"name": "z", "from": "zeros"}]}]}


def test_zip_bomb_ratio_cap_cli(bombs):
    rc, out, err, secs, rss = h.cli("inspect", bombs["ratio"])
    assert rc == 2 and "zip bomb" in err and "1000 times" in err, err
    assert rss < RSS_BOUND_KIB, rss
    h.record("bombs", ratio_cli_seconds=round(secs, 3), ratio_cli_maxrss_kib=rss)


def test_zip_bomb_declared_size_cap_cli(bombs):
    rc, out, err, secs, rss = h.cli("inspect", bombs["declared"])
    assert rc == 2 and "tensor cap" in err, err
    assert rss < RSS_BOUND_KIB, rss
    # Raising the tensor cap moves the refusal to the ratio cap, still
    # without allocating the declared 64 GiB.
    rc, out, err, secs, rss = h.cli("inspect", bombs["declared"], "--max-tensor-bytes",
                                    1 << 40)
    assert rc == 2 and "zip bomb" in err, err
    assert rss < RSS_BOUND_KIB, rss
    h.record("bombs", declared_cli_maxrss_kib=rss)


def test_zip_bomb_lying_sizes_cli(bombs, tmp_path):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(LYING_SPEC))
    rc, out, err, secs, rss = h.cli("convert", bombs["lying"], "--spec", spec, "-o",
                                    tmp_path / "z.h5")
    assert rc == 2 and "more than the 16 data bytes" in err, err
    assert rss < RSS_BOUND_KIB, rss
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]
    h.record("bombs", lying_cli_seconds=round(secs, 3), lying_cli_maxrss_kib=rss)


def test_zip_bomb_total_cap_cli(bombs):
    rc, out, err, secs, rss = h.cli("inspect", bombs["total"], "--max-total-bytes", 32 << 20)
    assert rc == 2 and "cap on tensor data" in err, err
    assert rss < RSS_BOUND_KIB, rss


def test_zip_bombs_daemon(daemon, bombs):
    """The same bombs over HTTP: refused with 422, and the daemon's peak
    RSS (VmHWM) grows by far less than any bomb's size."""
    _, hwm0 = h.rss_kib(daemon.proc.pid)
    for name in ("ratio", "declared", "total"):
        r = daemon.request("POST", "/v1/inspect", bombs[name].read_bytes(),
                           {"Content-Type": "application/zip"})
        if name == "total":
            assert r.status == 200   # under the daemon's default 16 GiB total cap
        else:
            assert r.status == 422 and r.json()["type"].endswith("/limit-exceeded"), r.body
    r = daemon.submit(bombs["lying"].read_bytes(), LYING_SPEC, "?wait=60")
    assert r.status == 200 and r.json()["state"] == "failed", r.body
    assert "more than the 16 data bytes" in r.json()["error"]["detail"]
    _, hwm1 = h.rss_kib(daemon.proc.pid)
    assert hwm1 - hwm0 < 128 * 1024, (hwm0, hwm1)
    h.record("bombs", daemon_hwm_growth_kib=hwm1 - hwm0)


# ---- 10^5 members ---------------------------------------------------------------

def test_hundred_thousand_members(tmp_path):
    """The default cap is 100000 members: exactly that many tiny members
    are indexed in bounded time and memory, one more is refused at once,
    before anything is allocated per member."""
    ok = tmp_path / "ok.npz"
    ok.write_bytes(h.tiny_members(100000))
    rc, out, err, secs, rss = h.cli("inspect", ok)
    assert rc == 0 and "100000 tensors" in out.splitlines()[-1], (err, out[-300:])
    assert secs < 60 and rss < 1024 * 1024, (secs, rss)
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"weightbridge_spec": 1, "unmapped": "ignore", "layers": [
        {"name": "t", "type": "Custom", "weights": [{"name": "w", "from": "t99999"}]}]}))
    rc2, _, err2, csecs, crss = h.cli("convert", ok, "--spec", spec, "-o", tmp_path / "o.h5",
                                      "-q")
    assert rc2 == 0, err2
    over = tmp_path / "over.npz"
    over.write_bytes(h.tiny_members(100001))
    rc3, _, err3, osecs, orss = h.cli("inspect", over)
    assert rc3 == 2 and "100001 members" in err3, err3
    assert osecs < 5, osecs
    h.record("members_1e5", archive_bytes=ok.stat().st_size, inspect_seconds=round(secs, 2),
             inspect_maxrss_kib=rss, convert_seconds=round(csecs, 2), convert_maxrss_kib=crss,
             refuse_seconds=round(osecs, 3), refuse_maxrss_kib=orss)


def test_hundred_thousand_members_daemon(daemon, tmp_path):
    data = h.tiny_members(100000)
    t0 = time.monotonic()
    r = daemon.request("POST", "/v1/inspect", data, {"Content-Type": "application/zip"},
                       timeout=120)
    secs = time.monotonic() - t0
    assert r.status == 200 and r.json()["count"] == 100000
    r = daemon.request("POST", "/v1/inspect", h.tiny_members(100001),
                       {"Content-Type": "application/zip"})
    assert r.status == 422 and "100001 members" in r.json()["detail"]
    assert daemon.request("GET", "/livez").status == 200
    h.record("members_1e5", daemon_inspect_seconds=round(secs, 2))
