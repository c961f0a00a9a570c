"""The `cnnkit` command line: one module (or package) per command, mirroring the command tree.

Building the parser imports only argparse and light cnnkit modules; each command
imports the application code it runs (and PyTorch) inside its function.
"""
