"""Neural style transfer (Gatys et al.): VGG19 features, the course's costs, and `stylize`.

Nothing heavy loads at import: VGG19's weights load on the first transfer.
"""

from .costs import content_cost, gram_matrix, layer_style_cost, style_cost, total_cost, total_variation_cost
from .memory import OutputTooLargeError
from .settings import StyleSettings
from .transfer import Step, StyleResult, style_transfer, stylize
from .vgg import LAYER_NAMES, VGG19Features, load_vgg19

__all__ = ["LAYER_NAMES", "OutputTooLargeError", "Step", "StyleResult", "StyleSettings", "VGG19Features",
           "content_cost", "gram_matrix", "layer_style_cost", "load_vgg19", "style_cost", "style_transfer",
           "stylize", "total_cost", "total_variation_cost"]
