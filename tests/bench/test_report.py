"""Benchmark reports: the printed table, the JSON file and memory figures of a process."""

import json

from rag.bench.report import BENCH_DIR, PAGE, benchmarks_page, format_table, proc_status_kib, publish
from tests.conftest import REPO


def test_the_table_has_a_row_per_measurement_and_blank_cells_for_missing_figures():
    table = format_table([{"a": 1, "b": 2.5}, {"a": 2}], ["a", "b"]).splitlines()
    assert table == ["| a | b |", "|---|---|", "| 1 | 2.5 |", "| 2 |  |"]


def test_publish_prints_the_table_and_writes_json_with_the_machine(tmp_path, capsys):
    out = publish("demo", "Demo", [{"x": 1.0}], ["x"], {"speedup": 3.0}, tmp_path / "demo.json")
    printed = capsys.readouterr().out
    assert "## Demo" in printed and "| 1 |" in printed and "speedup: 3" in printed
    payload = json.loads(out.read_text())
    assert payload["benchmark"] == "demo" and payload["rows"] == [{"x": 1.0}]
    assert payload["summary"]["speedup"] == 3.0 and payload["machine"]["cores"]
    assert isinstance(payload["machine"]["cpu_flags"], list)  # what the precision choice depends on


def test_this_process_memory_is_readable_and_a_missing_process_reads_zero():
    assert proc_status_kib("VmHWM") >= proc_status_kib("VmRSS") > 0
    assert proc_status_kib("VmRSS", pid=2**22 + 1) == 0


def test_the_benchmarks_page_is_rendered_from_the_json_alone(tmp_path):
    publish("demo", "Demo speed", [{"x": 1.5, "y": "fast"}], ["x"], {"speedup": 3.0}, tmp_path / "demo.json")
    page = benchmarks_page(tmp_path)
    assert "## Demo speed" in page and "`rag bench demo`" in page and "- speedup: 3" in page
    assert "| x |\n|---|\n| 1.5 |" in page  # the columns the benchmark chose, not every key of its rows


def test_the_committed_benchmarks_page_matches_the_committed_measurements():
    # After `rag bench NAME`, run `rag bench docs`: the page is never edited by hand.
    assert (REPO / PAGE).read_text(encoding="utf-8") == benchmarks_page(REPO / BENCH_DIR)
