"""infra/queries/failed-invocation-logs.kql: from a failed invocation's `requests` row to the
handler's own log lines in `traces`.

* parsed and analysed by Kusto.Language (Microsoft's KQL parser and binder, npm
  @kusto/language-service-next, run by kql/check_kql.js) over Application Insights' columns,
  together with the alert queries of modules/pat-rotator/monitoring.tf;
* evaluated by duckdb-kql (KQL executed on an embedded DuckDB) over rows shaped as the
  Functions host writes them (kql/appinsights-rows.json, derived in kql/README.md), and over
  the lines the real binary prints when driven like the host.

The parser lives where scripts/check-infra.sh installs it (.venv-kql, or
KUSTO_LANGUAGE_SERVICE_DIR); without it the parser tests skip, except under CI=true.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from conftest import INFRA, ROTATOR, Module, first, unq
from kql_harness import (
    KQL, STDERR, STDOUT, Emulators, Handler, analyse, console_dimensions, database, free_port, host_severity,
    require_binaries, run_query, utcnow,
)

QUERY = INFRA / "queries" / "failed-invocation-logs.kql"
ROWS = json.loads((KQL / "appinsights-rows.json").read_text())


def alert_queries() -> list[dict]:
    """The alerts' KQL, with the Terraform interpolation replaced by a value it can take."""
    out = []
    for name, alert in Module(ROTATOR).resources("azurerm_monitor_scheduled_query_rules_alert_v2").items():
        text = unq(str(first(alert["criteria"])["query"]))
        heredoc = re.fullmatch(r"<<-?(\w+)\n(.*)\n\s*\1", text, re.S)  # python-hcl2 keeps the heredoc markers
        text = heredoc.group(2) if heredoc else text
        text = text.replace("${var.alert_no_success_hours}", "26")
        assert "${" not in text, text
        out.append({"name": f"alert {name}", "text": text.replace("\\n", "\n")})
    assert len(out) == 2
    return out


def test_query_parses_and_binds_with_kusto_language():
    rc, results = analyse([{"name": "failed-invocation-logs", "text": QUERY.read_text()}, *alert_queries()])
    for result in results:
        errors = [d for d in result["diagnostics"] if d["severity"] == "Error"]
        assert not errors, f"{result['name']}: {errors}"
    assert rc == 0
    columns = results[0]["columns"]
    assert columns == [
        "failed_at:datetime", "function:string", "resultCode:string", "invocation_id:string", "timestamp:datetime",
        "severityLevel:int", "target:string", "code:string", "action:string", "text:string",
    ], columns


def test_kusto_language_reports_what_is_wrong():
    """The parser check can fail: a misspelt column, a syntax error, a type error."""
    rc, results = analyse([
        {"name": "misspelt", "text": QUERY.read_text().replace("customDimensions.InvocationId", "customDimension.InvocationId")},
        {"name": "syntax", "text": "requests | where success == false |"},
        {"name": "type", "text": "traces | where severityLevel == 'x' and message > 3"},
    ])
    assert rc == 1
    codes = {r["name"]: [d["code"] for d in r["diagnostics"] if d["severity"] == "Error"] for r in results}
    assert codes["misspelt"] and codes["syntax"] and codes["type"], codes


# ---------------------------------------------------------------------------
# Evaluation on host-shaped rows
# ---------------------------------------------------------------------------


def query(con, text: str | None = None) -> list[dict]:
    return run_query(con, text or QUERY.read_text())


def fixture_rows(now: dt.datetime):
    requests = [dict(r, timestamp=now - dt.timedelta(minutes=r["minutes_ago"])) for r in ROWS["requests"]]
    traces = []
    for t in ROWS["traces"]:
        row = dict(t, timestamp=now - dt.timedelta(minutes=t["minutes_ago"]))
        if not t.get("host_row"):
            row["severityLevel"] = host_severity(t["stream"], t["message"])
            row["customDimensions"] = console_dimensions(row["severityLevel"])
            row["operation_Id"] = ""
        traces.append(row)
    return requests, traces


