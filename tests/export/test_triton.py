"""`python -m export triton`: the repository's layout and every config, for the three deeplab_dcnn variants.

Configs are parsed with Triton's own ModelConfig protobuf (from tritonclient), so a field Triton does not know fails
here; names, types and dims are checked against the model's metadata and across the ensemble's steps."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("tritonclient.grpc")
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2 as mc  # noqa: E402

from export.cli import main as cli_main  # noqa: E402
from export.triton import (  # noqa: E402
    MODEL_NAMES, RepositoryOptions, TritonExportError, pbtxt_string, write_repository)
from runtime.metadata import ONNX_METADATA_KEY, ModelMeta  # noqa: E402

CLASSES = ("background", "road", "car", "person", "tree")


def tiny_onnx(path: Path, n_classes: int = len(CLASSES), with_meta: bool = True, batch: int | str = "batch") -> Path:
    """A stride-8 conv as a stand-in network: image N×3×H×W (dynamic, or N fixed by ``batch``) -> logits
    N×C×H/8×W/8, with metadata."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(0, 0.01, (n_classes, 3, 8, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["logits"], strides=[8, 8])], "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, n_classes, "h", "w"])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if with_meta:
        names = CLASSES if n_classes == len(CLASSES) else tuple(f"c{i}" for i in range(n_classes))
        helper.set_model_props(model, {ONNX_METADATA_KEY: ModelMeta(class_names=names).to_json()})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")


def fake_engine(tmp_path: Path, profile: dict[str, list[int]], io_dtype: str = "float32") -> Path:
    """An engine file as the exporter leaves it (bytes + sidecar). The writer never deserializes it."""
    engine_info = pytest.importorskip("runtime.engine_info")
    path = tmp_path / "model.plan"
    path.write_bytes(b"not deserialized by the repository writer")
    info = engine_info.EngineInfo(tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7",
                                  precision="fp16", profile=profile, input_dtype=io_dtype, output_dtype=io_dtype)
    engine_info.write_sidecar(path, ModelMeta(class_names=CLASSES), info)
    return path


def load_configs(repo: Path) -> dict[str, mc.ModelConfig]:
    configs = {}
    for name in MODEL_NAMES:
        config = mc.ModelConfig()
        text_format.Parse((repo / name / "config.pbtxt").read_text(), config)
        configs[name] = config
    return configs


def meta_of(config: mc.ModelConfig) -> ModelMeta:
    return ModelMeta.from_json(config.parameters["deeplab_meta"].string_value)


def check_ensemble(configs: dict[str, mc.ModelConfig]) -> None:
    """Both ensembles: every step's tensors exist in its model's config with the same type; the chain is connected."""
    for name in ("deeplab", "deeplab_probs"):
        _check_ensemble(configs, configs[name])


def _check_ensemble(configs: dict[str, mc.ModelConfig], ens: mc.ModelConfig) -> None:
    assert ens.platform == "ensemble"
    available = {t.name: t.data_type for t in ens.input}
    for step in ens.ensemble_scheduling.step:
        model = configs[step.model_name]
        inputs = {t.name: t.data_type for t in model.input}
        outputs = {t.name: t.data_type for t in model.output}
        assert set(step.input_map) == set(inputs), step.model_name
        assert set(step.output_map) <= set(outputs), step.model_name
        for model_tensor, ens_tensor in step.input_map.items():
            assert ens_tensor in available, f"{step.model_name}: {ens_tensor} is produced by no earlier step"
            assert available[ens_tensor] == inputs[model_tensor]
        for model_tensor, ens_tensor in step.output_map.items():
            available[ens_tensor] = outputs[model_tensor]
        assert model.max_batch_size >= ens.max_batch_size
    for out in ens.output:
        assert available[out.name] == out.data_type


def test_python_variant_layout_and_configs(model, tmp_path):
    repo, backend = write_repository(model, tmp_path / "repo", RepositoryOptions(dcnn_backend="python"))
    assert backend == "python"
    for rel in ("deeplab/1", "deeplab_probs/1", "deeplab_pre/1/model.py", "deeplab_post/1/model.py",
                "deeplab_dcnn/1/model.py", "deeplab_dcnn/1/model.onnx"):
        assert (repo / rel).exists(), rel
    assert (repo / "deeplab_dcnn/1/model.onnx").read_bytes() == model.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name != "repo"], "temporary directories left behind"
    configs = load_configs(repo)
    for name, config in configs.items():
        assert config.name == name
    dcnn = configs["deeplab_dcnn"]
    assert dcnn.backend == "python" and not dcnn.platform
    assert dcnn.parameters["model_filename"].string_value == "model.onnx"
    assert dcnn.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    for name in ("deeplab_pre", "deeplab_dcnn", "deeplab_post"):
        assert meta_of(configs[name]) == ModelMeta(class_names=CLASSES)
    post = configs["deeplab_post"]
    assert post.parameters["crf"].string_value == "true"
    assert post.parameters["crf_preset"].string_value == "default"  # the model's own preset, as runtime.Segmenter
    check_ensemble(configs)


