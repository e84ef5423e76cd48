"""ImageNet classifiers: every config builds with the official classifier,
official-layout checkpoints convert to logits equal to the source model's,
and a classifier trains and validates on the built-in data."""
import glob
import os.path as osp
import re

import pytest
import torch

from conftest import ROOT, make_runner, randomize, run_tool
from mmvit.utils.config import load_config

CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'imagenet_*.py')))
# classifier parameters counted from the official code (the specs); the
# Castling-ViT variants have no official classifier
PARAMS_M = {
    'cas_vit_xs': 3.20, 'cas_vit_s': 5.76, 'cas_vit_m': 12.42,
    'cas_vit_t': 21.76, 'cmt_ti': 9.49, 'cmt_xs': 15.25, 'cmt_s': 26.26,
    'cmt_b': 45.72, 'efficientvit_m0': 2.35, 'efficientvit_m1': 2.98,
    'efficientvit_m2': 4.19, 'efficientvit_m3': 6.90,
    'efficientvit_m4': 8.80, 'efficientvit_m5': 12.47,
    'castling_vit_xs': 3.20, 'castling_vit_s': 12.15,
    'castling_vit_m': 21.09,
}


def build_classifier(config):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = load_config(config)
    return MODELS.build(cfg.model), cfg


def test_every_variant_has_a_config():
    names = {re.match(r'imagenet_(.*)\.py', osp.basename(p)).group(1)
             for p in CONFIGS}
    assert names == set(PARAMS_M)


@pytest.mark.parametrize('config', CONFIGS, ids=osp.basename)
def test_config_builds_the_official_classifier(config):
    model, cfg = build_classifier(config)
    name = re.match(r'imagenet_(.*)\.py', osp.basename(config)).group(1)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert round(params, 2) == PARAMS_M[name]
    assert cfg.val_evaluator.topk == (1, 5)
    assert cfg.train_dataloader.dataset.data_root == 'data/imagenet'
    # trains and tests at the variant's resolution; test: the short side
    # at size x 256 / 224, then a centre crop
    from mmvit.models.backbones.cmt import CMT
    family, arch = name.rsplit('_', 1)  # CMT's variants: their own size
    size = CMT.arch_settings[arch]['train_size'] if family == 'cmt' else 224
    train = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    test = {t['type']: t for t in cfg.val_dataloader.dataset.pipeline}
    assert train['RandomResizedCrop']['scale'] == size
    assert test['ResizeEdge']['scale'] == size * 256 // 224
    assert test['CenterCrop']['crop_size'] == size
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, size, size), mode='tensor')
    assert logits.shape == (1, 1000)


# --- official checkpoints ---------------------------------------------------
def _official_layout(family, model):
    """The classifier's tensors under the official key names."""
    import test_cas_vit
    import test_cmt
    import test_efficientvit
    backbone = {k[len('backbone.'):]: v for k, v in model.state_dict().items()
                if k.startswith('backbone.')}
    head = {k: v for k, v in model.state_dict().items()
            if not k.startswith('backbone.')}
    if family == 'cas_vit':
        state = {test_cas_vit.official_name(k): v
                 for k, v in backbone.items() if not k.startswith('norm')}
        state.update({f'norm.{k[len("norm3."):]}': v
                      for k, v in backbone.items() if k.startswith('norm3.')})
        renames = {'head.cls.fc.': 'head.', 'head.dist.fc.': 'dist_head.'}
    elif family == 'cmt':
        state = {test_cmt.official_name(k): v for k, v in backbone.items()}
        renames = {'neck.proj.conv.': '_fc.', 'neck.proj.bn.': '_bn.',
                   'head.cls.fc.': 'head.'}
    else:
        # the 224 classifier's stage-3 bias tables hold 4 x 4 offsets
        official = test_efficientvit.official_state_dict(model.backbone)
        state = {k: v for k, v in official.items()
                 if not k.startswith('head.')}
        renames = {'head.cls.bn.': 'head.bn.', 'head.cls.fc.': 'head.l.'}
    for key, value in head.items():
        for ours, theirs in renames.items():
            if key.startswith(ours):
                state[theirs + key[len(ours):]] = value
                break
        else:
            raise KeyError(key)
    return {k: v.clone() for k, v in state.items()}


