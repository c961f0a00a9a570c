"""Heartbeat classification on ECG records (AAMI N/S/V/F, inter-patient protocol) and QRS detection."""
