"""kill -9 in a loop: uploads, conversions and result writes cut at random
points, a few dozen times, on one spool.

Each round restarts the daemon on the spool the last one left, checks that
no job a client was told about (202) was lost and that finished results
are byte-identical to the CLI's conversion of the same input (so no
temporary or partial file is ever served), starts clients uploading (some
slowly, in pieces), and kills the daemon with SIGKILL after a random
delay.  At the end every accepted job must have succeeded (interrupted
ones are run again), and the spool must hold no temporary file.
"""
import json
import random
import threading
import time

import numpy as np

import harness as h

ROUNDS = 30
SEED = 20261129


def make_inputs(d, cnn):
    """(npz bytes, spec, reference bytes): the CNN and three larger models
    whose upload, conversion and write each take a noticeable time."""
    out = [(cnn["npz"].read_bytes(), cnn["spec"], cnn["ref_bytes"])]
    for k, n in enumerate((320, 384, 448)):
        rng = np.random.default_rng(k)
        t = {}
        for i in range(4):
            t[f"l{i}.weight"] = rng.standard_normal((n, n)).astype(np.float32)
            t[f"l{i}.bias"] = rng.standard_normal(n).astype(np.float32)
        npz = d / f"m{k}.npz"
        h.savez(npz, t, compressed=k % 2 == 0)
        spec = {"weightbridge_spec": 1,
                "layers": [{"name": f"l{i}", "type": "Dense", "from": f"l{i}"} for i in range(4)]}
        specf = d / f"m{k}.json"
        specf.write_text(json.dumps(spec))
        ref = d / f"m{k}.h5"
        rc, _, err, _, _ = h.cli("convert", npz, "--spec", specf, "-o", ref, "-q")
        assert rc == 0, err
        out.append((npz.read_bytes(), spec, ref.read_bytes()))
    return out


class Clients:
    """Threads that submit jobs until told to stop (or the daemon dies),
    some in slow pieces; accepted ids go to self.accepted."""

    def __init__(self, d, inputs, rng, n=3):
        self.d, self.inputs = d, inputs
        self.accepted = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.in_flight = 0
        self.seeds = [rng.randrange(1 << 30) for _ in range(n)]
        self.threads = [threading.Thread(target=self.run, args=(s,), daemon=True)
                        for s in self.seeds]

    def run(self, seed):
        rng = random.Random(seed)
        while not self.stop.is_set():
            k = rng.randrange(len(self.inputs))
            npz, spec, _ = self.inputs[k]
            ct, body = h.multipart([("weights", "m.npz", npz),
                                    ("spec", None, json.dumps(spec).encode())])
            head = (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            # Half the uploads arrive in pieces, so kills land mid-upload.
            pieces = rng.choice([1, 1, 8, 32])
            step = max(1, len(body) // pieces)
            chunks = [body[i:i + step] for i in range(0, len(body), step)]
            with self.lock:
                self.in_flight += 1
            try:
                answer = h.slow_socket(self.d.port, head + chunks[0], chunks[1:],
                                       0.01 if pieces > 1 else 0, timeout=30)
            except ConnectionRefusedError:
                answer = b""    # killed before this connection
            finally:
                with self.lock:
                    self.in_flight -= 1
            if not answer:
                return          # killed
            status = answer.split(b" ", 2)[1] if b" " in answer else b""
            if status == b"202":
                body = answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""
                jid = json.loads(body)["id"] if body.startswith(b"{") else None
                if jid is None:
                    # The body came in a later packet: find it by the header.
                    loc = [ln for ln in answer.split(b"\r\n") if ln.lower().startswith(b"location:")]
                    jid = loc[0].split(b"/")[-1].strip().decode()
                with self.lock:
                    self.accepted[jid] = k
            elif status not in (b"429", b"503"):
                raise AssertionError("unexpected answer %r" % answer[:200])

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def test_kill9_loop(cnn, tmp_path):
    inputs = make_inputs(tmp_path, cnn)
    rng = random.Random(SEED)
    d = h.Daemon(tmp_path, ["--workers", "2", "--queue-size", "256"])
    accepted = {}           # job id -> input index, for every 202 a client saw
    verified = set()
    kill_states = {"queued": 0, "running": 0, "uploads_in_flight": 0}
    t0 = time.monotonic()
    for rnd in range(ROUNDS):
        d.start(timeout=60)
        # Nothing a client was told about is lost; finished results are
        # whole, never a temporary.
        states = {}
        for jid, k in accepted.items():
            r = d.request("GET", f"/v1/jobs/{jid}")
            assert r.status == 200, (rnd, jid, r.status, r.body[:200])
            states[jid] = r.json()["state"]
            assert states[jid] in ("queued", "running", "succeeded"), (jid, r.json())
        recheck = rng.sample(sorted(verified), min(3, len(verified)))
        for jid in [j for j, s in states.items() if s == "succeeded" and j not in verified] + recheck:
            res = d.request("GET", f"/v1/jobs/{jid}/result")
            assert res.status == 200 and res.body == inputs[accepted[jid]][2], (rnd, jid)
            verified.add(jid)
        with Clients(d, inputs, rng) as c:
            time.sleep(rng.uniform(0.05, 0.9))
            try:
                listing = d.request("GET", "/v1/jobs?limit=100", timeout=5).json()["jobs"]
                for j in listing:
                    if j["state"] in ("queued", "running"):
                        kill_states[j["state"]] += 1
            except (OSError, ValueError):
                pass
            kill_states["uploads_in_flight"] += c.in_flight
            d.kill9()
        accepted.update(c.accepted)
    # The last start: everything accepted ends, and ends well.
    d.start(timeout=60)
    for jid, k in accepted.items():
        j = d.wait_final(jid, timeout=300)
        assert j["state"] == "succeeded", j
        res = d.request("GET", f"/v1/jobs/{jid}/result")
        assert res.status == 200 and res.body == inputs[k][2], jid
    assert d.stop() == 0, d.logtext()[-3000:]
    left = sorted(str(p.relative_to(d.spool)) for p in d.spool.rglob("*")
                  if p.is_file() and (".tmp" in p.name or p.name.startswith("upload-")))
    assert left == [] and list((d.spool / "tmp").iterdir()) == []
    assert len(accepted) >= ROUNDS, len(accepted)
    h.record("crash_loop", rounds=ROUNDS, kills=ROUNDS, jobs_accepted=len(accepted),
             jobs_verified=len(accepted), seconds=round(time.monotonic() - t0, 1),
             at_kill_jobs_queued=kill_states["queued"], at_kill_jobs_running=kill_states["running"],
             at_kill_uploads_in_flight=kill_states["uploads_in_flight"])
