"""The HTTP service (`cnnkit serve`) under load."""
