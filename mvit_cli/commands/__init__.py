"""The `mvit` subcommands, one module per group; `mvit_cli.cli` assembles them."""
