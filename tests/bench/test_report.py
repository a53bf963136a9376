"""Benchmark reports: the printed table, the JSON file and memory figures of a process."""

import json

from rag.bench.report import format_table, proc_status_kib, publish


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
