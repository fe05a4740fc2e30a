"""host.json: the contract's customHandler section, and sampling that keeps every row the
alarm counts (requests) and the failed-invocation query joins (traces)."""

from __future__ import annotations

import json

from conftest import REPO

HOST = json.loads((REPO / "host.json").read_text())

# The telemetry types Application Insights' sampling recognises in excludedTypes
# (Microsoft Learn, "host.json reference for Azure Functions 2.x and later":
# "A semi-colon delimited list of types that you don't want to be sampled. Recognized types
# are: Dependency, Event, Exception, PageView, Request, and Trace."). The host reads it from
# logging.applicationInsights.samplingSettings.excludedTypes (azure-functions-host 89dc438d,
# Config/ApplicationInsightsLoggerOptionsSetup.cs:58) and hands it to the adaptive sampling
# processor (azure-webjobs-sdk Processors/TelemetryProcessorExtensions.cs:16-18).
RECOGNISED = {"Dependency", "Event", "Exception", "PageView", "Request", "Trace"}


def test_contract_custom_handler_section():
    ch = HOST["customHandler"]
    assert ch["description"]["defaultExecutablePath"] == "pat-rotator"
    assert ch["description"]["arguments"] == ["serve"]
    assert ch["enableForwardingHttpRequest"] is True
    assert HOST["version"] == "2.0"
    assert HOST["functionTimeout"] == "00:10:00"


def test_sampling_keeps_requests_and_traces():
    # Sampling is on by default (20 items/s, nothing excluded: ApplicationInsightsLoggerOptionsSetup.cs:27-30, 49-59).
    # It keeps an operation's items together by operation_Id, but the handler's lines carry
    # none of the invocation's (infra/tests/kql/README.md), so a sampled-out trace would take
    # a failed invocation's error line away while its request row stays. Both types are
    # excluded from sampling; the rest (dependencies, ...) may still be sampled.
    sampling = HOST["logging"]["applicationInsights"]["samplingSettings"]
    assert sampling.get("isEnabled", True) is True
    excluded = [t.strip() for t in sampling["excludedTypes"].split(";") if t.strip()]
    assert set(excluded) <= RECOGNISED, f"unknown telemetry types: {set(excluded) - RECOGNISED}"
    assert {"Request", "Trace"} <= set(excluded)
    assert "includedTypes" not in sampling, "includedTypes would re-admit sampling for listed types"


def test_console_lines_are_not_filtered_out():
    # Host.Function.Console lines at Information must reach Application Insights.
    levels = HOST["logging"]["logLevel"]
    assert levels.get("default") in ("Information", "Debug", "Trace")
    for category, level in levels.items():
        if "Host.Function.Console".startswith(category.rstrip("*")) and category != "default":
            assert level in ("Information", "Debug", "Trace"), category
