"""The `cascade-router` command line: `app` builds the Typer app and registers each sub-command.

`errors` is the one failure handler of every sub-command; `jobs` holds `calibrate` and
`batch`, `local` the local-model server commands, `serve` the LiteLLM Proxy gateway and `demo`
the live demo. bench's command lives with the bench package (`cascade_core.bench.cli`).
Nothing outside this package imports it: the library works without the command line.
"""
