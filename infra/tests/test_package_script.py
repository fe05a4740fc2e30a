"""scripts/package.sh without a cargo build (--skip-build): the glibc gate and the zip
layout, with stand-in binaries (no Rust build, no zig needed)."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "package.sh"
pytestmark = pytest.mark.skipif(shutil.which("objdump") is None and shutil.which("readelf") is None, reason="needs binutils")


def static_exit0_elf() -> bytes:
    """A minimal statically linked x86-64 ELF executable that exits 0 (no glibc)."""
    code = bytes([0x31, 0xFF, 0xB8, 0x3C, 0, 0, 0, 0x0F, 0x05])  # xor edi,edi; mov eax,60; syscall
    ehsize, phsize, base = 64, 56, 0x400000
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    header += struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, base + ehsize + phsize, ehsize, 0, 0, ehsize, phsize, 1, 0, 0, 0)
    total = ehsize + phsize + len(code)
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000)
    return header + program + code


def package(tmp_path: Path, binary: bytes):
    target_dir = tmp_path / "target"
    release = target_dir / "x86_64-unknown-linux-gnu" / "release"
    release.mkdir(parents=True)
    (release / "pat-rotator").write_bytes(binary)
    (release / "pat-rotator").chmod(0o755)
    out = tmp_path / "dist" / "pat-rotator.zip"
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    proc = subprocess.run(["bash", str(SCRIPT), "--skip-build", "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    return proc, out


def test_zip_layout_and_report(tmp_path):
    proc, out = package(tmp_path, static_exit0_elf())
    assert proc.returncode == 0, proc.stderr
    assert "required glibc: none" in proc.stdout
    assert "zip size:" in proc.stdout
    with zipfile.ZipFile(out) as zf:
        names = sorted(zf.namelist())
        assert names == ["ProvisionPat/function.json", "RotatePat/function.json", "SecretEvent/function.json", "Status/function.json", "host.json", "pat-rotator"]
        assert (zf.getinfo("pat-rotator").external_attr >> 16) & 0o777 == 0o755
        assert zf.read("host.json") == (REPO / "host.json").read_bytes()


def test_zip_is_reproducible(tmp_path):
    first, out1 = package(tmp_path / "a", static_exit0_elf())
    second, out2 = package(tmp_path / "b", static_exit0_elf())
    assert first.returncode == 0 and second.returncode == 0
    assert out1.read_bytes() == out2.read_bytes()


def test_rejects_a_binary_needing_a_newer_glibc(tmp_path):
    true_bin = Path("/bin/true")
    if not true_bin.exists() or shutil.which("objdump") is None:
        pytest.skip("needs /bin/true and objdump")
    symbols = subprocess.run(["objdump", "-T", str(true_bin)], capture_output=True, text=True).stdout
    versions = sorted({v for v in __import__("re").findall(r"GLIBC_([0-9.]+)", symbols)}, key=lambda v: tuple(map(int, v.split("."))))
    if not versions or tuple(map(int, versions[-1].split("."))) <= (2, 28):
        pytest.skip("this machine's /bin/true does not need a glibc newer than 2.28")
    proc, out = package(tmp_path, true_bin.read_bytes())
    assert proc.returncode == 1
    assert f"needs GLIBC_{versions[-1]}, newer than the allowed 2.28" in proc.stderr
    assert not out.exists()


def test_rejects_a_non_elf_file(tmp_path):
    proc, out = package(tmp_path, b"#!/bin/sh\nexit 0\n")
    assert proc.returncode == 1
    assert "not an ELF file" in proc.stderr


# ---------------------------------------------------------------------------
# The binary: no build paths, and two whole builds give the same zip
# ---------------------------------------------------------------------------


def build_paths() -> list[bytes]:
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    return [str(p).encode() for p in {REPO, home, REPO / "target", Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))}]


def test_release_binary_carries_no_build_path():
    """What package.sh built last (it remaps the checkout, the cargo home and the target
    directory). Skipped when no release build exists here; the opt-in test below builds."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "x86_64-unknown-linux-gnu" / "release" / "pat-rotator"
    if not binary.is_file():
        pytest.skip("skipped: no release build (scripts/package.sh) in this checkout")
    data = binary.read_bytes()
    leaked = [p.decode() for p in build_paths() if p in data]
    assert not leaked, f"{binary} contains build paths {leaked}"
    assert b"/cargo/registry/src/" in data or b"/build/" in data, "expected remapped source paths (panic locations)"


def test_package_script_remaps_every_build_path():
    text = SCRIPT.read_text()
    for needle in ('"$repo_root=/build/pat-rotator"', '"$cargo_home=/cargo"', '"$target_dir=/build/target"',
                   "--remap-path-prefix=$m", "-ffile-prefix-map=$m", "CARGO_ENCODED_RUSTFLAGS", "SOURCE_DATE_EPOCH"):
        assert needle in text, needle


@pytest.mark.skipif(os.environ.get("PAT_ROTATOR_REPRO_TEST") != "1",
                    reason="skipped: opt-in (PAT_ROTATOR_REPRO_TEST=1): two fat-LTO release builds take tens of minutes on 2 cores")
def test_two_builds_in_different_places_give_the_same_sha256(tmp_path):
    """The release claim, end to end: the same commit checked out at two different paths
    (different lengths), each with its own target directory, packaged by package.sh with the
    same SOURCE_DATE_EPOCH, gives byte-identical zips."""
    shas = []
    for name in ("a", "checkout-number-two"):
        dest = tmp_path / name / "pat-rotator"
        dest.parent.mkdir()
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(dest), "HEAD"], check=True, capture_output=True)
        try:
            env = dict(os.environ, CARGO_TARGET_DIR=str(dest / "target"), SOURCE_DATE_EPOCH="1700000000", PACKAGE_NICE="0")
            env.pop("RUSTFLAGS", None)
            out = tmp_path / f"{name}.zip"
            proc = subprocess.run(["bash", str(dest / "scripts" / "package.sh"), "--out", str(out)], env=env, capture_output=True, text=True, timeout=7200)
            assert proc.returncode == 0, proc.stderr[-3000:]
            shas.append(hashlib.sha256(out.read_bytes()).hexdigest())
            data = (dest / "target" / "x86_64-unknown-linux-gnu" / "release" / "pat-rotator").read_bytes()
            assert str(dest).encode() not in data, "the checkout path leaked into the binary"
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(dest)], capture_output=True)
    assert shas[0] == shas[1], shas
