"""What the KQL tests share (test_kql_query.py: the failed-invocation query; test_workbook.py:
the workbook's queries):

* Kusto.Language (Microsoft's KQL parser and binder, npm @kusto/language-service-next, run
  by kql/check_kql.js) over Application Insights' columns;
* duckdb-kql (KQL executed on an embedded DuckDB) over `requests` / `traces` rows shaped as
  the Functions host writes them (kql/README.md);
* the real binary driven like the host: `pat-rotator serve` next to the bundled emulators,
  invocations sent as the host sends them, every printed line turned into a `traces` row by
  the host's rules.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO

KQL = Path(__file__).resolve().parent / "kql"

STDOUT, STDERR = "stdout", "stderr"


# ---------------------------------------------------------------------------
# Kusto.Language
# ---------------------------------------------------------------------------


def kusto_dir() -> Path | None:
    for candidate in (
        os.environ.get("KUSTO_LANGUAGE_SERVICE_DIR", ""),
        str(REPO / ".venv-kql" / "node_modules" / "@kusto" / "language-service-next"),
    ):
        if candidate and (Path(candidate) / "Kusto.Language.Bridge.min.js").is_file():
            return Path(candidate)
    return None


def analyse(queries: list[dict]) -> tuple[int, list[dict]]:
    """Parse and bind each {"name", "text"}; returns the exit code and, per query, its
    diagnostics and result columns (name:type)."""
    directory = kusto_dir()
    node = shutil.which("node")
    if directory is None or node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Kusto.Language (npm @kusto/language-service-next) or node is missing; scripts/check-infra.sh installs it")
        pytest.skip("skipped: Kusto.Language not installed (scripts/check-infra.sh installs it into .venv-kql)")
    proc = subprocess.run([node, str(KQL / "check_kql.js"), str(directory)], input=json.dumps(queries), capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def errors_of(result: dict) -> list[dict]:
    return [d for d in result["diagnostics"] if d["severity"] == "Error"]


# ---------------------------------------------------------------------------
# duckdb-kql over host-shaped rows
# ---------------------------------------------------------------------------


def duckdb_kql():
    if os.environ.get("CI") == "true":
        return __import__("duckdb_kql")
    return pytest.importorskip("duckdb_kql")


def host_severity(stream: str, line: str) -> int:
    """The host's rule (kql/README.md, WorkerProcess.cs:120-148 and 198-204): stdout
    Information (1); stderr Warning (2) when the line contains "warn", else Error (3)."""
    if stream == STDOUT:
        return 1
    return 2 if "warn" in line.lower() else 3


def console_dimensions(severity: int, category: str = "Host.Function.Console") -> dict:
    level = {1: "Information", 2: "Warning", 3: "Error"}[severity]
    return {"Category": category, "LogLevel": level, "ProcessId": "57", "HostInstanceId": "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"}


def database(requests: list[dict], traces: list[dict]):
    con = duckdb_kql().connect()
    con.sql("CREATE TABLE requests(timestamp TIMESTAMP, name VARCHAR, success BOOLEAN, resultCode VARCHAR, customDimensions JSON, operation_Id VARCHAR, operation_Name VARCHAR)")
    con.sql("CREATE TABLE traces(timestamp TIMESTAMP, message VARCHAR, severityLevel INTEGER, customDimensions JSON, operation_Id VARCHAR, operation_Name VARCHAR, row_id VARCHAR)")
    for r in requests:
        con.execute(
            "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?)",
            [r["timestamp"], r["name"], r["success"], r["resultCode"], json.dumps(r["customDimensions"]), r.get("operation_Id", ""), r["name"]],
        )
    for t in traces:
        con.execute(
            "INSERT INTO traces VALUES (?, ?, ?, ?, ?, ?, ?)",
            [t["timestamp"], t["message"], t["severityLevel"], json.dumps(t["customDimensions"]), t.get("operation_Id", ""), t.get("operation_Name", ""), t.get("id", "")],
        )
    return con


def run_query(con, text: str) -> list[dict]:
    rel = duckdb_kql().kql(con, text)
    names = [d[0] for d in rel.description]
    return [dict(zip(names, row)) for row in rel.fetchall()]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def console_rows(lines: list[tuple[str, str]], now: dt.datetime, spacing_s: float = 0.01, start_s: float = 60) -> list[dict]:
    """(stream, line) as printed, oldest first -> traces rows by the host's rules."""
    rows = []
    for k, (stream, line) in enumerate(lines, start=1):
        sev = host_severity(stream, line)
        rows.append({"timestamp": now - dt.timedelta(seconds=start_s - k * spacing_s), "message": line, "severityLevel": sev,
                     "customDimensions": console_dimensions(sev), "id": f"{stream}-{k}"})
    return rows


