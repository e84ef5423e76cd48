"""Linear classifier heads of the four families' ImageNet models."""
from collections import OrderedDict

import torch
from mmpretrain.models.heads import ClsHead
from torch import nn

from mmvit.registry import MODELS
from ..utils.fold import average_linears, fold_norm_into_linear


class _Classifier(nn.Sequential):
    """[BatchNorm1d] -> [Dropout] -> Linear, children ``bn``/``drop``/``fc``."""

    def __init__(self, in_channels, num_classes, with_bn, dropout):
        layers = OrderedDict()
        if with_bn:
            layers['bn'] = nn.BatchNorm1d(in_channels)
        if dropout > 0:
            layers['drop'] = nn.Dropout(dropout)
        layers['fc'] = nn.Linear(in_channels, num_classes)
        super().__init__(layers)

    def switch_to_deploy(self):
        """Fold the BatchNorm into the linear layer; drop the dropout."""
        if 'bn' in self._modules:
            self.fc = fold_norm_into_linear(self.bn, self.fc)
            del self.bn
        if 'drop' in self._modules:
            del self.drop


@MODELS.register_module()
class NormLinearClsHead(ClsHead):
    """Linear classifier with an optional BatchNorm1d, dropout and a second
    ("distillation") classifier whose logits are averaged with the first at
    inference.

    It covers the official classifiers on pooled features: CAS-ViT (two
    linear layers, averaged at eval), CMT (dropout then linear),
    EfficientViT (BatchNorm1d + linear, optionally twice) and Castling-ViT
    (linear).

    Args:
        num_classes (int): number of classes.
        in_channels (int): channels of the pooled feature.
        with_bn (bool): a BatchNorm1d before each linear layer
            (EfficientViT's ``BN_Linear``). Defaults to False.
        dropout (float): dropout before each linear layer. Defaults to 0.
        distilled (bool): add the second classifier ``dist``. In training
            both classifiers learn the labels (mmpretrain pipelines have no
            teacher model): the loss is the mean of their two losses. At
            inference the logits are the mean of their logits, as in the
            official models.
        loss (dict): the classification loss. Defaults to cross-entropy.
        topk (int | tuple[int]): top-k accuracies reported in training
            when ``cal_acc``.
        cal_acc (bool): report training accuracy (pointless with mixup).
        init_cfg (dict | list): defaults to the official initialisation of
            these heads: truncated normal (std 0.02) weights, zero biases.
        deploy (bool): build the deployed structure of
            :meth:`switch_to_deploy`: one linear layer, for inference.

    The checkpoint keys are ``cls.{bn,fc}.*`` and ``dist.{bn,fc}.*``.
    """

    def __init__(self, num_classes, in_channels, with_bn=False, dropout=0.,
                 distilled=False,
                 loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk=(1, ), cal_acc=False,
                 init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02,
                               bias=0.),
                 deploy=False,
                 **kwargs):
        super().__init__(loss=loss, topk=topk, cal_acc=cal_acc,
                         init_cfg=init_cfg, **kwargs)
        if num_classes <= 0:
            raise ValueError(f'NormLinearClsHead: num_classes must be '
                             f'positive, got {num_classes}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.distilled = distilled
        self.deploy = deploy
        self.cls = _Classifier(in_channels, num_classes, with_bn and not
                               deploy, 0. if deploy else dropout)
        self.dist = _Classifier(in_channels, num_classes, with_bn,
                                dropout) if distilled and not deploy else None

    def pre_logits(self, feats):
        """The pooled feature of the last stage, ``(B, in_channels)``."""
        feat = feats[-1]
        if feat.dim() != 2 or feat.shape[1] != self.in_channels:
            raise ValueError(
                f'NormLinearClsHead expects pooled features of shape (B, '
                f'{self.in_channels}), got {tuple(feat.shape)}; is the neck '
                f'a pooling neck (mmvit.PoolNeck)?')
        return feat

    def forward(self, feats):
        """Logits; with a distillation classifier, the mean of both."""
        feat = self.pre_logits(feats)
        if self.dist is None:
            return self.cls(feat)
        return (self.cls(feat) + self.dist(feat)) / 2

    def switch_to_deploy(self):
        """One linear layer for inference: the BatchNorms folded in, the
        distillation classifier averaged into the first."""
        self.cls.switch_to_deploy()
        if self.dist is not None:
            self.dist.switch_to_deploy()
            self.cls.fc = average_linears(self.cls.fc, self.dist.fc)
            self.dist = None
        self.deploy = True

    def loss(self, feats, data_samples, **kwargs):
        if self.deploy:
            raise RuntimeError('NormLinearClsHead is deployed (one folded '
                               'linear layer) and does not train; build it '
                               'without deploy to train it')
        feat = self.pre_logits(feats)
        losses = self._get_loss(self.cls(feat), data_samples, **kwargs)
        if self.dist is not None:
            dist = self._get_loss(self.dist(feat), data_samples, **kwargs)
            losses = {
                k: (v + dist[k]) / 2 if isinstance(v, torch.Tensor) and
                v.dim() == 0 else v
                for k, v in losses.items()
            }
        return losses
