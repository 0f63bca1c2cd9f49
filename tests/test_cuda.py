"""The PyTorch backend on a CUDA GPU (skipped where there is none)."""

import numpy as np
import pytest
from conftest import synthetic_images

import featurelens as fl

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")]


def test_trains_on_the_gpu_and_round_trips(tmp_path):
    labels = np.tile(np.arange(10), 40)
    images = synthetic_images(labels)
    spec = fl.get_preset("tiny")
    config = fl.TrainConfig(epochs=3, batch_size=32, device="auto")
    model = fl.train(spec, images, labels, config, backend="torch", progress=False)
    assert model.history.device.startswith("cuda")
    assert model.backend.device(model.native).startswith("cuda")
    assert model.evaluate(images, labels).accuracy > 0.3
    loaded = fl.load_model(model.save(tmp_path / "m"))
    assert loaded.backend.device(loaded.native) == "cpu"  # loading never needs the GPU
    # cuDNN convolutions use TF32 by default, so GPU and CPU agree to about 1e-4, not bit for bit
    np.testing.assert_allclose(loaded.predict(images), model.predict(images), atol=2e-3)
    assert (loaded.predict(images).argmax(1) == model.predict(images).argmax(1)).mean() > 0.99


def test_feature_maps_of_a_gpu_model_match_the_cpu(tmp_path):
    labels = np.tile(np.arange(10), 10)
    images = synthetic_images(labels)
    model = fl.train(fl.get_preset("tiny"), images, labels, fl.TrainConfig(epochs=1, device="cuda"),
                     backend="torch", progress=False)
    on_cpu = fl.load_model(model.save(tmp_path / "m"))
    gpu_maps, cpu_maps = model.feature_maps(images[:8]), on_cpu.feature_maps(images[:8])
    for name in cpu_maps:
        np.testing.assert_allclose(gpu_maps[name], cpu_maps[name], atol=5e-3, rtol=5e-3, err_msg=name)
    assert sum(len(m._forward_hooks) for m in model.native.modules()) == 0


def test_gpu_feature_maps_come_through_pinned_memory_and_outlive_their_batch(tmp_path):
    labels = np.tile(np.arange(10), 4)
    images = synthetic_images(labels)
    model = fl.train(fl.get_preset("tiny"), images, labels, fl.TrainConfig(epochs=1, device="cuda"),
                     backend="torch", progress=False)
    on_cpu = fl.load_model(model.save(tmp_path / "m"))
    batches = list(model.iter_feature_maps(images, ["block1_relu1", "head_softmax"], batch_size=16))  # 3 batches
    assert len(batches) == 3
    expected = on_cpu.feature_maps(images, ["block1_relu1", "head_softmax"])
    for name in expected:  # each batch's arrays still hold that batch after the later ones were copied
        got = np.concatenate([b[name] for b in batches])
        np.testing.assert_allclose(got, expected[name], atol=5e-3, rtol=5e-3, err_msg=name)
        assert all(b[name].flags.c_contiguous and b[name].dtype == np.float32 for b in batches)


def test_gpu_channel_summaries_pass_the_kit_and_find_the_cpu_dataset_examples(tmp_path):
    from featurelens.atlas.examples import dataset_examples
    from featurelens.testing import check_backend

    class OnGpu(type(fl.get_backend("torch"))):  # the kit's models moved to the GPU
        def build(self, spec, seed=0):
            return super().build(spec, seed).to("cuda")

    results = check_backend(OnGpu(), only=["channel_summaries", "introspection_cleanup"])
    assert not any(r.failed for r in results), [r.message for r in results if r.failed]
    labels = np.tile(np.arange(10), 10)
    images = synthetic_images(labels)
    model = fl.train(fl.get_preset("tiny"), images, labels, fl.TrainConfig(epochs=1, device="cuda"),
                     backend="torch", progress=False)
    on_cpu = fl.load_model(model.save(tmp_path / "m"))
    gpu, cpu = dataset_examples(model, images, top=3), dataset_examples(on_cpu, images, top=3)
    for name in cpu:  # TF32 convolutions: compare values loosely, and the best example exactly where clear
        np.testing.assert_allclose(gpu[name].values, cpu[name].values, atol=5e-3, rtol=5e-3, err_msg=name)
        clear = (cpu[name].values[:, 0] - cpu[name].values[:, 1]) > 1e-2
        np.testing.assert_array_equal(gpu[name].indices[clear, 0], cpu[name].indices[clear, 0], err_msg=name)