def test_fixture_rows_follow_the_hosts_rules():
    # every console line of the fixtures is one pat-rotator prints: text lines carry
    # `invocation_id=` inside the RotatePat span, json lines are flat objects with the
    # contract's keys (section 2, PAT_LOG_FORMAT)
    keys = {"timestamp", "level", "message", "target", "action", "reason", "code", "token_id_prefix", "invocation_id"}
    for t in ROWS["traces"]:
        if t.get("host_row"):
            continue
        if t["message"].startswith("{"):
            obj = json.loads(t["message"])
            assert set(obj) <= keys and {"timestamp", "level", "message"} <= set(obj), t["id"]
            assert (t["stream"] == STDERR) == (obj["level"] in ("WARN", "ERROR")), t["id"]
        else:
            level = t["message"].split()[1]
            assert (t["stream"] == STDERR) == (level in ("WARN", "ERROR")), t["id"]
    for r in ROWS["requests"]:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", r["customDimensions"]["InvocationId"])
        assert r["customDimensions"]["Category"] == "Host.Results"
        assert r["resultCode"] == "0" if r["name"] == "RotatePat" else r["resultCode"].isdigit()


def test_query_returns_exactly_the_failed_invocations_lines():
    con = database(*fixture_rows(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))
    rows = query(con)
    by_text = {t["message"]: t["id"] for t in ROWS["traces"]}
    got = []
    for row in rows:
        # text lines come back whole, json lines as their "message" value
        match = [i for m, i in by_text.items() if m == row["text"] or (m.startswith("{") and json.loads(m)["message"] == row["text"])]
        assert len(match) == 1, row
        got.append(match[0])
    assert got == ROWS["expected"], got
    json_error = next(r for r in rows if r["code"] == "databricks_forbidden")
    assert json_error["function"] == "ProvisionPat" and json_error["resultCode"] == "502" and json_error["target"] == "analytics"
    assert json_error["severityLevel"] == 3
    warn = next(r for r in rows if r["target"] == "finance")
    assert warn["severityLevel"] == 2, "a stderr line saying WARN is a Warning"
    assert {r["function"] for r in rows} == {"RotatePat", "ProvisionPat"}


def test_query_does_not_depend_on_the_hosts_log_category():
    """The join on the invocation id is what ties a line to its invocation: the query reads
    no customDimensions.Category (Host.Function.Console is the host's internal category, not
    documented, and may change). The same lines under another category are found alike; the
    host's own rows of the invocation (which carry its InvocationId, but not as the
    handler's invocation_id) are still not returned."""
    assert "Host.Function.Console" not in QUERY.read_text().split("let lookback")[1]
    assert "Category" not in QUERY.read_text().split("let lookback")[1]
    now = utcnow()
    requests, traces = fixture_rows(now)
    expected = query(database(requests, traces))
    for category in ("Function.RotatePat.User", "Worker.Console", ""):
        moved = [dict(t, customDimensions=dict(t["customDimensions"], Category=category)) if not t.get("host_row") else t for t in traces]
        assert query(database(requests, moved)) == expected, category
    assert not any(r["text"].startswith("Executing 'Functions.") for r in expected)


def test_query_can_be_pinned_to_one_invocation():
    con = database(*fixture_rows(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))
    pinned = QUERY.read_text().replace('let invocation = "";', 'let invocation = "b7e8f901-2a3b-4c4d-9e5f-60718293a4b5";')
    assert pinned != QUERY.read_text()
    rows = query(con, pinned)
    assert [r["code"] for r in rows] == ["", "identity_unavailable"], rows
    assert {r["invocation_id"] for r in rows} == {"b7e8f901-2a3b-4c4d-9e5f-60718293a4b5"}


def test_operation_id_would_have_found_nothing():
    """The premise, on the same rows: joining on operation_Id (what the alert text used to
    say) finds none of the handler's lines."""
    con = database(*fixture_rows(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))
    by_operation = """
        requests | where success == false | project operation_Id
        | join kind=inner (traces | where tostring(customDimensions.Category) == "Host.Function.Console") on operation_Id
    """
    assert query(con, by_operation) == []


