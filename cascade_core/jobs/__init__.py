"""Offline jobs over the live engine: resumable batch runs (local or on Ray Data).

`journal` owns the output file (atomic appends, resume after kill -9), `runner` the local
bounded-concurrency loop, `ray_runner` the same job on Ray Data, `progress` the progress bar.
"""
