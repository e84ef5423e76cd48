"""Castling-ViT: linear-angular attention in a PVTv2-style pyramid.

Linear-angular attention keeps the linear term of the angular kernel
``1 - angle(q, k) / pi ~ 1/2 + (1/pi) q_hat . k_hat``: with L2-normalised
queries and keys per head,

    x = 0.5 * v + (1/pi) * q_hat @ (k_hat^T @ v)

computed right to left, so its cost is linear in the number of tokens. The
result is L2-normalised over the head dimension, a depthwise convolution of
``v`` is added (spatial on the 2-D map here; ``res_conv='token1d'`` is the
released 1-D convolution along the token sequence), and a linear projection
follows.

"Castling": during training an auxiliary masked-softmax attention
``factor * (mask * softmax(q k^T / sqrt(d))) @ v`` (mask: probabilities above
0.02) is added before the normalisation; :class:`mmvit.engine.
CastlingAnnealHook` anneals ``factor`` to exactly 0. The backbone keeps the
factor in a buffer (``aux_factor``, saved in checkpoints) and hands it to
its attention layers as a plain float (so the attention's state-dict keys
are those of the released module, and deciding whether to run the branch
reads no tensor). Whenever the factor is
0, and always in eval mode, the branch is skipped, so inference allocates no
``N x N`` tensor.

The pyramid (overlapping patch embeddings, blocks of attention and a MixFFN
with a depthwise 3x3 conv, a LayerNorm after each stage) follows PVTv2 with
the attention swapped; the variants xs / s / m are the widths and depths of
PVTv2 b0 / b1 / b2. Outputs at strides 4, 8, 16, 32.
"""
import math

import torch
from mmcv.cnn.bricks import DropPath
from mmcv.cnn.bricks.transformer import PatchEmbed
from torch import nn

from mmvit.registry import MODELS
from ..layers import drop_path_rates, run_blocks, transformer_init_cfg
from ..utils import MMViTBackbone, normalize_out_indices, parse_arch
from ..utils.fold import fold_layer_norm_into_linear

RES_CONVS = ('spatial', 'token1d')


