"""3D CNN classification of CT volumes (MedMNIST 3D .npz, .npy, NIfTI)."""
