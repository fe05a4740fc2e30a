"""scripts/package.sh without a cargo build (--skip-build): the glibc gate and the zip
layout, with stand-in binaries (no Rust build, no zig needed)."""

from __future__ import annotations

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
        assert names == ["ProvisionPat/function.json", "RotatePat/function.json", "host.json", "pat-rotator"]
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
