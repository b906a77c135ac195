"""Bulk detection: `doppel scan` runs the detector on a Dask cluster and keeps the results in SQLite.

sources.py  names -> files -> content hashes (cached by path, size and mtime)
store.py    the SQLite results store (files, frames, attempts, paths)
worker.py   what runs on a worker: the detector plugin and the one-file task
cluster.py  the driver: connect, one file per idle worker thread, time out, retry, record
cli.py      `doppel scan SOURCE... --store RESULTS` and `doppel scan report RESULTS -o DIR`
"""
