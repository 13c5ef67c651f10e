"""The `reslab` subcommands, by what they work on; `reslab.cli` parses and dispatches."""
