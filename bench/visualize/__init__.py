"""CNN visualization: the docs examples and TopPatches throughput."""