# ---------------------------------------------------------------------------
# The real binary, driven like the host
# ---------------------------------------------------------------------------


def built(name: str) -> Path | None:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    path = target / "debug" / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def require_binaries() -> tuple[Path, Path]:
    binary, emulators = built("pat-rotator"), built("pat-rotator-emulators")
    if binary is None or emulators is None:
        pytest.skip("skipped: no debug build of pat-rotator and pat-rotator-emulators (cargo build --workspace --bins)")
    return binary, emulators


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes, headers: dict) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


TIMER_BODY = json.dumps({"Data": {"timer": {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": None, "IsPastDue": False}},
                         "Metadata": {"sys": {"MethodName": "RotatePat", "UtcNow": "2026-12-03T03:00:00Z"}}}).encode()


@dataclass
class Handler:
    """One `pat-rotator serve` at a time next to one set of emulators; every line it prints
    is collected in order, per stream."""

    binary: Path
    workdir: Path
    env: dict
    proc: subprocess.Popen | None = None
    base: str = ""
    printed: list[tuple[str, str]] = field(default_factory=list)

    def start(self, **overrides):
        self.stop()
        env = dict(self.env, **overrides)
        env["FUNCTIONS_CUSTOMHANDLER_PORT"] = str(free_port())
        self._out = open(self.workdir / "stdout", "w")
        self._err = open(self.workdir / "stderr", "w")
        self.proc = subprocess.Popen([str(self.binary), "serve"], env=env, stdout=self._out, stderr=self._err)
        self.base = f"http://127.0.0.1:{env['FUNCTIONS_CUSTOMHANDLER_PORT']}"
        for _ in range(500):
            try:
                urllib.request.urlopen(self.base + "/", timeout=1)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.02)
        pytest.fail("the handler did not answer GET /")

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._out.close()
        self._err.close()
        # stdout first, then stderr, each in order: the host reads them separately
        for stream in (STDOUT, STDERR):
            self.printed.extend((stream, line) for line in (self.workdir / stream).read_text().splitlines())
        self.proc = None

    def timer(self, invocation_id: str) -> int:
        return post(self.base + "/RotatePat", TIMER_BODY,
                    {"Content-Type": "application/json; charset=utf-8", "X-Azure-Functions-InvocationId": invocation_id})

    def provision(self, invocation_id: str, body: dict) -> int:
        return post(self.base + "/api/ProvisionPat", json.dumps(body).encode(),
                    {"Content-Type": "application/json", "X-Azure-Functions-InvocationId": invocation_id})


class Emulators:
    """The bundled Databricks / Key Vault / identity emulators (one workspace, one vault)."""

    def __init__(self, emulators: Path, workdir: Path):
        self.workdir = workdir
        self.log_path = workdir / "emu.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(emulators), "--dir", str(workdir / "emu"), "--workspaces", "1", "--vaults", "1", "--exit-on-stdin-eof"],
                                     stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT)
        for _ in range(400):
            if "emulators ready" in self.log_path.read_text():
                break
            time.sleep(0.05)
        else:
            self.close()
            pytest.fail(self.log_path.read_text())
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir)}
        for key, value in re.findall(r"^export ([A-Z0-9_]+)=(.*)$", (workdir / "emu" / "env.sh").read_text(), re.M):
            self.env[key] = value.strip("'\"")

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
