"""What every application shares: device choice, optional dependencies, metrics, training pieces, timestamps.

Nothing here imports an application (faces, style, visualize, ndconv); they all import from here.
"""
