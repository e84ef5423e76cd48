"""YOLOv8 with cascaded group attention, on the ultralytics package.

mmyolo, OpenMMLab's YOLO library, cannot live in this stack (its 0.6.0
refuses mmcv >= 2.1 at import, and mmcv 2.0 does not build against the
torch this stack needs), so the YOLOv8 models here are ultralytics' own:
:func:`register` makes :class:`~mmvit.models.plugins.CGABlock` a layer name
that ultralytics' model-YAML parser resolves, and ``projects/yolov8_cga/yolov8_cga/models/``
ships YOLOv8-n/s YAMLs with the block after the last backbone stage
(``yolov8n-cga``) and also on the neck's P5 output (``yolov8n-cga-neck``).
ultralytics is optional (``pip install "mmvit[yolo]"``, AGPL-3.0).

* :func:`build_model` -- an ``ultralytics.YOLO`` by name (``yolov8n`` is
  ultralytics' plain model, ``yolov8n-cga`` ours);
* :mod:`yolov8_cga.data` -- the built-in COCO-layout data in YOLO layout;
* :mod:`yolov8_cga.evaluate` -- COCO box AP (pycocotools) of a YOLO model;
* :mod:`yolov8_cga.compare` -- plain against CGA on the same data and
  schedule, and the 640x640 latency benchmark.
"""
import os.path as osp

MODEL_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'models')
CGA_MODELS = ('yolov8n-cga', 'yolov8s-cga', 'yolov8n-cga-neck',
              'yolov8s-cga-neck')
PLAIN_MODELS = ('yolov8n', 'yolov8s')


def import_ultralytics():
    """``ultralytics``, or an ImportError that says how to install it."""
    try:
        import ultralytics
    except ImportError as err:
        raise ImportError(
            'yolov8_cga needs the ultralytics package (AGPL-3.0), an '
            'optional extra of mmvit: pip install "mmvit[yolo]"') from err
    return ultralytics


def register():
    """Make ``CGABlock`` a layer name of ultralytics' model YAMLs.

    ultralytics' parser looks layer names up in the namespace of
    ``ultralytics.nn.tasks``; the block is added there (nothing installed
    is edited). Layers it does not know get their arguments verbatim and
    keep their input's channels, as the block does:
    ``[-1, 1, CGABlock, [channels, heads]]``. Idempotent.
    """
    import_ultralytics()
    from ultralytics.nn import tasks

    from mmvit.models.plugins import CGABlock
    tasks.CGABlock = CGABlock


def model_yaml(name):
    """The model YAML of ``name``: a file of ``projects/yolov8_cga/yolov8_cga/models`` for the
    CGA models, ultralytics' own ``<name>.yaml`` for the plain ones."""
    if name in CGA_MODELS:
        return osp.join(MODEL_DIR, f'{name}.yaml')
    if name in PLAIN_MODELS:
        return f'{name}.yaml'
    raise ValueError(f'yolov8_cga: unknown model {name!r}; choose one of '
                     f'{", ".join(PLAIN_MODELS + CGA_MODELS)}')


def build_model(name, num_classes=None, verbose=False):
    """An untrained ``ultralytics.YOLO`` of model ``name`` (see
    :func:`model_yaml`); ``num_classes`` replaces the YAML's 80."""
    register()
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    yolo = YOLO(model_yaml(name), task='detect', verbose=False)
    if num_classes is not None:
        yolo.model = DetectionModel(yolo.model.yaml, nc=num_classes,
                                    verbose=verbose)
    return yolo


__all__ = ['register', 'build_model', 'model_yaml', 'import_ultralytics',
           'CGA_MODELS', 'PLAIN_MODELS', 'MODEL_DIR']