def test_ensemble_is_image_in_labels_out(model, tmp_path):
    repo, _ = write_repository(model, tmp_path / "repo", RepositoryOptions(dcnn_backend="python", max_batch=4))
    configs = load_configs(repo)
    for name, outputs_wanted in (("deeplab", ["LABELS"]), ("deeplab_probs", ["LABELS", "PROBS"])):
        ens = configs[name]
        (image,) = ens.input
        assert (image.name, image.data_type, list(image.dims)) == ("IMAGE", mc.TYPE_UINT8, [-1, -1, 3])
        outputs = {o.name: o for o in ens.output}
        assert sorted(outputs) == outputs_wanted
        assert outputs["LABELS"].data_type == mc.TYPE_UINT8 and list(outputs["LABELS"].dims) == [-1, -1]
        assert [s.model_name for s in ens.ensemble_scheduling.step] == ["deeplab_pre", "deeplab_dcnn",
                                                                        "deeplab_post"]
        assert sorted(ens.ensemble_scheduling.step[2].output_map) == outputs_wanted, \
            "labels-only clients must not make deeplab_post compute probabilities"
        assert ens.max_batch_size == 4
    assert list({o.name: o for o in configs["deeplab_probs"].output}["PROBS"].dims) == [len(CLASSES), -1, -1]


def test_int32_labels_beyond_256_classes(tmp_path):
    big = tiny_onnx(tmp_path / "big.onnx", n_classes=300)
    repo, _ = write_repository(big, tmp_path / "repo", RepositoryOptions(dcnn_backend="python"))
    configs = load_configs(repo)
    assert {o.name: o.data_type for o in configs["deeplab"].output}["LABELS"] == mc.TYPE_INT32
    check_ensemble(configs)


def test_onnxruntime_variant(model, tmp_path):
    opts = RepositoryOptions(max_batch=16, instances=2)
    repo, backend = write_repository(model, tmp_path / "repo", opts)
    assert backend == "onnxruntime_onnx"  # the default for an ONNX model
    configs = load_configs(repo)
    dcnn = configs["deeplab_dcnn"]
    assert dcnn.platform == "onnxruntime_onnx" and dcnn.default_model_filename == "model.onnx"
    assert (repo / "deeplab_dcnn/1/model.onnx").is_file() and not (repo / "deeplab_dcnn/1/model.py").exists()
    assert dcnn.max_batch_size == 16
    (inp,), (out,) = dcnn.input, dcnn.output
    assert (inp.name, inp.data_type, list(inp.dims)) == ("image", mc.TYPE_FP32, [3, -1, -1])
    assert (out.name, out.data_type, list(out.dims)) == ("logits", mc.TYPE_FP32, [len(CLASSES), -1, -1])
    assert dcnn.HasField("dynamic_batching")
    assert dcnn.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU and dcnn.instance_group[0].count == 2
    text = (repo / "deeplab_dcnn/config.pbtxt").read_text()
    assert "# gpus: [ 0, 1 ]" in text and "KIND_CPU" in text and "gpu_execution_accelerator" in text
    check_ensemble(configs)


def test_tensorrt_variant_from_engine_profile(tmp_path):
    engine = fake_engine(tmp_path, {"min": [1, 3, 512, 512], "opt": [2, 3, 512, 512], "max": [4, 3, 512, 512]})
    repo, backend = write_repository(engine, tmp_path / "repo", RepositoryOptions(max_batch=8))
    assert backend == "tensorrt_plan"
    configs = load_configs(repo)
    dcnn = configs["deeplab_dcnn"]
    assert dcnn.platform == "tensorrt_plan" and dcnn.default_model_filename == "model.plan"
    assert (repo / "deeplab_dcnn/1/model.plan").is_file() and (repo / "deeplab_dcnn/1/model.plan.json").is_file()
    assert dcnn.max_batch_size == 4, "the engine profile's max N caps the batch"
    assert list(dcnn.input[0].dims) == [3, 512, 512], "a fixed-size profile gives fixed dims"
    assert dcnn.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert "# gpus: [ 0, 1 ]" in (repo / "deeplab_dcnn/config.pbtxt").read_text()
    pre, post = configs["deeplab_pre"], configs["deeplab_post"]
    assert pre.parameters["pad_to"].string_value == "512x512" == post.parameters["pad_to"].string_value
    assert list(pre.output[0].dims) == [3, 512, 512]
    assert configs["deeplab"].max_batch_size == 4
    check_ensemble(configs)


