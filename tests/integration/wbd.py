"""Helpers for testing the real weightbridged over loopback.

Each daemon runs on 127.0.0.1 with an ephemeral port (found through
--port-file) and a temporary spool, and is stopped by its PID.  Every wait
is bounded.
"""
import base64
import http.client
import json
import os
import signal
import subprocess
import time
import uuid

import numpy as np

BUILD = os.environ.get("WB_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
DAEMON = os.path.join(BUILD, "weightbridged")
CLI = os.path.join(BUILD, "weightbridge")

SPEC = {"weightbridge_spec": 1, "layers": [{"name": "fc", "type": "Dense", "from": "fc"}]}


def make_small(path):
    rng = np.random.default_rng(7)
    np.savez(path, **{"fc.weight": rng.standard_normal((4, 3)).astype(np.float32),
                      "fc.bias": rng.standard_normal(4).astype(np.float32)})
    return path


def make_slow(path, layers=48, n=2048):
    """A ~1 MB archive of zeros that takes seconds to convert (800 MB out)."""
    d = {}
    for i in range(layers):
        d[f"l{i}.weight"] = np.zeros((n, n), np.float32)
        d[f"l{i}.bias"] = np.zeros(n, np.float32)
    np.savez_compressed(path, **d)
    spec = {"weightbridge_spec": 1,
            "layers": [{"name": f"l{i}", "type": "Dense", "from": f"l{i}"} for i in range(layers)]}
    return path, spec


def make_medium(path, layers, n, seed):
    rng = np.random.default_rng(seed)
    d = {}
    for i in range(layers):
        d[f"l{i}.weight"] = rng.standard_normal((n, n)).astype(np.float32)
        d[f"l{i}.bias"] = rng.standard_normal(n).astype(np.float32)
    np.savez(path, **d)
    spec = {"weightbridge_spec": 1,
            "layers": [{"name": f"l{i}", "type": "Dense", "from": f"l{i}"} for i in range(layers)]}
    return path, spec


def multipart(fields):
    """fields: list of (name, filename or None, bytes). Returns (ctype, body)."""
    b = uuid.uuid4().hex
    out = []
    for name, filename, data in fields:
        disp = f'form-data; name="{name}"'
        if filename:
            disp += f'; filename="{filename}"'
        out.append(f"--{b}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n")
    out.append(f"--{b}--\r\n".encode())
    return f"multipart/form-data; boundary={b}", b"".join(out)


def b64url(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def problem(self):
        assert self.header("Content-Type") == "application/problem+json", (self.status, self.body)
        p = self.json()
        assert p["type"].startswith("https://weightbridge.dev/problems/")
        assert p["status"] == self.status and p["title"] and "detail" in p
        return p


class Daemon:
    def __init__(self, tmp, args=(), env=None, name="d"):
        self.dir = tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.spool = self.dir / "spool"
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.pop("JOURNAL_STREAM", None)
        self.env.pop("NOTIFY_SOCKET", None)
        self.env.update(env or {})
        self.proc = None
        self.port = None

    def start(self, wait_ready=True):
        portfile = self.dir / "port"
        if portfile.exists():
            portfile.unlink()
        self.log = open(self.dir / "log", "ab")
        self.proc = subprocess.Popen(
            [DAEMON, "--listen", "127.0.0.1:0", "--spool", str(self.spool),
             "--port-file", str(portfile)] + self.args,
            stdout=self.log, stderr=self.log, env=self.env)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if portfile.exists() and portfile.read_text().strip():
                self.port = int(portfile.read_text())
                break
            assert self.proc.poll() is None, self.logtext()
            time.sleep(0.02)
        else:
            raise AssertionError("daemon did not write its port file")
        if wait_ready:
            while time.monotonic() < deadline:
                if self.request("GET", "/readyz").status == 200:
                    return self
                time.sleep(0.02)
            raise AssertionError("daemon never became ready")
        return self

    def logtext(self):
        return (self.dir / "log").read_text(errors="replace")

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = headers or {}
            c.request(method, path, body=body, headers=h,
                      encode_chunked=h.get("Transfer-Encoding") == "chunked")
            r = c.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def submit(self, npz, spec, query="", headers=None, filename="model.npz"):
        ct, body = multipart([("weights", filename, open(npz, "rb").read()),
                              ("spec", None, json.dumps(spec).encode())])
        h = {"Content-Type": ct}
        h.update(headers or {})
        return self.request("POST", "/v1/jobs" + query, body, h)

    def wait_state(self, job_id, states, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            j = self.request("GET", f"/v1/jobs/{job_id}").json()
            if j["state"] in states:
                return j
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} never reached {states}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=10)
        self.log.close()
        return rc
