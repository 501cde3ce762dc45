"""The command-line interface: argument parsing and output only, over coursevault.api."""
