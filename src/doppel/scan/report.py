"""Reports from the store, on demand: the same JSON and HTML pages `doppel detect` writes.

The store keeps no face crops (they would be most of its size), so the pages have
the verdict, reasons, plots and cues but no Grad-CAM thumbnails; `doppel detect`
on a file of interest draws those.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ..errors import DoppelError


def write_reports(store_path: str | Path, out_dir: str | Path, where: str = "1") -> int:
    """Write <name>.json/.html per done file matching `where`, summary.json and index.html; returns the count."""
    from .. import media
    from ..detect import report
    from ..detect.cli import report_names
    from ..detect.result import ScanResult
    from .store import Store
    if not Path(store_path).is_file():
        raise DoppelError(f"no results store at {store_path}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with Store(store_path) as store:
        try:
            rows = store.rows(where)
        except sqlite3.Error as e:
            raise DoppelError(f"--where {where!r}: {e}") from e
        lines = []
        for row, name in zip(rows, report_names([Path(r["path"]) for r in rows])):
            if row["status"] != "done":
                lines.append({"file": row["path"], "error": row["error"]})
                continue
            result = ScanResult.from_json(store.result(row["hash"]))
            report.write_json(result, out / f"{name}.json")
            report.write_html(result, out / f"{name}.html")
            lines.append({"file": row["path"], "report": f"{name}.html", "label": row["verdict"],
                          "probability": row["probability"], "reasons": json.loads(row["reasons"])})
    with media.atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(lines, indent=1))
    report.write_index(lines, out / "index.html")
    return sum("report" in x for x in lines)