# ---------------------------------------------------------------------------
# The real binary's output
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_query_on_the_real_handlers_output(tmp_path, log_format):
    binary, emulators = require_binaries()
    emu = Emulators(emulators, tmp_path)
    handler = None
    try:
        env = dict(emu.env)
        dead = free_port()  # nothing listens there: that target fails with upstream_unavailable
        env["PAT_TARGETS"] = json.dumps([
            {"name": "analytics", "workspace_url": env["DATABRICKS_HOST_0"], "key_vault_url": env["KEY_VAULT_URL_0"], "secret_name": "analytics-pat"},
            {"name": "broken", "workspace_url": f"http://127.0.0.1:{dead}", "key_vault_url": env["KEY_VAULT_URL_0"], "secret_name": "broken-pat"},
        ])
        env.update(RUST_LOG="info", PAT_RETRY_ATTEMPTS="1", PAT_CALL_TIMEOUT_SECONDS="2", PAT_LOG_FORMAT=log_format)
        handler = Handler(binary, tmp_path, env)
        failed_id, ok_id = "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162", "aa11bb22-cc33-4d44-8e55-ff6677889900"
        provision_id = "7c1d0e2f-3a4b-4c5d-8e6f-708192a3b4c5"
        handler.start()
        assert handler.timer(failed_id) == 500
        # a forwarded ProvisionPat that fails (the host records it with resultCode 502)
        provision_status = handler.provision(provision_id, {"target": "broken"})
        assert provision_status == 502
        handler.start(PAT_TARGETS=json.dumps([json.loads(env["PAT_TARGETS"])[0]]))
        assert handler.timer(ok_id) == 200
        handler.stop()
    finally:
        if handler is not None and handler.proc is not None:
            handler.proc.kill()
        emu.close()

    # Every printed line becomes a traces row by the host's rules; the two invocations become
    # requests rows as the host records a timer invocation.
    now = utcnow()
    traces = []
    for k, (stream, line) in enumerate(handler.printed, start=1):
        sev = host_severity(stream, line)
        traces.append({"timestamp": now - dt.timedelta(seconds=60 - k / 100), "message": line, "severityLevel": sev,
                       "customDimensions": console_dimensions(sev), "id": f"{stream}-{k}"})
    requests = [
        {"timestamp": now - dt.timedelta(seconds=62), "name": "RotatePat", "success": False, "resultCode": "0", "customDimensions": {"InvocationId": failed_id}},
        {"timestamp": now - dt.timedelta(seconds=61), "name": "ProvisionPat", "success": True, "resultCode": str(provision_status), "customDimensions": {"InvocationId": provision_id}},
        {"timestamp": now - dt.timedelta(seconds=59), "name": "RotatePat", "success": True, "resultCode": "0", "customDimensions": {"InvocationId": ok_id}},
    ]
    rows = query(database(requests, traces))
    printed_for_failed = [t for t in traces if failed_id in t["message"]]
    assert printed_for_failed, "the binary printed no line naming the failed invocation"
    returned = {r["invocation_id"] for r in rows}
    assert failed_id in returned and ok_id not in returned
    assert len([r for r in rows if r["invocation_id"] == failed_id]) == len(printed_for_failed), [r["text"] for r in rows]
    summary = next(r for r in rows if "RotatePat failed: 1 of 2 targets failed: broken (upstream_unavailable)" in r["text"])
    assert summary["severityLevel"] == 3
    assert not any(ok_id in r["text"] for r in rows)
    assert any(ok_id in t["message"] for t in traces), "the successful invocation's lines exist but are not returned"
    # ProvisionPat lines carry the invocation id in releases with contract section 2's
    # JSON/invocation_id logging; where they do, the query returns exactly them.
    printed_for_provision = [t for t in traces if provision_id in t["message"]]
    assert len([r for r in rows if r["invocation_id"] == provision_id]) == len(printed_for_provision)
    json_lines = [t for t in printed_for_failed if t["message"].startswith("{")]
    if log_format == "json" and json_lines:
        # a binary that knows PAT_LOG_FORMAT: target and code come back as columns
        failed_target = next(r for r in rows if r["target"] == "broken")
        assert failed_target["code"] == "upstream_unavailable", failed_target


# ---------------------------------------------------------------------------
# Where the query is used
# ---------------------------------------------------------------------------


def test_alert_and_readme_carry_the_query():
    monitoring = (ROTATOR / "monitoring.tf").read_text()
    assert 'file("${path.module}/../../queries/failed-invocation-logs.kql")' in monitoring
    alert = Module(ROTATOR).resource("azurerm_monitor_scheduled_query_rules_alert_v2", "rotation_failed")
    assert "local.failed_invocation_query" in str(alert["description"])
    assert "operation_Id" not in str(alert["description"]).replace("not by operation_Id", "")
    readme = (INFRA / "README.md").read_text()
    body = "\n".join(line for line in QUERY.read_text().splitlines() if not line.lstrip().startswith("//"))
    assert body.strip() in readme, "infra/README.md must show the query as it is"
