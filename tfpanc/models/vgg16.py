"""VGG16's convolution layout (Simonyan & Zisserman 2015), the trunk of HNN and FCN-8s.

Five stages of 3x3 convolutions, each followed by 2x2 max-pooling in VGG16.
"""

VGG16_STAGES = (2, 2, 3, 3, 3)  # convolutions per stage
VGG16_WIDTH = (1, 2, 4, 8, 8)  # stage channels as multiples of stage 1's (VGG16: 64)
