"""Helpers of the reliability suites: the binaries to test, a daemon that can
run under a wrapper (valgrind) or a sanitizer build and be SIGKILLed, raw
HTTP clients, hostile archive builders, and a figures file that the suites
fill with what they measured (docs/reliability.md quotes it).

Every daemon binds 127.0.0.1 with an ephemeral port (--port-file), is
stopped by its PID, and every wait here is bounded.
"""
import hashlib
import http.client
import io
import json
import os
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
import zlib

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from rawzip import deflate, raw_zip  # noqa: E402,F401  (tests/rawzip.py)

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("WB_BUILD", ROOT / "build"))
ASAN_BUILD = pathlib.Path(os.environ.get("WB_ASAN_BUILD", BUILD / "address"))
TSAN_BUILD = pathlib.Path(os.environ.get("WB_TSAN_BUILD", BUILD / "thread"))
SHIM = pathlib.Path(os.environ.get("WB_FAULT_SHIM", BUILD / "fault" / "libwbfault.so"))
FIGURES = pathlib.Path(os.environ.get("WB_FIGURES", BUILD / "reliability" / "figures.json"))

# Exit statuses of sanitizer reports, distinct from the daemon's own.
ASAN_EXIT, UBSAN_EXIT, TSAN_EXIT = 86, 87, 66

_fig_lock = threading.Lock()


def record(section, **values):
    """Merge measured figures into FIGURES under section."""
    with _fig_lock:
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
        data.setdefault(section, {}).update(values)
        FIGURES.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def wait_until(cond, timeout, what=None):
    """Poll cond() until it is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(what or "condition not met in %ss" % timeout)
        time.sleep(0.02)


def rss_kib(pid):
    """(VmRSS, VmHWM) of a process in KiB."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


# Runs argv[2:] and writes its exit status and max RSS to fd argv[1].  A
# small fresh interpreter does the fork: a child's max RSS counts the
# memory of whoever forked it until it execs, and the test process is large.
_MEASURE = (
    "import os,sys\n"
    "fd = int(sys.argv[1])\n"
    "os.set_inheritable(fd, False)\n"
    "pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)\n"
    "_, st, ru = os.wait4(pid, 0)\n"
    "os.write(fd, b'%d %d' % (os.waitstatus_to_exitcode(st), ru.ru_maxrss))\n")


