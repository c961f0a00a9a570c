"""Faces: detector, encoder, LFW verification and open-set identification, training, video and liveness."""
