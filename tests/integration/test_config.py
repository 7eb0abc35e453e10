"""The settings table as users meet it: --help, --check-config, env, file."""
import os
import subprocess

from wbd import DAEMON


def run(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([DAEMON, *args], capture_output=True, text=True, timeout=10, env=e)


def test_help_lists_every_setting():
    r = run("--help")
    assert r.returncode == 0
    for flag in ("--listen", "--spool", "--workers", "--queue-size", "--upload-limit", "--ttl",
                 "--connection-timeout", "--connection-limit", "--tokens-file", "--tls-cert",
                 "--port-file", "WEIGHTBRIDGED_QUEUE_SIZE"):
        assert flag in r.stdout, flag


def test_check_config_precedence(tmp_path):
    conf = tmp_path / "wb.conf"
    conf.write_text("# test\nqueue-size = 7\nworkers = 2\nttl = 100\n")
    r = run("--config", str(conf), "--workers", "3", "--check-config",
            env={"WEIGHTBRIDGED_TTL": "200"})
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(" = ", 1) for line in r.stdout.splitlines())
    assert lines["queue-size"] == "7"      # file
    assert lines["ttl"] == "200"           # env beats file
    assert lines["workers"] == "3"         # flag beats env and file
    assert lines["listen"] == "127.0.0.1:8080"


def test_bad_settings_exit_2():
    r = run("--queue-size", "0", "--check-config")
    assert r.returncode == 2 and "--queue-size" in r.stderr
    r = run("--no-such-flag")
    assert r.returncode == 2 and "unknown option" in r.stderr
    r = run("--check-config", env={"WEIGHTBRIDGED_UPLOAD_LIMIT": "lots"})
    assert r.returncode == 2 and "WEIGHTBRIDGED_UPLOAD_LIMIT" in r.stderr
    r = run("--check-config", "--tls-cert", "/nonexistent")
    assert r.returncode == 2
    r = run("--check-config", "--tokens-file", "/nonexistent")
    assert r.returncode == 2


def test_ipv6_listen_and_healthcheck(tmp_path):
    import socket
    import time
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        import pytest
        pytest.skip("no IPv6 loopback")
    port = tmp_path / "port"
    p = subprocess.Popen([DAEMON, "--listen", "[::1]:0", "--spool", str(tmp_path / "s"),
                          "--port-file", str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (port.exists() and port.read_text().strip()):
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.02)
        r = run("--healthcheck", "--listen", "[::1]:" + port.read_text().strip())
        assert r.returncode == 0
        r = run("--healthcheck", "--listen", "[::1]:0", "--port-file", str(port))
        assert r.returncode == 0
    finally:
        p.terminate()
        assert p.wait(timeout=30) == 0
    r = run("--healthcheck", "--listen", "127.0.0.1:1")
    assert r.returncode == 1
