"""Where a run's work happens: this process and its decoding workers (the local engine,
`mvit_cli.api`), or a Ray cluster (`ray_engine`)."""
