"""Style transfer: time per image, peak memory, the docs gallery, the peer comparison."""
