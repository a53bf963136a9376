"""Printing a benchmark's table and writing its JSON."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from rag.precision import cpu_flags, cpu_model


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of ``rows`` restricted to ``columns``; floats get three significant decimals.

    >>> print(format_table([{"a": 1, "b": 0.12345}], ["a", "b"]))
    | a | b |
    |---|---|
    | 1 | 0.123 |
    """
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) >= 1000 else f"{value:.3f}".rstrip("0").rstrip(".") or "0"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def proc_status_kib(field: str, pid: int | str = "self") -> int:
    """A memory figure of a process from ``/proc/<pid>/status`` in KiB (``VmRSS``: resident now, ``VmHWM``: the
    peak so far); 0 where it cannot be read (another OS, or the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    return {"cpu": cpu_model() or platform.processor(), "cpu_flags": list(cpu_flags()), "cores": os.cpu_count(),
            "python": platform.python_version()}


def publish(name: str, title: str, rows: list[dict], columns: list[str], summary: dict, out: Path | None) -> Path:
    """Print ``title``, the table and the summary; write everything as JSON to ``out`` (default
    ``eval/bench/<name>.json``). Returns the JSON path."""
    print(f"\n## {title}\n")
    print(format_table(rows, columns))
    print()
    for key, value in summary.items():
        print(f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}")
    out = out or Path("eval") / "bench" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "summary": summary,
        "rows": rows,
    }
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nJSON: {out}")
    return out
