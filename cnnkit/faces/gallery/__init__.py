"""Galleries of enrolled people: one-shot enrollment, verification (1:1), identification (1:K)."""

from ...errors import GalleryError
from .gallery import (
                      Candidate,
                      Gallery,
                      Identification,
                      ImageIdentification,
                      Verification,
                      clean_metadata,
                      clean_name,
                      enrollment_record,
                      pick_face,
)
from .portable import export_gallery, import_gallery
from .store import Person

__all__ = ["Candidate", "Gallery", "GalleryError", "Identification", "ImageIdentification", "Person",
           "Verification", "clean_metadata", "clean_name", "enrollment_record", "export_gallery", "import_gallery",
           "pick_face"]
