"""cnnkit's benchmarks, one package per application, run from the repository root: `python -m bench.<app>.<script>`."""
