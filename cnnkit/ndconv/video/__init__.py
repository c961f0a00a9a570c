"""3D CNN on video clips (frames x height x width), PyAV decoding, a generated motion task."""
