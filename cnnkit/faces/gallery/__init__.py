"""Galleries of enrolled people: one-shot enrollment, verification (1:1), identification (1:K)."""

from .gallery import Candidate, Gallery, Identification, ImageIdentification, Verification
from .portable import export_gallery, import_gallery
from .store import GalleryError, Person

__all__ = ["Candidate", "Gallery", "GalleryError", "Identification", "ImageIdentification", "Person",
           "Verification", "export_gallery", "import_gallery"]
