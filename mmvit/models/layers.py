"""Layers shared by several backbone families."""
from mmcv.cnn import build_activation_layer
from torch import nn


class ConvMlp(nn.Module):
    """Two 1x1 convolutions with an activation between: C -> hidden -> C."""

    def __init__(self, channels, hidden_channels, act_cfg=dict(type='GELU'),
                 drop=0.):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden_channels, 1)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Conv2d(hidden_channels, channels, 1)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x):
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


def drop_path_rates(depths, drop_path_rate):
    """Per-block rates rising linearly from 0 to ``drop_path_rate``.

    Returns one list per stage; block ``j`` of all ``N`` blocks gets
    ``rate * j / (N - 1)``.
    """
    total = sum(depths)
    rates = [drop_path_rate * j / max(total - 1, 1) for j in range(total)]
    out, start = [], 0
    for depth in depths:
        out.append(rates[start:start + depth])
        start += depth
    return out
