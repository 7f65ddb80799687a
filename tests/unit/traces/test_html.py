"""The HTML report opened in real headless Chromium: its inline script must have drawn every chart."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lambdalab.traces.html import render_html
from lambdalab.traces.model import parse_batch_get_traces
from lambdalab.traces.reader import read_run_dir
from lambdalab.traces.report import Source, from_invocations, from_traces
from tests.unit.traces.data import load

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium; the Makefile does this)"
)


def chromium(page: Path, profile: Path, *extra: str) -> str:
    """Run headless Chromium on a file: URL and return stdout (the DOM after scripts ran, with --dump-dom)."""
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *extra,
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def count(dom: str, pattern: str) -> int:
    return len(re.findall(pattern, dom))


def attribute(dom: str, element_id: str, name: str) -> str:
    match = re.search(rf'<[^>]*id="{element_id}"[^>]*>', dom)
    assert match, f"no element #{element_id} in the DOM"
    found = re.search(rf'{name}="([^"]*)"', match.group(0))
    assert found, f"#{element_id} has no {name}: the script did not run"
    return found.group(1)


@needs_chromium
def test_charts_are_drawn_from_traces(tmp_path):
    report = from_traces(parse_batch_get_traces([load("batch_get_traces_lambda.json")]), Source("file", "fixture"))
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    dom = chromium(page, tmp_path / "profile", "--dump-dom")

    ran = [i for i in report.invocations if not i.throttled]
    cold = [i for i in ran if i.cold]
    with_init = [e for e in report.environments if e.init_start is not None]
    assert 'data-charts-drawn="true"' in dom
    # one bar per invocation that ran, one INIT bar per environment whose INIT was seen, a marker per cold start
    assert count(dom, r'<rect class="invocation (?:cold|warm|provisioned)"') == len(ran)
    assert count(dom, r'<rect class="invocation cold"') == len(cold)
    assert count(dom, r'<rect class="init"') == len(with_init)
    assert count(dom, r'<path class="cold-marker"') == len(cold)
    assert attribute(dom, "timeline", "data-drawn-invocations") == str(len(ran))
    # one histogram per function; every end-to-end latency lands in exactly one bin
    assert count(dom, r'<svg class="hist"') == len(report.functions)
    bins = [int(n) for n in re.findall(r'<rect class="hist-(?:cold|warm)"[^>]*data-count="(\d+)"', dom)]
    assert sum(bins) == sum(1 for i in ran if i.end_to_end_s is not None)


@needs_chromium
def test_run_directory_timeline_uses_real_environment_ids(data_dir, tmp_path):
    run = read_run_dir(data_dir / "run")
    report = from_invocations(run.invocations, Source("run-dir", "fixture"), environment_events=run.environment_events)
    page = tmp_path / "run.html"
    page.write_text(render_html(report), encoding="utf-8")
    dom = chromium(page, tmp_path / "profile", "--dump-dom")
    assert attribute(dom, "timeline", "data-drawn-invocations") == "5"
    assert count(dom, r'<rect class="invocation (?:cold|warm|provisioned)"') == 5
    assert attribute(dom, "timeline", "data-drawn-inits") == "3"  # env-a, env-b cold; env-p created → ready
    assert attribute(dom, "timeline", "data-drawn-cold-markers") == "2"


def test_data_cannot_close_the_script_element():
    report = from_traces(parse_batch_get_traces([load("batch_get_traces_lambda.json")]), Source("file", "</script>"))
    page = render_html(report)
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert blob is not None
    assert json.loads(blob.group(1))["source"]["detail"] == "</script>"


@needs_chromium
def test_an_empty_report_still_renders(tmp_path):
    report = from_traces(parse_batch_get_traces([{"Traces": []}]), Source("xray", "http://127.0.0.1:1"))
    page = tmp_path / "empty.html"
    page.write_text(render_html(report), encoding="utf-8")
    dom = chromium(page, tmp_path / "profile", "--dump-dom")
    assert 'data-charts-drawn="true"' in dom
    assert attribute(dom, "timeline", "data-drawn-invocations") == "0"
    assert attribute(dom, "latency", "data-drawn-histograms") == "0"
