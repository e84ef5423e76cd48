# EfficientViT's block (cascaded group attention, mmvit.CGABlock) after the
# 3x3 convolution of every bottleneck of ResNet stages 3 and 4 (for R-50:
# 6 + 3 blocks at 256 and 512 channels), through mmdet ResNet's `plugins=`
# as mmdet's GCNet and attention configs insert their blocks. The blocks
# start as the identity, so an ImageNet ResNet keeps its function at step 0.
cga_plugin = dict(
    cfg=dict(type='mmvit.CGABlock', num_heads=4, key_dim=16),
    stages=(False, False, True, True),
    position='after_conv2')
# a config adds it: model = dict(backbone=dict(plugins=[_base_.cga_plugin]))
