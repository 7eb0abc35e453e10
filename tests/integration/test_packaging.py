"""systemd units, `make install` and the Dockerfile agree with each other."""
import os
import re
import shutil
import subprocess

import pytest

from wbd import DAEMON

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_units_verify(tmp_path):
    unit = open(os.path.join(ROOT, "systemd", "weightbridged.service")).read()
    assert "Type=notify" in unit and "DynamicUser=yes" in unit and "StateDirectory=" in unit
    (tmp_path / "weightbridged.service").write_text(
        unit.replace("/usr/local/bin/weightbridged", os.path.abspath(DAEMON)))
    shutil.copy(os.path.join(ROOT, "systemd", "weightbridged.socket"), tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        str(tmp_path / "weightbridged.service"), str(tmp_path / "weightbridged.socket")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_install_tree_matches_dockerfile(tmp_path):
    build = os.path.relpath(os.path.dirname(os.path.abspath(DAEMON)), ROOT)
    dest = tmp_path / "staging"
    subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", "PREFIX=/usr/local", f"BUILD={build}"],
                   cwd=ROOT, check=True, timeout=600, capture_output=True)
    staged = {"/" + str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    docker = open(os.path.join(ROOT, "Dockerfile")).read()
    copied = set()
    for src, dst in re.findall(r"^COPY --from=build /staging(\S+) (\S+)$", docker, re.M):
        assert src == dst
        copied.add(src)
    assert staged == copied
    assert os.access(dest / "usr/local/bin/weightbridged", os.X_OK)


def test_dockerfile_shape():
    docker = open(os.path.join(ROOT, "Dockerfile")).read()
    froms = re.findall(r"^FROM (\S+)", docker, re.M)
    assert len(froms) == 2
    for image in froms:
        assert re.fullmatch(r"debian:bookworm-\d{8}-slim", image), image
    for needle in ("scripts/deps.sh", "make check", "make install DESTDIR=/staging PREFIX=/usr/local",
                   "VOLUME", 'CMD ["/usr/local/bin/weightbridged", "--healthcheck"]'):
        assert needle in docker, needle
    runtime = docker.split("\nFROM ", 2)[2]
    assert re.search(r"^USER (?!root)\S+", runtime, re.M)
    assert "curl" not in runtime
