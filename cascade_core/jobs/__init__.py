"""Offline jobs over the live engine: resumable batch runs (local or on Ray Data).

`journal` owns the output file (atomic appends, resume after kill -9), `runner` the local
bounded-concurrency loop, `ray_runner` the same job on Ray Data. The progress bar
(`cascade_core.progress`) and the input rows (`cascade_core.jsonl`) live below, shared with
`calibrate`, so neither package imports the other.
"""
