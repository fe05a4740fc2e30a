"""The workbook (modules/pat-rotator/monitoring.tf, azurerm_application_insights_workbook.this)
and its queries (infra/queries/workbook-targets.kql, workbook-superseded-in-use.kql):

* every query is parsed and bound by Kusto.Language over Application Insights' columns;
* evaluated by duckdb-kql on rows of exactly the documented log-line shapes, and on the
  lines the real binary prints when driven like the Functions host (PAT_LOG_FORMAT=json),
  the `kept_in_use` line of contract section 10 ("Usage") included.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import pytest

from conftest import INFRA, ROTATOR, expr, unq
from kql_harness import Emulators, Handler, analyse, console_rows, database, errors_of, free_port, require_binaries, run_query, utcnow

QUERIES = INFRA / "queries"
TARGETS_QUERY = QUERIES / "workbook-targets.kql"
IN_USE_QUERY = QUERIES / "workbook-superseded-in-use.kql"

TARGETS_COLUMNS = [
    "target:string", "last_run:datetime", "action:string", "reason:string", "code:string", "expires_at:datetime",
    "days_left:int", "failures_30d:long", "superseded_in_use:long", "in_use_token_prefixes:dynamic",
]
IN_USE_COLUMNS = ["target:string", "token_id_prefix:string", "last_used_day:datetime", "last_kept:datetime"]


# ---------------------------------------------------------------------------
# The resource
# ---------------------------------------------------------------------------


def test_workbook_shows_the_query_files(rotator):
    wb = rotator.resource("azurerm_application_insights_workbook", "this")
    assert expr(wb["data_json"]) == "jsonencode(local.workbook)"
    assert expr(wb["source_id"]) == "lower(azurerm_application_insights.this.id)", "azurerm wants a lower-case source id"
    assert unq(wb["category"]) == "workbook"
    assert expr(wb["name"]).startswith("uuidv5("), "a workbook's name is a GUID, stable across plans"
    workbook = rotator.locals()["workbook"]
    assert unq(workbook["version"]) == "Notebook/1.0"
    queries = {unq(i["name"]): i["content"] for i in workbook["items"] if i["type"] == 3}
    assert set(queries) == {"targets", "superseded-in-use"}
    files = {"targets": "workbook-targets.kql", "superseded-in-use": "workbook-superseded-in-use.kql"}
    for name, content in queries.items():
        assert unq(content["query"]) == '${file("${path.module}/../../queries/' + files[name] + '")}', content["query"]
        assert unq(content["resourceType"]) == "microsoft.insights/components" and content["queryType"] == 0
        assert unq(content["version"]) == "KqlItem/1.0"
    # every query file in queries/ named workbook-* is shown
    assert sorted(files.values()) == sorted(p.name for p in QUERIES.glob("workbook-*.kql"))


# ---------------------------------------------------------------------------
# Kusto.Language
# ---------------------------------------------------------------------------


def test_queries_parse_and_bind_with_kusto_language():
    rc, results = analyse([{"name": "targets", "text": TARGETS_QUERY.read_text()}, {"name": "in-use", "text": IN_USE_QUERY.read_text()}])
    for result in results:
        assert not errors_of(result), f"{result['name']}: {errors_of(result)}"
    assert rc == 0
    assert results[0]["columns"] == TARGETS_COLUMNS, results[0]["columns"]
    assert results[1]["columns"] == IN_USE_COLUMNS, results[1]["columns"]


def test_kusto_language_finds_errors_in_these_queries():
    rc, results = analyse([
        {"name": "column", "text": TARGETS_QUERY.read_text().replace("traces\n", "trace\n", 1)},
        {"name": "function", "text": IN_USE_QUERY.read_text().replace("todatetime(", "to_datetime(")},
    ])
    assert rc == 1
    assert all(errors_of(r) for r in results), results


# ---------------------------------------------------------------------------
# Rows of the documented shapes
# ---------------------------------------------------------------------------


def line(ts: str, level: str, message: str, **keys) -> str:
    """One JSON log line as PAT_LOG_FORMAT=json prints it (contract section 2)."""
    return json.dumps({"timestamp": ts, "level": level, "message": message, **keys, "invocation_id": keys.pop("invocation_id", "0d1e2f3a-0000-4000-8000-000000000001")})


def stream_of(level: str) -> str:
    return "stderr" if level in ("WARN", "ERROR") else "stdout"


def rows_from(lines: list[tuple[float, str]], now: dt.datetime) -> list[dict]:
    """(days_ago, json line) -> traces rows as the host writes them."""
    out = []
    for k, (days_ago, text) in enumerate(lines):
        level = json.loads(text)["level"] if text.startswith("{") else "INFO"
        (row,) = console_rows([(stream_of(level), text)], now - dt.timedelta(days=days_ago), start_s=0)
        row["id"] = f"l{k}"
        out.append(row)
    return out


def documented_rows(now: dt.datetime) -> list[dict]:
    exp_a = (now + dt.timedelta(days=40, hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    exp_old = (now + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    exp_b = (now - dt.timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    today = now.strftime("%Y-%m-%d")
    return rows_from([
        # analytics: rotated 2 days ago (expiring), then unchanged; a failure 10 days ago and one 40 days ago
        (40, line("t", "ERROR", "analytics: failed, error timeout: x", target="analytics", action="failed", reason="", code="timeout")),
        (10, line("t", "ERROR", "analytics: failed, error keyvault_forbidden: writing secret analytics-pat: 403", target="analytics", action="failed", reason="", code="keyvault_forbidden")),
        (3, line("t", "INFO", f"analytics: unchanged (fresh), token 0123456789ab…, expires {exp_old}", target="analytics", action="unchanged", reason="fresh")),
        (2, line("t", "INFO", f"analytics: rotated (expiring), token 0123456789ab…, expires {exp_a}, revoked 1", target="analytics", action="rotated", reason="expiring")),
        (1, line("t", "INFO", f"analytics: unchanged (fresh), token 0123456789ab…, expires {exp_a}", target="analytics", action="unchanged", reason="fresh")),
        # a dry run is no result
        (0.5, line("t", "INFO", "analytics: planned (forced)", target="analytics", action="planned", reason="forced")),
        # a superseded token of analytics kept in use, logged twice (two runs), and an older one no longer kept
        (1, line("t", "WARN", f"analytics: superseded token fedcba987654… kept: in use (last_used_day={today})", target="analytics", action="kept_in_use", token_id_prefix="fedcba987654")),
        (0.1, line("t", "WARN", f"analytics: superseded token fedcba987654… kept: in use (last_used_day={today})", target="analytics", action="kept_in_use", token_id_prefix="fedcba987654")),
        (6, line("t", "WARN", "analytics: superseded token aaaaaaaaaaaa… kept: in use (last_used_day=2020-01-01)", target="analytics", action="kept_in_use", token_id_prefix="aaaaaaaaaaaa")),
        # billing: expired credential, last run failed
        (1.5, line("t", "INFO", f"billing: unchanged (fresh), token 1111111111aa…, expires {exp_b}", target="billing", action="unchanged", reason="fresh")),
        (0.2, line("t", "ERROR", "billing: failed, error databricks_forbidden: the identity lacks token CAN_USE", target="billing", action="failed", reason="", code="databricks_forbidden")),
        # lines that are no outcome: a warning with a target but no action, a summary, a text-format line
        (0.2, line("t", "WARN", "billing: revoking token 2222… failed, retried next run", target="billing", reason="revoked_in_workspace")),
        (0.2, line("t", "ERROR", "RotatePat failed: 1 of 2 targets failed: billing (databricks_forbidden)", code="databricks_forbidden")),
        (0.2, "2026-12-03T03:00:01.500000Z  INFO RotatePat{invocation_id=3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162}: ghost: unchanged (fresh), token 8e34f8aba986…, expires 2027-03-04T18:49:24Z"),
    ], now)


def days_left(expires: dt.datetime, now: dt.datetime) -> int:
    return math.floor((expires - now) / dt.timedelta(days=1))


def test_targets_query_on_the_documented_lines():
    now = utcnow()
    rows = {r["target"]: r for r in run_query(database([], documented_rows(now)), TARGETS_QUERY.read_text())}
    assert sorted(rows) == ["analytics", "billing"], "one row per target with an outcome line; text lines are not read"
    a, b = rows["analytics"], rows["billing"]
    assert (a["action"], a["reason"], a["code"]) == ("unchanged", "fresh", ""), "the last result, not the dry run"
    assert a["expires_at"] == (now + dt.timedelta(days=40, hours=5)).replace(microsecond=0)
    assert a["days_left"] in (days_left(a["expires_at"], now), days_left(a["expires_at"], utcnow())) and a["days_left"] == 40
    assert a["failures_30d"] == 1, "the failure 40 days ago is outside the window"
    assert a["superseded_in_use"] == 1 and json.loads(a["in_use_token_prefixes"]) == ["fedcba987654"], "only recent kept_in_use lines, each credential once"
    assert (b["action"], b["reason"], b["code"]) == ("failed", "", "databricks_forbidden")
    assert b["days_left"] == -2, "expired 30 hours ago: -2 whole days"
    assert b["failures_30d"] == 1 and b["superseded_in_use"] == 0 and b["in_use_token_prefixes"] is None


def test_superseded_in_use_query_on_the_documented_kept_in_use_lines():
    """The kept_in_use WARN line of contract section 10 ("Usage"), of exactly the shape the
    Rust side prints: flat keys target, action = "kept_in_use", token_id_prefix, and a
    message containing last_used_day=YYYY-MM-DD."""
    now = utcnow()
    rows = run_query(database([], documented_rows(now)), IN_USE_QUERY.read_text())
    assert [(r["target"], r["token_id_prefix"]) for r in rows] == [("analytics", "fedcba987654")], rows
    (row,) = rows
    assert row["last_used_day"] == dt.datetime.combine(now.date(), dt.time())
    assert abs((row["last_kept"] - (now - dt.timedelta(days=0.1))).total_seconds()) < 1, "the latest of the two lines"
    # the same line on stderr is a Warning: the host's rule for a line containing "WARN"
    kept = [r for r in documented_rows(now) if '"kept_in_use"' in r["message"]]
    assert {r["severityLevel"] for r in kept} == {2}


# ---------------------------------------------------------------------------
# The real binary's output
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """analytics: created by a RotatePat that fails for broken, then unchanged; broken: failed
    twice (RotatePat, ProvisionPat). PAT_LOG_FORMAT=json, as infra/ sets it."""
    binary, emulators = require_binaries()
    tmp = tmp_path_factory.mktemp("workbook")
    emu = Emulators(emulators, tmp)
    handler = None
    try:
        env = dict(emu.env)
        analytics = {"name": "analytics", "workspace_url": env["DATABRICKS_HOST_0"], "key_vault_url": env["KEY_VAULT_URL_0"], "secret_name": "analytics-pat"}
        broken = {"name": "broken", "workspace_url": f"http://127.0.0.1:{free_port()}", "key_vault_url": env["KEY_VAULT_URL_0"], "secret_name": "broken-pat"}
        env.update(RUST_LOG="info", PAT_RETRY_ATTEMPTS="1", PAT_CALL_TIMEOUT_SECONDS="2", PAT_LOG_FORMAT="json", PAT_TARGETS=json.dumps([analytics, broken]))
        handler = Handler(binary, tmp, env)
        handler.start()
        assert handler.timer("3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162") == 500
        assert handler.provision("7c1d0e2f-3a4b-4c5d-8e6f-708192a3b4c5", {"target": "broken"}) == 502
        assert handler.timer("aa11bb22-cc33-4d44-8e55-ff6677889900") == 500
        handler.start(PAT_TARGETS=json.dumps([analytics]))
        assert handler.timer("bb11bb22-cc33-4d44-8e55-ff6677889901") == 200
        handler.stop()
    finally:
        if handler is not None and handler.proc is not None:
            handler.proc.kill()
        emu.close()
    return handler.printed


def outcome_lines(printed, target):
    out = []
    for _, text in printed:
        if text.startswith("{"):
            obj = json.loads(text)
            if obj.get("target") == target and obj.get("action") in ("created", "rotated", "unchanged", "reprovisioned", "failed"):
                out.append(obj)
    return out


def test_targets_query_on_the_real_handlers_output(real_run):
    now = utcnow()
    traces = console_rows(real_run, now)
    rows = {r["target"]: r for r in run_query(database([], traces), TARGETS_QUERY.read_text())}
    assert sorted(rows) == ["analytics", "broken"], rows
    # what the binary printed for each target, read here without KQL
    printed_a, printed_b = outcome_lines(real_run, "analytics"), outcome_lines(real_run, "broken")
    assert [o["action"] for o in printed_a] == ["created", "unchanged", "unchanged"], printed_a
    last = printed_a[-1]
    expires = dt.datetime.strptime(re.search(r", expires (\S+?Z)", last["message"]).group(1), "%Y-%m-%dT%H:%M:%SZ")
    a = rows["analytics"]
    assert (a["action"], a["reason"], a["code"]) == ("unchanged", "fresh", "")
    assert a["expires_at"] == expires
    assert a["days_left"] in (days_left(expires, now), days_left(expires, utcnow()))
    assert 88 <= a["days_left"] <= 90, "a new 90-day token"
    assert a["failures_30d"] == 0 and a["superseded_in_use"] == 0
    b = rows["broken"]
    assert len(printed_b) == 3 and all(o["action"] == "failed" for o in printed_b), printed_b
    assert (b["action"], b["code"]) == ("failed", "upstream_unavailable") and b["reason"] in ("", None)
    assert b["failures_30d"] == 3, "RotatePat twice and ProvisionPat once"
    assert b["expires_at"] is None and b["days_left"] is None


def test_superseded_in_use_query_on_the_real_handlers_output_without_usage(real_run):
    rows = run_query(database([], console_rows(real_run, utcnow())), IN_USE_QUERY.read_text())
    assert rows == [], "no target keeps a superseded credential here"


def test_superseded_in_use_on_the_real_handlers_output(tmp_path):
    """keep_while_used with no grace: a forced ProvisionPat supersedes the first token, which
    the verification right after its creation used today, so the post-write sweep keeps it
    (last_used_day today) and logs kept_in_use; both workbook queries must show it."""
    binary, emulators = require_binaries()
    emu = Emulators(emulators, tmp_path)
    handler = None
    try:
        env = dict(emu.env)
        target = {"name": "analytics", "workspace_url": env["DATABRICKS_HOST_0"], "key_vault_url": env["KEY_VAULT_URL_0"],
                  "secret_name": "analytics-pat", "revoke_grace_hours": 0, "keep_while_used": True}
        env.update(RUST_LOG="info", PAT_LOG_FORMAT="json", PAT_FORCE_COOLDOWN_MINUTES="0", PAT_TARGETS=json.dumps([target]))
        handler = Handler(binary, tmp_path, env)
        handler.start()
        assert handler.timer("3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162") == 200
        assert handler.provision("7c1d0e2f-3a4b-4c5d-8e6f-708192a3b4c5", {"target": "analytics", "force": True}) == 200
        assert handler.timer("aa11bb22-cc33-4d44-8e55-ff6677889900") == 200
        handler.stop()
    finally:
        if handler is not None and handler.proc is not None:
            handler.proc.kill()
        emu.close()
    kept = [json.loads(t) for _, t in handler.printed if t.startswith("{") and json.loads(t).get("action") == "kept_in_use"]
    assert kept, "the binary printed no kept_in_use line"
    assert all(k["level"] == "WARN" and k["target"] == "analytics" and re.search(r"last_used_day=\d{4}-\d{2}-\d{2}", k["message"]) for k in kept), kept
    con = database([], console_rows(handler.printed, utcnow()))
    rows = run_query(con, IN_USE_QUERY.read_text())
    assert [(r["target"], r["token_id_prefix"]) for r in rows] == [("analytics", kept[-1]["token_id_prefix"])], rows
    (summary,) = run_query(con, TARGETS_QUERY.read_text())
    assert summary["superseded_in_use"] == 1


# ---------------------------------------------------------------------------
# The KQL in use is the KQL listed (duckdb-kql evaluates every query)
# ---------------------------------------------------------------------------


def kql_words(text: str) -> tuple[set[str], set[str]]:
    """(functions called, tabular operators after a pipe) in a query, comments and strings
    left out."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'@"[^"]*"|"(?:[^"\\]|\\.)*"', '""', text)
    functions = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*\(", text)) - {"in"}
    operators = set(re.findall(r"\|\s*([a-z-]+)", text))
    return functions, operators


def test_the_queries_use_only_the_listed_kql():
    readme = (INFRA / "tests" / "kql" / "README.md").read_text().split("## The KQL these queries use", 1)[1]
    listed = set(re.findall(r"`([a-z_-]+)", readme))
    for path in [*QUERIES.glob("workbook-*.kql"), QUERIES / "failed-invocation-logs.kql"]:
        functions, operators = kql_words(path.read_text())
        assert functions, path
        assert not functions - listed, f"{path.name} calls {sorted(functions - listed)}, not listed in infra/tests/kql/README.md"
        assert not {o for o in operators if o != "order"} - listed, f"{path.name} uses {sorted(operators - listed)}"
