# Overlay: any RetinaNet config on the built-in toy COCO data, on CPU.
#   python tools/train.py configs/cas_vit/retinanet_cas_vit_s.py \
#       --overlay configs/_toy_/retinanet.py
_base_ = ['./coco.py']

model = dict(bbox_head=dict(num_classes=3))