def measured(cmd, timeout=120, stdin=None, env=None):
    """Run cmd; (returncode, stdout, stderr, seconds, its max RSS in KiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        r, w = os.pipe()
        t0 = time.monotonic()
        p = subprocess.Popen([sys.executable, "-I", "-S", "-c", _MEASURE, str(w)] +
                             [str(c) for c in cmd], stdin=stdin, stdout=out,
                             stderr=err, env=env, pass_fds=(w,))
        os.close(w)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            os.close(r)
            raise
        secs = time.monotonic() - t0
        res = os.read(r, 64).split()
        os.close(r)
        out.seek(0)
        err.seek(0)
        if len(res) != 2:
            raise AssertionError("measuring %s failed: %s" % (cmd[0], err.read()))
        return (int(res[0]), out.read().decode(errors="replace"),
                err.read().decode(errors="replace"), secs, int(res[1]))


# ---- HTTP ---------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)


def multipart(fields, boundary=None):
    """fields: [(name, filename or None, bytes)] -> (content type, body)."""
    b = boundary or uuid.uuid4().hex
    out = []
    for name, filename, data in fields:
        disp = f'form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out.append(f"--{b}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n")
    out.append(f"--{b}--\r\n".encode())
    return f"multipart/form-data; boundary={b}", b"".join(out)


class Daemon:
    """weightbridged from a given build, optionally under a wrapper command."""

    def __init__(self, workdir, args=(), build=None, wrapper=(), env=None,
                 spool=None, name="d"):
        self.dir = pathlib.Path(workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.spool = pathlib.Path(spool) if spool else self.dir / "spool"
        self.binary = str(pathlib.Path(build or BUILD) / "weightbridged")
        self.args = list(args)
        self.wrapper = list(wrapper)
        self.env = dict(os.environ)
        for k in ("JOURNAL_STREAM", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"):
            self.env.pop(k, None)
        self.env.update(env or {})
        self.proc = None
        self.port = None
        self.logfile = self.dir / "log"
        self.starts = 0

    def start(self, wait_ready=True, timeout=30, preexec_fn=None):
        portfile = self.dir / "port"
        if portfile.exists():
            portfile.unlink()
        log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            self.wrapper + [self.binary, "--listen", "127.0.0.1:0", "--spool", str(self.spool),
                            "--port-file", str(portfile)] + self.args,
            stdout=log, stderr=log, env=self.env, preexec_fn=preexec_fn)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if portfile.exists() and portfile.read_text().strip():
                self.port = int(portfile.read_text())
                break
            assert self.proc.poll() is None, self.logtext()[-4000:]
            time.sleep(0.01)
        else:
            raise AssertionError("daemon did not write its port file")
        while wait_ready and time.monotonic() < deadline:
            try:
                if self.request("GET", "/readyz", timeout=5).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.01)
        if wait_ready:
            raise AssertionError("daemon never became ready")
        return self

    def logtext(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def request(self, method, path, body=None, headers=None, timeout=30,
                source=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                       source_address=(source, 0) if source else None)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def submit(self, npz_bytes, spec, query="", headers=None, filename="model.npz",
               timeout=60, source=None):
        ct, body = multipart([("weights", filename, npz_bytes),
                              ("spec", None, json.dumps(spec).encode())])
        h = {"Content-Type": ct}
        h.update(headers or {})
        return self.request("POST", "/v1/jobs" + query, body, h, timeout=timeout,
                            source=source)

    def wait_final(self, job_id, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.request("GET", f"/v1/jobs/{job_id}?wait=10", timeout=30)
            if r.status != 200:
                raise AssertionError(f"GET job {job_id}: {r.status} {r.body[:300]}")
            j = r.json()
            if j["state"] in ("succeeded", "failed", "cancelled"):
                return j
        raise AssertionError(f"job {job_id} did not end in {timeout}s")

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise AssertionError("daemon did not stop in %ss" % timeout)


# ---- archives -----------------------------------------------------------------

def npy_bytes(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
    return buf.getvalue()


def npy_header(descr, shape, version=(1, 0)):
    """Only the .npy preamble and header of an array of that dtype/shape."""
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (
        descr, "(%s)" % "".join("%d, " % d for d in shape) if shape else "()")
    pre = 10 if version == (1, 0) else 12
    h += " " * ((63 - (pre + len(h)) % 64) % 64) + "\n"
    lenf = struct.pack("<H" if version == (1, 0) else "<I", len(h))
    return b"\x93NUMPY" + bytes(version) + lenf + h.encode("latin-1")


def deflate_zeros(header, nzeros, chunk=1 << 24):
    """Raw deflate of header + nzeros zero bytes, streamed; (stream, crc)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [co.compress(header)]
    crc = zlib.crc32(header)
    zero = bytes(min(chunk, nzeros))
    left = nzeros
    while left > 0:
        n = min(left, len(zero))
        parts.append(co.compress(zero[:n]))
        crc = zlib.crc32(zero[:n], crc)
        left -= n
    parts.append(co.flush())
    return b"".join(parts), crc & 0xFFFFFFFF


def tiny_members(n, name_fmt="t{}.npy"):
    """A stored zip of n one-byte uint8 tensors, written quickly by hand."""
    body = npy_bytes(np.zeros(1, np.uint8))
    crc = zlib.crc32(body) & 0xFFFFFFFF
    out = bytearray()
    central = bytearray()
    lh = struct.Struct("<IHHHHHIIIHH")
    ch = struct.Struct("<IHHHHHHIIIHHHHHII")
    for i in range(n):
        name = name_fmt.format(i).encode()
        off = len(out)
        out += lh.pack(0x04034B50, 20, 0, 0, 0, 0x5021, crc, len(body), len(body), len(name), 0)
        out += name + body
        central += ch.pack(0x02014B50, 0x0314, 20, 0, 0, 0, 0x5021, crc, len(body), len(body),
                           len(name), 0, 0, 0, 0, 0o100600 << 16, off)
        central += name
    cd_off = len(out)
    out += central
    if n >= 0xFFFF:
        e64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), cd_off)
        out += struct.pack("<IIQI", 0x07064B50, 0, e64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, len(central), cd_off, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), cd_off, 0)
    return bytes(out)


def savez(path, tensors, compressed=True):
    (np.savez_compressed if compressed else np.savez)(path, **tensors)
    return path


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cli(*args, build=None, timeout=300, env=None):
    return measured([str(pathlib.Path(build or BUILD) / "weightbridge"), *map(str, args)],
                    timeout=timeout, env=env)


def zip_names(data):
    return [i.filename for i in zipfile.ZipFile(io.BytesIO(data)).infolist()]


def slow_socket(port, head, body_chunks, delay, source="127.0.0.1", timeout=60):
    """Send head then body_chunks with delay seconds between them; return the
    first bytes of the answer (or b"" if the server hung up)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0))
    try:
        s.sendall(head)
        for c in body_chunks:
            time.sleep(delay)
            s.sendall(c)
        return s.recv(4096)
    except OSError:
        return b""
    finally:
        s.close()
