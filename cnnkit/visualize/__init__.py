"""What hidden units of a trained CNN respond to (Zeiler & Fergus): top patches, layer by layer.

    from cnnkit.visualize import TopPatches
    finder = TopPatches("vgg19", ["conv1_1", "conv3_1", "conv5_1"], units=16, top=9)
    result = finder.find(list_images(["photos/"]))
    result.layers["conv3_1"].units[7]   # -> [Patch(image_id, source, activation, position, box, ...), ...]

See docs/visualize.md.
"""

from ..errors import ImageTooSmallError, LayerNotFoundError, NoImagesError, StateMismatchError, UntraceableModelError
from ..images import list_images
from .models import MODEL_CHOICES, VisualModel, load_model
from .receptive import ReceptiveField, Trace, trace, trace_receptive_fields
from .toppatches import LayerPatches, Patch, TopPatches, TopPatchesResult, parse_units

__all__ = [
    "MODEL_CHOICES",
    "ImageTooSmallError",
    "LayerNotFoundError",
    "LayerPatches",
    "NoImagesError",
    "Patch",
    "ReceptiveField",
    "StateMismatchError",
    "TopPatches",
    "TopPatchesResult",
    "Trace",
    "UntraceableModelError",
    "VisualModel",
    "list_images",
    "load_model",
    "parse_units",
    "trace",
    "trace_receptive_fields",
]
