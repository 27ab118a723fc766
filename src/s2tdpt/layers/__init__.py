"""Building blocks of the backbone: token BatchNorm, spiking patch splitting, MLP and the encoder block.

Import from the submodules (``s2tdpt.layers.block`` etc.); this package imports nothing eagerly so that
attention modules can use ``s2tdpt.layers.norm`` without an import cycle through the block.
"""