def test_tensorrt_variant_dynamic_profile(tmp_path):
    engine = fake_engine(tmp_path, {"min": [1, 3, 64, 64], "opt": [1, 3, 512, 512], "max": [8, 3, 1024, 1024]})
    repo, _ = write_repository(engine, tmp_path / "repo")
    configs = load_configs(repo)
    assert list(configs["deeplab_dcnn"].input[0].dims) == [3, -1, -1]
    assert configs["deeplab_pre"].parameters["pad_to"].string_value == ""
    check_ensemble(configs)


def _io(config: mc.ModelConfig) -> dict[str, tuple[int, list[int]]]:
    return {t.name: (t.data_type, list(t.dims)) for t in (*config.input, *config.output)}


@pytest.mark.parametrize("backend", ["onnxruntime_onnx", "python"])
def test_fp16_io_model_is_served_in_fp16(model, tmp_path, backend):
    """`export fp16 --fp16-io` gives fp16 I/O: deeplab_dcnn declares it, deeplab_pre casts to it and deeplab_post
    reads it (an FP32 config in front of an FP16 network does not load)."""
    from export.fp16 import convert

    fp16 = tmp_path / "tiny.fp16.onnx"
    convert(model, fp16, keep_io_types=False)
    repo, _ = write_repository(fp16, tmp_path / "repo", RepositoryOptions(dcnn_backend=backend))
    configs = load_configs(repo)
    dcnn = _io(configs["deeplab_dcnn"])
    assert dcnn["image"] == (mc.TYPE_FP16, [3, -1, -1]) and dcnn["logits"] == (mc.TYPE_FP16, [len(CLASSES), -1, -1])
    assert _io(configs["deeplab_pre"])["INPUT"][0] == mc.TYPE_FP16
    assert _io(configs["deeplab_post"])["LOGITS"][0] == mc.TYPE_FP16
    assert _io(configs["deeplab_probs"])["PROBS"][0] == mc.TYPE_FP32  # probabilities are computed in float32
    check_ensemble(configs)


def test_fp16_io_engine_is_served_in_fp16(tmp_path):
    engine = fake_engine(tmp_path, {"min": [1, 3, 64, 64], "opt": [1, 3, 512, 512], "max": [4, 3, 1024, 1024]},
                         io_dtype="float16")
    configs = load_configs(write_repository(engine, tmp_path / "repo")[0])
    assert {t: d for t, (d, _) in _io(configs["deeplab_dcnn"]).items()} == {"image": mc.TYPE_FP16,
                                                                            "logits": mc.TYPE_FP16}
    check_ensemble(configs)