@pytest.mark.parametrize('family,arch,size', [
    ('cas_vit', 'xs', 224), ('cmt', 'ti', 160), ('efficientvit', 'm0', 224)])
def test_converter_round_trip(family, arch, size, tmp_path):
    from tools.model_converters.official_to_mmvit import main
    config = osp.join(ROOT, 'configs', family, f'imagenet_{family}_{arch}.py')
    source, _ = build_classifier(config)
    randomize(source).eval()
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    torch.save({'model': _official_layout(family, source),
                'model_ema': {}}, src)
    main(['--family', family, str(src), str(dst)])  # the variant is inferred

    converted = torch.load(dst, weights_only=True)
    assert converted['meta']['arch'] == arch
    target, _ = build_classifier(config)
    target.load_state_dict(converted['state_dict'], strict=True)
    target.eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(target(x, mode='tensor'), source(x, mode='tensor'))

    # the same file initialises the detection backbone
    from mmvit.models.utils.checkpoint import load_pretrained
    det = load_config(osp.join(ROOT, 'configs', family, f'retinanet_{family}_{arch}.py'))
    from mmvit import models
    kwargs = {k: v for k, v in det.model.backbone.items()
              if k not in ('type', 'init_cfg', '_delete_')}
    backbone = getattr(models, det.model.backbone.type.split('.')[-1])(**kwargs)
    report = load_pretrained(backbone, str(dst))
    stage_keys = [k for k in backbone.state_dict() if k.startswith('stages.')]
    assert set(stage_keys) <= set(report.loaded)
    for key in stage_keys:
        if 'attention_biases' not in key:  # EfficientViT's table grows 4->7
            assert torch.equal(backbone.state_dict()[key],
                               source.backbone.state_dict()[key]), key


def test_converter_errors(tmp_path):
    from mmvit.converters.classifier import convert_classifier as convert
    from tools.model_converters.official_to_mmvit import main
    source, _ = build_classifier(
        osp.join(ROOT, 'configs', 'cas_vit', 'imagenet_cas_vit_xs.py'))
    state = _official_layout('cas_vit', source)
    with pytest.raises(ValueError, match='fit no cmt variant|no classifier'):
        convert('cmt', state)
    with pytest.raises(ValueError, match=r"fit no cas_vit variant \(s\)"):
        convert('cas_vit', state, arch='s')
    dst = tmp_path / 'out.pth'
    dst.write_text('keep me')
    with pytest.raises(SystemExit, match='exists; pass --force'):
        main(['--family', 'cas_vit', str(tmp_path / 'x.pth'), str(dst)])
    assert dst.read_text() == 'keep me'
    with pytest.raises(SystemExit, match='missing.pth.* does not exist'):
        main(['--family', 'cas_vit', str(tmp_path / 'missing.pth'),
              str(tmp_path / 'new.pth')])


# --- training on the built-in data -------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize('family,arch', [
    ('cas_vit', 'xs'), ('cmt', 'ti'), ('efficientvit', 'm0'),
    ('castling_vit', 'xs')])
def test_classifier_trains_and_validates(family, arch, toy_imagenet,
                                         tmp_path):
    cfg = load_config(
        osp.join(ROOT, 'configs', family, f'imagenet_{family}_{arch}.py'),
        [osp.join(ROOT, 'configs', '_toy_', 'imagenet.py')])
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = toy_imagenet
        cfg[loader].batch_size = 8
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.train_dataloader.dataset.indices = 8  # one iteration
    runner = make_runner(cfg, tmp_path)
    weight = runner.model.head.cls.fc.weight
    before = weight.detach().clone()
    runner.train()
    assert runner.iter == 1
    assert not torch.equal(before, weight)
    metrics = runner.val_loop.run()
    assert 0 <= metrics['accuracy/top1'] <= 100


