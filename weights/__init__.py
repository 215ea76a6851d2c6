"""Data package: the weight registry and small weights shipped with mvit (installed as mvit_cli.weights)."""
