"""`doppel scan SOURCE... --store RESULTS` and `doppel scan report RESULTS -o DIR`.

A command of its own rather than options of `detect`: detect writes a report folder
per run, a scan writes one queryable store that outlives runs (resume, skip by
content, retry), needs a cluster, and writes reports only on demand. `scan report`
is recognised by its first word, as `detect train` is (a file literally named
`report` can still be scanned as `./report`).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..errors import DoppelError

log = logging.getLogger(__name__)

STEP = 3  # as detect.scan.ScanConfig.step; not imported so `doppel --help` needs no torch from here


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="folders, list files, globs (quoted) or files; or 'report RESULTS' to write reports")
    p.add_argument("--store", metavar="RESULTS", help="SQLite results database (created, or resumed)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--cluster", metavar="tcp://HOST:8786", help="scheduler of a running Dask cluster")
    where.add_argument("--local-workers", type=int, default=2, metavar="N",
                       help="without --cluster: start a local cluster of N worker processes")
    p.add_argument("--step", type=int, default=STEP, help="analyse every N-th frame")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds one file may take before it is abandoned")
    p.add_argument("--retries", type=int, default=1, help="further tries of a file whose try failed")
    p.add_argument("--retry-errors", action="store_true", help="rescan files whose earlier scan ended in an error")
    p.add_argument("--weights", help="detector weights folder on the workers (unset: the installed package's)")
    r = p.add_argument_group("scan report")
    r.add_argument("-o", "--output", metavar="DIR", help="folder for the reports")
    r.add_argument("--where", default="1", metavar="SQL",
                   help="which files rows to report, e.g. \"verdict='FAKE'\" (default: all)")


def run(args: argparse.Namespace) -> int:
    if args.sources[0] == "report" and not Path("report").exists():
        return _report(args)
    from . import cluster, sources
    from .store import Store
    if not args.store:
        raise DoppelError("give the results database with --store RESULTS")
    if args.step < 1 or args.local_workers < 1 or args.timeout <= 0 or args.retries < 0:
        raise DoppelError("--step and --local-workers must be at least 1, --timeout above 0, --retries 0 or more")
    files = sources.expand(args.sources)
    if not files:
        raise DoppelError("no video or image files found in: " + " ".join(args.sources))
    version = _model_version(args.weights)
    with Store(args.store) as store:
        found, missing = sources.resolve(files, store)
        for m in missing:
            log.warning("skipped: %s", m)
        finished = store.finished(version, args.step, args.retry_errors)
        distinct = sources.distinct(found)
        todo = [s for s in distinct if s.digest not in finished]
        print(f"{len(found)} file(s), {len(distinct)} distinct, {len(distinct) - len(todo)} already in "
              f"{args.store}, {len(todo)} to scan", file=sys.stderr)
        if todo:
            settings = cluster.ScanSettings(step=args.step, timeout=args.timeout, retries=args.retries,
                                            weights=args.weights)
            _scan(todo, store, settings, args)
        counts = store.counts()
    print(json.dumps({"store": args.store, **counts}))
    if todo and not counts.get("done"):
        raise DoppelError(f"nothing could be analysed ({counts.get('error', 0)} error(s); see the files table)")
    return 0


def _model_version(weights: str | None) -> str:
    """The detectors' version here (the workers are expected to run the same install); fails early."""
    from ..detect import detectors
    return detectors.Detectors.load(weights or detectors.WEIGHTS_DIR).version


def _scan(todo, store, settings, args) -> None:
    from . import cluster
    try:
        with cluster.connect(args.cluster, args.local_workers) as client:
            cluster.Driver(client, store, settings).run(todo)
    except KeyboardInterrupt:
        print(f"interrupted: what finished is in {args.store}; run the same command to resume", file=sys.stderr)
        raise
    except OSError as e:  # the scheduler is not there
        raise DoppelError(f"cannot reach the cluster {args.cluster}: {e}") from e


def _report(args: argparse.Namespace) -> int:
    from .report import write_reports
    if len(args.sources) != 2 or not args.output:
        raise DoppelError("usage: doppel scan report RESULTS -o DIR")
    n = write_reports(args.sources[1], args.output, args.where)
    print(f"wrote {n} report(s) and index.html to {args.output}")
    return 0