@pytest.mark.slow
def test_toy_classification_through_the_tools(toy_imagenet, tmp_path):
    """tools/train.py then tools/test.py, with the README's overlay."""
    work = tmp_path / 'work'
    options = ['--cfg-options', f'train_dataloader.dataset.data_root='
               f'{toy_imagenet}', f'val_dataloader.dataset.data_root='
               f'{toy_imagenet}', f'test_dataloader.dataset.data_root='
               f'{toy_imagenet}', 'train_cfg.max_epochs=1',
               'train_cfg.val_interval=1', 'train_dataloader.batch_size=8']
    run_tool(['tools/train.py', 'configs/efficientvit/imagenet_efficientvit_m0.py',
              '--overlay', 'configs/_toy_/imagenet.py', '--work-dir',
              str(work)] + options)
    proc = run_tool(['tools/test.py', 'configs/efficientvit/imagenet_efficientvit_m0.py',
                     str(work / 'epoch_1.pth'), '--overlay',
                     'configs/_toy_/imagenet.py', '--work-dir',
                     str(tmp_path / 'test')] + options)
    printed = proc.stdout + proc.stderr
    top1 = re.search(r'accuracy/top1: ([\d.]+)', printed)
    assert top1
    # deployed (folded norms): the same accuracy
    proc = run_tool(['tools/test.py', 'configs/efficientvit/imagenet_efficientvit_m0.py',
                     str(work / 'epoch_1.pth'), '--overlay',
                     'configs/_toy_/imagenet.py', '--work-dir',
                     str(tmp_path / 'deployed'), '--deploy'] + options)
    deployed = re.search(r'accuracy/top1: ([\d.]+)',
                         proc.stdout + proc.stderr)
    assert deployed and deployed.group(1) == top1.group(1)
    # the deployed classifier exported to ONNX and run by onnxruntime
    proc = run_tool(['tools/test.py', 'configs/efficientvit/imagenet_efficientvit_m0.py',
                     str(work / 'epoch_1.pth'), '--overlay',
                     'configs/_toy_/imagenet.py', '--work-dir',
                     str(tmp_path / 'ort'), '--backend', 'onnxruntime']
                    + options)
    ort = re.search(r'accuracy/top1: ([\d.]+)', proc.stdout + proc.stderr)
    assert ort and ort.group(1) == top1.group(1)
    assert (tmp_path / 'ort' / 'imagenet_efficientvit_m0.onnx').is_file()


def test_head_deploys_to_one_linear_layer():
    """The classifier head's BatchNorms fold into its linear layers and the
    distillation classifier averages into the first: the same logits from
    one linear layer, and ``deploy=True`` builds that structure."""
    import copy

    from mmvit.deploy import switch_to_deploy
    from mmvit.models.heads import NormLinearClsHead
    kwargs = dict(num_classes=10, in_channels=16, with_bn=True, dropout=0.1,
                  distilled=True)
    head = NormLinearClsHead(**kwargs)
    with torch.no_grad():
        for param in head.parameters():
            param.normal_()
        for bn in (head.cls.bn, head.dist.bn):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2)
    head.eval()
    x = torch.randn(4, 16)
    with torch.no_grad():
        expected = head((x, ))
        deployed = switch_to_deploy(copy.deepcopy(head))
        got = deployed((x, ))
    assert deployed.dist is None and list(deployed.cls._modules) == ['fc']
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    rebuilt = NormLinearClsHead(**kwargs, deploy=True)
    rebuilt.load_state_dict(deployed.state_dict(), strict=True)
    with pytest.raises(RuntimeError, match='deployed'):
        deployed.loss((x, ), [])