def test_bfloat16_io_is_refused(tmp_path):
    engine = fake_engine(tmp_path, {"min": [1, 3, 64, 64], "opt": [1, 3, 512, 512], "max": [4, 3, 1024, 1024]},
                         io_dtype="bfloat16")
    with pytest.raises(TritonExportError, match="input is bfloat16: deeplab_pre and deeplab_post cast only to "
                                                "float32, float16, float64"):
        write_repository(engine, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def _check_unbatched(configs: dict[str, mc.ModelConfig], n: int) -> None:
    """Every model non-batching (max_batch_size 0) with N leading every tensor's dims."""
    for name, config in configs.items():
        assert config.max_batch_size == 0, name
        for tensor, (_, dims) in _io(config).items():
            assert dims[0] == n, (name, tensor, dims)
    assert not configs["deeplab_dcnn"].HasField("dynamic_batching")


@pytest.mark.parametrize("backend", ["onnxruntime_onnx", "python"])
def test_fixed_batch_onnx_is_not_batched_by_triton(tmp_path, backend):
    """An ONNX with a static N: Triton rejects max_batch_size > 0 for it, so every model gets 0 and full dims."""
    fixed = tiny_onnx(tmp_path / "fixed.onnx", batch=1)
    configs = load_configs(write_repository(fixed, tmp_path / "repo", RepositoryOptions(dcnn_backend=backend))[0])
    _check_unbatched(configs, 1)
    assert _io(configs["deeplab_dcnn"])["image"][1] == [1, 3, -1, -1]
    assert _io(configs["deeplab"])["IMAGE"][1] == [1, -1, -1, 3]
    assert _io(configs["deeplab_probs"])["PROBS"][1] == [1, len(CLASSES), -1, -1]
    check_ensemble(configs)


def test_one_batch_size_engine_is_not_batched_by_triton(tmp_path):
    engine = fake_engine(tmp_path, {"min": [2, 3, 512, 512], "opt": [2, 3, 512, 512], "max": [2, 3, 512, 512]})
    configs = load_configs(write_repository(engine, tmp_path / "repo")[0])
    _check_unbatched(configs, 2)
    assert _io(configs["deeplab_dcnn"])["image"][1] == [2, 3, 512, 512]
    assert "fixed at 2" in (tmp_path / "repo" / "deeplab_dcnn" / "config.pbtxt").read_text()
    check_ensemble(configs)


def test_crf_options(model, tmp_path):
    opts = RepositoryOptions(dcnn_backend="python", crf=False, crf_preset="example", crf_iterations=5)
    repo, _ = write_repository(model, tmp_path / "repo", opts)
    post = load_configs(repo)["deeplab_post"]
    assert post.parameters["crf"].string_value == "false"
    assert post.parameters["crf_preset"].string_value == "example"
    assert post.parameters["crf_iterations"].string_value == "5"


@pytest.mark.parametrize("backend", ["tensorrt_plan"])
def test_engine_variant_needs_an_engine(model, tmp_path, backend):
    with pytest.raises(TritonExportError, match="python -m export engine"):
        write_repository(model, tmp_path / "repo", RepositoryOptions(dcnn_backend=backend))
    assert not (tmp_path / "repo").exists()


def test_refuses_a_non_empty_directory_unless_forced(model, tmp_path):
    out = tmp_path / "repo"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(TritonExportError, match="--force"):
        write_repository(model, out)
    assert (out / "keep.txt").exists()
    write_repository(model, out, force=True)
    assert not (out / "keep.txt").exists() and (out / "deeplab").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_model_without_metadata(tmp_path):
    bare = tiny_onnx(tmp_path / "bare.onnx", with_meta=False)
    with pytest.raises(TritonExportError, match="no 'deeplab' metadata"):
        write_repository(bare, tmp_path / "repo")


def test_pbtxt_string_escapes_json():
    text = json.dumps({"a": 'quote " and \\ backslash'})
    config = mc.ModelConfig()
    text_format.Parse(f'parameters: {{ key: "k" value: {{ string_value: "{pbtxt_string(text)}" }} }}', config)
    assert config.parameters["k"].string_value == text


def test_cli(model, tmp_path, capsys):
    assert cli_main(["triton", str(model), "-o", str(tmp_path / "repo"), "--dcnn-backend", "python", "--no-crf"]) == 0
    assert "deeplab_dcnn: python" in capsys.readouterr().out
    assert cli_main(["triton", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "repo2")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: model file not found") and len(err.strip().splitlines()) == 1


def test_repository_of_a_real_exported_deeplab(small_onnx, tmp_path):
    """The ONNX that `python -m export onnx` writes (a small DeepLab v2): names, types and dims from its metadata."""
    repo, _ = write_repository(small_onnx, tmp_path / "repo", RepositoryOptions(dcnn_backend="onnxruntime_onnx"))
    configs = load_configs(repo)
    meta = meta_of(configs["deeplab_dcnn"])
    (inp,), (out,) = configs["deeplab_dcnn"].input, configs["deeplab_dcnn"].output
    assert (inp.name, list(inp.dims)) == (meta.input_name, [3, -1, -1])
    assert (out.name, list(out.dims)) == (meta.output_name, [meta.n_classes, -1, -1])
    assert list(configs["deeplab_probs"].output[1].dims) == [meta.n_classes, -1, -1]
    check_ensemble(configs)


def test_unwritable_repository_is_said_before_the_model_is_read(tmp_path, read_only_dir, capsys):
    (tmp_path / "model.pt").write_text("a file")
    missing = tmp_path / "missing.onnx"  # never read: the output is checked first
    for out, reason in ((tmp_path / "model.pt" / "repo", f"{tmp_path / 'model.pt'} is a file, not a directory"),
                        (read_only_dir / "repo", f"{read_only_dir} is not writable (")):
        assert cli_main(["triton", str(missing), "-o", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: cannot write {out}: {reason}") and ".tmp" not in err and "\n" not in err
