"""What hidden units of a trained CNN respond to (Zeiler & Fergus): top patches, layer by layer.

    from cnnkit.visualize import TopPatches
    finder = TopPatches("vgg19", ["conv1_1", "conv3_1", "conv5_1"], units=16, top=9)
    result = finder.find(list_images(["photos/"]))
    result.layers["conv3_1"].units[7]   # -> [Patch(image_id, source, activation, position, box, ...), ...]

See docs/visualize.md.
"""

from .data import list_images
from ..errors import ImageTooSmallError, LayerNotFoundError, NoImagesError, StateMismatchError, UntraceableModelError
from .models import MODEL_CHOICES, VisualModel, load_model
from .receptive import ReceptiveField, Trace, trace, trace_receptive_fields
from .toppatches import LayerPatches, Patch, TopPatches, TopPatchesResult, parse_units

__all__ = [
    "TopPatches", "TopPatchesResult", "LayerPatches", "Patch", "parse_units", "list_images",
    "VisualModel", "load_model", "MODEL_CHOICES", "ReceptiveField", "Trace", "trace", "trace_receptive_fields",
    "ImageTooSmallError", "LayerNotFoundError", "NoImagesError", "StateMismatchError", "UntraceableModelError",
]