def depthwise_residual(conv, mode, v, hw_shape):
    """The depthwise convolution ``conv`` of v, (B, heads, N, dims) in and
    out: over the 2-D map (``mode='spatial'``; v's tokens read as a
    channels-last map, views and no copies when v is a view of a (B, N, C)
    tensor) or along the token sequence (``'token1d'``)."""
    if mode == 'token1d':
        return conv(v)
    batch, heads, length, dims = v.shape
    fmap = v.transpose(1, 2).reshape(batch, *hw_shape, heads * dims)
    out = conv(fmap.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    return out.reshape(batch, length, heads, dims).transpose(1, 2)


def inverse_norm(x, eps=1e-12):
    """1 / ||x|| over the last dimension of ``x`` (keepdim), and 0 where
    the norm is under ``eps``: a zero vector (e.g. a token of zero padding
    with zero biases) is scaled to zero and passes no gradient, instead of
    giving NaN, or a gradient scaled by 1 / eps that overflows a few blocks
    down."""
    norm = x.norm(dim=-1, keepdim=True)
    small = norm < eps
    return norm.masked_fill(small, 1.).reciprocal().masked_fill(small, 0.)


@MODELS.register_module()
class LinearAngularAttention(nn.Module):
    """Linear-angular attention over tokens ``x`` of shape (B, N, C).

    Args:
        embed_dims (int): channels C.
        num_heads (int): heads; C must be divisible by it.
        qkv_bias (bool): bias of the qkv projection. Defaults to False.
        res_kernel_size (int, optional): kernel of the depthwise residual on
            v. Defaults to 3 for ``'spatial'`` (3x3 on the map) and 9 for
            ``'token1d'`` (9 tokens along the sequence, as released).
        res_conv (str): ``'spatial'`` (a depthwise conv over v on the 2-D
            map, one filter per channel) or ``'token1d'`` (the released
            ``Conv2d(heads, heads, (k, 1), groups=heads)`` along the
            flattened tokens, shared by the channels of a head; same
            state-dict keys ``qkv.*``, ``proj.*``, ``dconv.weight``).
        aux_softmax (bool): build the training-only masked-softmax branch.
        aux_threshold (float): softmax probabilities kept by its mask.
        aux_factor (float): its initial weight (annealed by the hook).
    """

    def __init__(self,
                 embed_dims,
                 num_heads,
                 qkv_bias=False,
                 res_kernel_size=None,
                 res_conv='spatial',
                 aux_softmax=True,
                 aux_threshold=0.02,
                 aux_factor=1.0):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'LinearAngularAttention: embed_dims '
                             f'{embed_dims} is not divisible by {num_heads} '
                             'heads')
        if res_conv not in RES_CONVS:
            raise ValueError(f'LinearAngularAttention: res_conv must be one '
                             f'of {RES_CONVS}, got {res_conv!r}')
        if res_kernel_size is None:
            res_kernel_size = 3 if res_conv == 'spatial' else 9
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = self.head_dims**-0.5
        self.res_conv = res_conv
        self.aux_softmax = aux_softmax
        self.aux_threshold = aux_threshold
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        if res_conv == 'token1d':
            self.dconv = nn.Conv2d(num_heads, num_heads,
                                   (res_kernel_size, 1),
                                   padding=(res_kernel_size // 2, 0),
                                   groups=num_heads, bias=False)
        else:
            self.dconv = nn.Conv2d(embed_dims, embed_dims, res_kernel_size,
                                   padding=res_kernel_size // 2,
                                   groups=embed_dims, bias=False)
        # a float, not in the state dict: CastlingViT saves and sets it
        self.aux_factor = float(aux_factor) if aux_softmax else 0.

    def uses_aux_branch(self):
        """True only while training with a non-zero factor."""
        return self.aux_softmax and self.training and self.aux_factor != 0.

    def forward(self, x, hw_shape):
        batch, length, channels = x.shape
        if hw_shape[0] * hw_shape[1] != length:
            raise ValueError(f'LinearAngularAttention: hw_shape {hw_shape} '
                             f'does not hold {length} tokens')
        q, k, v = (self._heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        k_hat = k * inverse_norm(k)
        # twice 0.5 v + (1/pi) q_hat (k_hat^T v) (the L2 normalisation
        # below removes the factor), q's norm scaling the product's rows
        out = torch.addcmul(v, q @ (k_hat.transpose(-2, -1) @ v),
                            (2 / math.pi) * inverse_norm(q))
        if self.uses_aux_branch():
            out = out + 2 * self.aux_factor * self._aux_attention(q, k, v)
        residual = depthwise_residual(self.dconv, self.res_conv, v, hw_shape)
        out = torch.addcmul(residual, out, inverse_norm(out))
        return self.proj(out.transpose(1, 2).reshape(batch, length,
                                                     channels))

    def _heads(self, t):
        """(B, N, C) -> (B, heads, N, dims), a view."""
        return t.view(t.shape[0], t.shape[1], self.num_heads,
                      self.head_dims).transpose(1, 2)

    def _aux_attention(self, q, k, v):
        """(mask * softmax(q k^T / sqrt(d))) @ v, mask: probabilities above
        ``aux_threshold``."""
        probs = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return (probs * (probs > self.aux_threshold)) @ v


def set_aux_factor(model, value):
    """Set the auxiliary softmax weight everywhere in ``model`` (attention
    layers and the backbones that keep it); returns the number of attention
    layers set."""
    count = 0
    for module in model.modules():
        if isinstance(module, LinearAngularAttention) and module.aux_softmax:
            module.aux_factor = float(value)
            count += 1
        elif isinstance(module, CastlingViT) and module.aux_softmax:
            module.aux_factor.fill_(float(value))
    return count


class MixFFN(nn.Module):
    """PVTv2's feed-forward on tokens: fc2(GELU(dwconv3x3(fc1(x)))), the
    depthwise conv on the tokens read as a (channels-last) map."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, hw_shape):
        batch, length, _ = x.shape
        fmap = self.fc1(x).view(batch, *hw_shape, -1).permute(0, 3, 1, 2)
        y = self.act(self.dwconv(fmap)).permute(0, 2, 3, 1)
        return self.fc2(y.reshape(batch, length, -1))


class CastlingBlock(nn.Module):
    """x + DropPath(attn(LN(x))); x + DropPath(MixFFN(LN(x))).

    Deployed (:meth:`switch_to_deploy`, or ``deploy=True``) the norms'
    affines are folded into the attention's ``qkv`` and the MixFFN's
    ``fc1`` and the auxiliary softmax branch is gone.
    """

    def __init__(self, dim, num_heads, mlp_ratio, drop_path=0.,
                 res_conv='spatial', aux_softmax=True, deploy=False):
        super().__init__()
        self.deploy = deploy
        self.norm1 = nn.LayerNorm(dim, eps=1e-6,
                                  elementwise_affine=not deploy)
        self.attn = LinearAngularAttention(
            dim, num_heads, qkv_bias=deploy, res_conv=res_conv,
            aux_softmax=aux_softmax and not deploy)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6,
                                  elementwise_affine=not deploy)
        self.ffn = MixFFN(dim, int(dim * mlp_ratio))

    def forward(self, x, hw_shape):
        x = x + self.drop_path(self.attn(self.norm1(x), hw_shape))
        return x + self.drop_path(self.ffn(self.norm2(x), hw_shape))

    def switch_to_deploy(self):
        """Fold the norms' affines forward; drop the auxiliary branch."""
        if self.deploy:
            return
        self.norm1, self.attn.qkv = fold_layer_norm_into_linear(
            self.norm1, self.attn.qkv)
        self.norm2, self.ffn.fc1 = fold_layer_norm_into_linear(
            self.norm2, self.ffn.fc1)
        self.attn.aux_softmax = False
        self.attn.aux_factor = 0.
        self.deploy = True


class CastlingStage(nn.Module):
    """Overlapping patch embedding, blocks, LayerNorm."""
    with_cp = False  # set by the backbone's ``with_cp``

    def __init__(self, in_channels, dim, depth, num_heads, mlp_ratio, dpr,
                 first, res_conv, aux_softmax, deploy=False):
        super().__init__()
        kernel, stride = (7, 4) if first else (3, 2)
        self.patch_embed = PatchEmbed(
            in_channels, dim, kernel_size=kernel, stride=stride,
            padding=kernel // 2, norm_cfg=dict(type='LN', eps=1e-6))
        self.blocks = nn.ModuleList([
            CastlingBlock(dim, num_heads, mlp_ratio, dpr[j], res_conv,
                          aux_softmax, deploy) for j in range(depth)
        ])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x, hw_shape = self.patch_embed(x)
        x = self.norm(run_blocks(self.blocks, x, hw_shape,
                                 with_cp=self.with_cp))
        return x.transpose(1, 2).reshape(x.shape[0], -1, *hw_shape)


@MODELS.register_module()
class CastlingViT(MMViTBackbone):
    """Castling-ViT pyramid backbone (strides 4, 8, 16, 32).

    Args:
        arch (str | dict): ``'xs'``, ``'s'``, ``'m'`` or a dict with keys
            ``channels``, ``depths``, ``num_heads`` and ``mlp_ratios``.
        in_channels (int): input channels. Defaults to 3.
        out_indices (Sequence[int]): stages to output.
        frozen_stages (int): -1 freezes nothing, ``i`` stages ``0..i-1``
            (each with its patch embedding and norm).
        norm_eval (bool): keep BatchNorm layers in eval mode (there are
            none in this family; kept for a uniform interface).
        drop_path_rate (float): rises linearly over the blocks.
        res_conv (str): residual conv of the attention, ``'spatial'`` or
            ``'token1d'``.
        aux_softmax (bool): build the auxiliary softmax branch (annealed
            away by ``CastlingAnnealHook``).
        aux_stages (Sequence[int]): the stages that get it. Its N x N
            attention is affordable at ImageNet sizes in every stage, but
            at detection sizes only in the coarse stages (at 1333x800 the
            first stage has 66,600 tokens: 4.4e9 logits per head).
        with_cp (bool): recompute each block in the backward pass instead
            of keeping its activations (``torch.utils.checkpoint``):
            less memory for more time while training.
        deploy (bool): build the deployed structure (no auxiliary branch;
            see :class:`~mmvit.models.utils.MMViTBackbone`).
        init_cfg (dict | list, optional): ``Pretrained`` or, by default,
            PVTv2's initialisation (truncated normal linear layers, fan-out
            Kaiming convolutions, unit norms).
    """
    arch_settings = {
        'xs': dict(channels=[32, 64, 160, 256], depths=[2, 2, 2, 2],
                   num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4]),
        's': dict(channels=[64, 128, 320, 512], depths=[2, 2, 2, 2],
                  num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4]),
        'm': dict(channels=[64, 128, 320, 512], depths=[3, 4, 6, 3],
                  num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4]),
    }

    def __init__(self,
                 arch='s',
                 in_channels=3,
                 out_indices=(0, 1, 2, 3),
                 frozen_stages=-1,
                 norm_eval=False,
                 drop_path_rate=0.1,
                 res_conv='spatial',
                 aux_softmax=True,
                 aux_stages=(0, 1, 2, 3),
                 with_cp=False,
                 deploy=False,
                 init_cfg=None):
        settings = parse_arch(arch, self.arch_settings, 'CastlingViT',
                              ('channels', 'num_heads', 'mlp_ratios'))
        depths = settings['depths']
        num_stages = len(depths)
        if init_cfg is None:
            init_cfg = transformer_init_cfg()
        super().__init__(num_stages, out_indices, frozen_stages, norm_eval,
                         in_channels, init_cfg, deploy, with_cp)
        aux_stages = normalize_out_indices(aux_stages, num_stages,
                                           'CastlingViT (aux_stages)') \
            if aux_softmax else ()
        aux_softmax = bool(aux_stages)
        self.aux_softmax = aux_softmax
        self.aux_stages = aux_stages
        if aux_softmax:  # the saved copy of the attention layers' factor
            self.register_buffer('aux_factor', torch.tensor(1.))
            self.register_load_state_dict_post_hook(self._sync_aux_factor)
        channels = settings['channels']
        self.arch = settings
        self._set_stage_outputs(channels, first_stride=4)
        dprs = drop_path_rates(depths, drop_path_rate)
        self.stages = nn.ModuleList([
            CastlingStage(in_channels if i == 0 else channels[i - 1],
                          channels[i], depths[i], settings['num_heads'][i],
                          settings['mlp_ratios'][i], dprs[i], i == 0,
                          res_conv, i in aux_stages, deploy)
            for i in range(num_stages)
        ])
        self._finish_init()

    def set_aux_factor(self, value):
        """Set the auxiliary softmax weight of every attention layer."""
        return set_aux_factor(self, value)

    @staticmethod
    def _sync_aux_factor(module, incompatible_keys):
        """After loading a state dict, hand the loaded factor to the
        attention layers."""
        set_aux_factor(module, float(module.aux_factor))
