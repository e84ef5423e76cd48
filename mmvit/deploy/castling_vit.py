"""Castling-ViT for inference: the auxiliary softmax branch removed."""
from mmvit.models.backbones.castling_vit import LinearAngularAttention
from . import deploy_rule


@deploy_rule(LinearAngularAttention)
def deploy_attention(attn):
    """The branch cannot run afterwards, even in training mode."""
    attn.aux_softmax = False
    return attn
