"""Caffe semantics of the caffemodel import, the prototxt check, and every bad file's one-line error."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from caffe_nets import caffemodel_bytes, parse, prototxt, random_blobs

from export.caffe_proto import message_class, read_caffemodel
from export.checkpoint import CheckpointError, load_model
from export.model import ASPP_L, ASPP_S, LARGE_FOV
from runtime.metadata import CAFFE_BGR_MEAN

SMALL = {"blocks": (1, 1, 2, 1), "width": 4}


def _write(path, text, blobs=None):
    path.write_bytes(caffemodel_bytes(text, random_blobs(text) if blobs is None else blobs))
    return path


@pytest.fixture
def resnet(tmp_path):
    text = prototxt("resnet", 5, ASPP_L, **SMALL)
    blobs = random_blobs(text)
    return _write(tmp_path / "net.caffemodel", text, blobs), text, blobs


def test_batchnorm_divides_by_the_moving_average_factor_and_zero_means_one(tmp_path):
    text = prototxt("resnet", 5, ASPP_L, **SMALL)
    blobs = random_blobs(text)
    mean, var = blobs["bn_conv1"][0] / blobs["bn_conv1"][2][0], blobs["bn_conv1"][1] / blobs["bn_conv1"][2][0]
    blobs["bn2a_branch2a"][2][:] = 0  # Caffe: a zero factor means 1
    model, ckpt = load_model(_write(tmp_path / "m.caffemodel", text, blobs))
    bn = model.layer1.conv1.bn
    assert blobs["bn_conv1"][2][0] != 1
    np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), var, rtol=1e-6)
    np.testing.assert_array_equal(bn.weight.detach().numpy(), blobs["scale_conv1"][0])  # Scale gamma
    np.testing.assert_array_equal(bn.bias.detach().numpy(), blobs["scale_conv1"][1])  # Scale beta
    assert bn.eps == 1e-5
    np.testing.assert_array_equal(model.layer2.block1.reduce.bn.running_mean.numpy(), blobs["bn2a_branch2a"][0])
    assert ckpt.layout == "caffe" and ckpt.meta["aspp_rates"] == list(ASPP_L)


def test_geometry_is_caffes(resnet):
    model, _ = load_model(resnet[0])
    assert model.layer1.pool.ceil_mode and model.layer1.pool.padding == 1
    assert model.layer3.block1.reduce.conv.stride == (2, 2)  # the stride is in the 1×1 reduce conv
    assert model.layer3.block1.conv3x3.conv.stride == (1, 1)
    assert model.layer5.block1.conv3x3.conv.dilation == (4, 4)


def test_rates_and_classes_come_from_the_file(tmp_path):
    text = prototxt("resnet", 3, ASPP_S, **SMALL)
    model, _ = load_model(_write(tmp_path / "s.caffemodel", text))
    assert model.aspp_rates == ASPP_S and model.n_classes == 3
    with pytest.raises(CheckpointError, match=r"ASPP rates are \[2, 4, 8, 12\], not \[6, 12, 18, 24\]"):
        load_model(tmp_path / "s.caffemodel", aspp_rates=ASPP_L)


@pytest.mark.parametrize("pool5a", [False, True])
def test_vgg_large_fov_and_aspp(tmp_path, pool5a):
    for rates in (LARGE_FOV, ASPP_S):
        text = prototxt("vgg16", 4, rates, width=8, fc_width=16, pool5a=pool5a)
        model, _ = load_model(_write(tmp_path / "v.caffemodel", text))
        assert model.backbone == "vgg16" and model.aspp_rates == rates and model.pool5a == pool5a


def test_v1_layers_with_legacy_blob_shapes_load_the_same(tmp_path):
    """DeepLab v1-era files: the V1 ``layers`` field (enum types) and num/channels/height/width blobs."""
    text = prototxt("vgg16", 4, LARGE_FOV, width=8, fc_width=16)
    blobs = random_blobs(text)
    current, _ = load_model(_write(tmp_path / "v2.caffemodel", text, blobs))
    net, v1 = parse(text), message_class("NetParameter")()
    types = {"Convolution": 4, "ReLU": 18, "Pooling": 17, "Dropout": 6}
    for layer in net.layer:
        old = v1.layers.add(name=layer.name, type=types[layer.type])
        old.bottom.extend(layer.bottom)
        old.top.extend(layer.top)
        for field in ("convolution_param", "pooling_param"):
            if layer.HasField(field):
                getattr(old, field).CopyFrom(getattr(layer, field))
        for array in blobs.get(layer.name, []):
            shape = (1,) * (4 - array.ndim) + array.shape
            old.blobs.add(num=shape[0], channels=shape[1], height=shape[2], width=shape[3]).data.extend(
                array.ravel().tolist())
    (tmp_path / "v1.caffemodel").write_bytes(v1.SerializeToString())
    legacy, _ = load_model(tmp_path / "v1.caffemodel")
    x = torch.randn(1, 3, 41, 41)
    with torch.no_grad():
        assert torch.equal(legacy(x), current(x))


def test_export_records_caffe_preprocessing_and_summary(resnet, tmp_path):
    from export.onnx_export import export_onnx

    lines = []
    meta = export_onnx(resnet[0], tmp_path / "m.onnx", height=33, width=33, log=lines.append).meta
    assert meta.channel_order == "BGR" and meta.mean == CAFFE_BGR_MEAN and meta.scale == (1.0, 1.0, 1.0)
    assert lines[0] == ("DeepLab v2 ResNet (blocks 1-1-2-1, width 4), ASPP-L, 5 classes, Caffe layout, "
                        "single scale")
    assert meta.extra["layout"] == "caffe"


# ---- bad files: one line each ----

def _one_line_error(path, match, **kwargs):
    with pytest.raises(CheckpointError) as info:
        load_model(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(match, message), message
    return message


def test_truncated_inside_a_blob(resnet):
    path = resnet[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _one_line_error(path, r"truncated or corrupt caffemodel")


def test_truncated_at_a_layer_boundary(resnet, tmp_path):
    net = parse(resnet[1])
    kept = list(net.layer)[: len(net.layer) // 2]
    del net.layer[:]
    net.layer.extend(kept)
    text = str(net)
    path = _write(tmp_path / "cut.caffemodel", text, {k: v for k, v in resnet[2].items()})
    _one_line_error(path, r"truncated caffemodel: it ends after layer '\w+' with no classifier")


def test_classification_resnet_is_another_network(tmp_path):
    text = prototxt("resnet", 5, ASPP_L, **SMALL).split('layer { name: "fc1_voc12_c0"')[0]
    text += ('layer { name: "pool5" type: "Pooling" bottom: "res5a" top: "pool5" pooling_param { pool: AVE '
             'kernel_size: 7 stride: 1 } }\n'
             'layer { name: "fc1000" type: "InnerProduct" bottom: "pool5" top: "fc1000" }\n')
    blobs = random_blobs(text)
    blobs["fc1000"] = [np.zeros((10, 128), np.float32), np.zeros(10, np.float32)]
    _one_line_error(_write(tmp_path / "imagenet.caffemodel", text, blobs),
                    r"a caffemodel of another network: ResNet without the DeepLab v2 classifier after 'res5a' "
                    r"\(found InnerProduct 'fc1000'\)")


def test_unknown_network(tmp_path):
    text = ('layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" }\n')
    _one_line_error(_write(tmp_path / "lenet.caffemodel", text, {"ip1": [np.ones((2, 3), np.float32)]}),
                    r"not a DeepLab v2 network: expected ResNet layers .* first layers with weights: ip1 "
                    r"\(InnerProduct\)")


def test_not_a_caffemodel(tmp_path):
    (tmp_path / "x.caffemodel").write_bytes(b"\xff" * 64)
    _one_line_error(tmp_path / "x.caffemodel", r"truncated or corrupt caffemodel|not a caffemodel")
    (tmp_path / "e.caffemodel").write_bytes(b"")
    _one_line_error(tmp_path / "e.caffemodel", r"file is empty")


def test_wrong_stride_placement_is_named(tmp_path):
    text = prototxt("resnet", 5, ASPP_L, **SMALL)
    moved = text.replace('name: "res3a_branch2a" type: "Convolution" bottom: "res2a" top: "res3a_branch2a" '
                         'param { lr_mult: 1 } convolution_param { num_output: 8 kernel_size: 1 stride: 2',
                         'name: "res3a_branch2a" type: "Convolution" bottom: "res2a" top: "res3a_branch2a" '
                         'param { lr_mult: 1 } convolution_param { num_output: 8 kernel_size: 1 stride: 1')
    assert moved != text
    _one_line_error(_write(tmp_path / "m.caffemodel", moved), r"layer 'res3a_branch2a' has stride 1, DeepLab v2 has "
                                                              r"2 there")


def test_prototxt_that_agrees(resnet, tmp_path):
    (tmp_path / "deploy.prototxt").write_text(resnet[1])
    model, _ = load_model(resnet[0], prototxt=tmp_path / "deploy.prototxt")
    assert model.n_classes == 5


def test_prototxt_with_other_class_count_names_the_first_layer(resnet, tmp_path):
    (tmp_path / "deploy.prototxt").write_text(prototxt("resnet", 19, ASPP_L, **SMALL))
    message = _one_line_error(resnet[0], r"deploy.prototxt disagrees with .*net.caffemodel at layer 'fc1_voc12_c0': "
                                         r"num_output 19 vs 5 in the weights", prototxt=tmp_path / "deploy.prototxt")
    assert message.count("fc1_voc12") == 1


def test_prototxt_with_other_structure(resnet, tmp_path):
    (tmp_path / "deploy.prototxt").write_text(prototxt("resnet", 5, ASPP_S, **SMALL))
    _one_line_error(resnet[0], r"at layer 'fc1_voc12_c0': kernel/stride/pad/dilation \(3, 1, 2, 2\) vs "
                               r"\(3, 1, 6, 6\)", prototxt=tmp_path / "deploy.prototxt")
    (tmp_path / "deeper.prototxt").write_text(prototxt("resnet", 5, ASPP_L, blocks=(1, 1, 3, 1), width=4))
    _one_line_error(resnet[0], r"at layer 'res4c_branch2a': the prototxt's Convolution has no weights",
                    prototxt=tmp_path / "deeper.prototxt")


def test_cli_bad_caffemodel_exits_1_and_writes_nothing(resnet, tmp_path):
    from export.cli import main

    path = resnet[0]
    path.write_bytes(path.read_bytes()[:1000])
    out = tmp_path / "out.onnx"
    assert main(["onnx", str(path), "-o", str(out)]) == 1
    assert not out.exists()


def test_reader_keeps_layer_order_and_types(resnet):
    layers = read_caffemodel(resnet[0])
    assert [layer.name for layer in layers[:5]] == ["conv1", "bn_conv1", "scale_conv1", "conv1_relu", "pool1"]
    assert layers[1].type == "BatchNorm" and len(layers[1].blobs) == 3


def test_coco_init_with_a_1x1_classifier(tmp_path):
    """The official ``init.caffemodel`` (COCO): the ResNet with DeepLab v1's single 1×1 classifier."""
    from export.onnx_export import export_onnx

    text = prototxt("resnet", 91, ASPP_L, **SMALL).split('layer { name: "fc1_voc12_c0"')[0]
    text += ('layer { name: "fc1_coco" type: "Convolution" bottom: "res5a" top: "fc1_coco" '
             'convolution_param { num_output: 91 kernel_size: 1 } }\n')
    path = _write(tmp_path / "init.caffemodel", text)
    model, _ = load_model(path)
    assert model.aspp_kernel == 1 and model.n_classes == 91 and model.aspp_rates == (1,)
    lines = []
    meta = export_onnx(path, tmp_path / "init.onnx", height=33, width=33, log=lines.append).meta
    assert "1x1 classifier" in lines[0] and meta.extra["architecture"]["aspp_kernel"] == 1


def test_vgg_checkpoint_round_trip(tmp_path):
    """The VGG-16 model through our own .pt format (pool5a travels in the meta)."""
    from export.checkpoint import save_checkpoint

    text = prototxt("vgg16", 4, ASPP_S, width=8, fc_width=16, pool5a=True)
    model, _ = load_model(_write(tmp_path / "v.caffemodel", text))
    save_checkpoint(tmp_path / "v.pt", model)
    again, ckpt = load_model(tmp_path / "v.pt")
    assert again.pool5a and again.aspp_rates == ASPP_S and ckpt.layout == "kazuto"
    x = torch.randn(1, 3, 41, 57)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
