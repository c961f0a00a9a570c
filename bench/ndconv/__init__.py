"""1D / 3D convnets: ECG heartbeats, video clips, 3D volumes."""
