"""Introspection through the PyTorch backend: layers, filters, feature maps, hooks, user modules."""

import numpy as np
import pytest
from conftest import synthetic_images

import featurelens as fl

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
nn = torch.nn

CLASSES = [f"c{i}" for i in range(10)]


@pytest.fixture(scope="module")
def model():
    labels = np.tile(np.arange(10), 10)
    images = synthetic_images(labels)
    return fl.train(fl.get_preset("tiny"), images, labels,
                    fl.TrainConfig(epochs=1, batch_size=16, device="cpu"), backend="torch",
                    class_names=CLASSES, progress=False), images


def all_hooks(net):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules())


def test_layers_follow_the_spec(model):
    m, _ = model
    infos = m.layers()
    assert [i.name for i in infos] == m.spec.layer_names()
    assert [i.output_shape for i in infos] == [s.output_shape for s in m.spec.layers()]
    assert [i.params for i in infos] == [s.params for s in m.spec.layers()]
    assert m.conv_layers() == m.spec.conv_layer_names()


def test_feature_map_shapes_match_layers_for_every_layer(model):
    m, images = model
    maps = m.feature_maps(images[:5])
    assert list(maps) == [i.name for i in m.layers()]
    for info in m.layers():
        assert maps[info.name].shape == (5, *info.output_shape), info.name
        assert maps[info.name].dtype == np.float32


def test_feature_maps_are_the_forward_pass(model):
    m, images = model
    maps = m.feature_maps(images[:7], ["block1_conv1", "head_softmax"])
    np.testing.assert_allclose(maps["head_softmax"], m.predict(images[:7]), atol=1e-6)
    net = m.native
    x = torch.from_numpy(m.normalize(images[:7])).permute(0, 3, 1, 2)
    with torch.no_grad():
        expected = net.block1_conv1(x).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(maps["block1_conv1"], expected, atol=1e-5)


def test_batches_do_not_change_the_result(model):
    m, images = model
    whole = m.feature_maps(images[:20], "block2_relu1", batch_size=64)
    pieces = m.feature_maps(images[:20], "block2_relu1", batch_size=3)
    np.testing.assert_allclose(whole["block2_relu1"], pieces["block2_relu1"], atol=1e-6)
    chunks = list(m.iter_feature_maps(images[:20], ["block2_relu1"], batch_size=8))
    assert [len(c["block2_relu1"]) for c in chunks] == [8, 8, 4]


def test_hooks_are_removed_after_success_and_after_an_error(model):
    m, images = model
    net = m.native
    net.train()
    m.feature_maps(images[:3], ["block1_conv1", "dense1"])
    assert all_hooks(net) == 0 and net.training  # mode restored too

    def explode(module, inputs, output):
        raise RuntimeError("boom")

    handle = net.block2_conv1.register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            m.feature_maps(images[:3], ["block1_conv1", "block2_relu1"])
    finally:
        handle.remove()
    assert all_hooks(net) == 0 and net.training
    net.eval()


def test_dropout_is_off_and_no_gradients_are_kept(model):
    m, images = model
    a = m.feature_maps(images[:4], "block1_dropout")["block1_dropout"]
    b = m.feature_maps(images[:4], "block1_dropout")["block1_dropout"]
    np.testing.assert_array_equal(a, b)
    assert torch.is_grad_enabled()  # the caller's grad mode is untouched


def test_filters_are_c_out_kh_kw_c_in(model):
    m, _ = model
    f = m.filters("block1_conv1")
    weight = m.native.block1_conv1.weight.detach().numpy()
    assert f.shape == (8, 3, 3, 3) and f.dtype == np.float32
    np.testing.assert_array_equal(f[5, 1, 2, :], weight[5, :, 1, 2])
    with pytest.raises(ValueError, match="not a convolution; the conv layers are: block1_conv1, block2_conv1"):
        m.filters("block1_bn1")


def test_unknown_layer_lists_the_known_ones(model):
    m, images = model
    with pytest.raises(fl.LayerNotFoundError, match="no layer named 'block9_conv1'.*block1_conv1"):
        m.feature_maps(images[:2], ["block9_conv1"])


class HandWritten(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 4, 5, padding=2), nn.ReLU(inplace=True))
        self.head = nn.Linear(4 * 16 * 16, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


def test_a_hand_written_module_can_be_inspected(tmp_path):
    torch.manual_seed(0)
    net = HandWritten().eval()
    m = fl.wrap(net)
    assert m.backend.name == "torch"
    infos = m.layers()
    assert [i.name for i in infos] == ["features.0", "features.1", "features.2", "features.3", "features.4", "head"]
    assert infos[3].output_shape == (16, 16, 4) and infos[-1].output_shape == (10,)
    assert m.conv_layers() == ["features.0", "features.3"]
    assert m.filters("features.3").shape == (4, 5, 5, 6)
    images = np.random.default_rng(0).random((6, 32, 32, 3)).astype(np.float32)
    maps = m.feature_maps(images, ["features.0", "features", "head"])
    assert maps["features"].shape == (6, 16, 16, 4)  # a container module is addressable too
    # the in-place ReLU after features.0 must not have overwritten the captured conv output
    assert maps["features.0"].min() < 0
    probs = m.predict(images)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert all_hooks(net) == 0
    loaded = fl.load_model(m.save(tmp_path / "wrapped"), model=HandWritten)  # saved without pickle
    np.testing.assert_array_equal(loaded.predict(images), probs)


class Counted(nn.Module):
    """Counts its calls; the forward pass for an earlier layer's maps should never reach it."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


def test_maps_of_early_layers_stop_the_forward_pass_there():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3, padding=1),
                        nn.ReLU(inplace=True), Counted(), nn.Flatten(), nn.Linear(4 * 32 * 32, 10)).eval()
    m = fl.wrap(net)
    images = np.random.default_rng(0).random((5, 32, 32, 3)).astype(np.float32)
    full = {k: v.copy() for k, v in m.feature_maps(images).items()}  # every layer: the whole pass
    calls = net[4].calls
    early = m.feature_maps(images, ["2", "0"])
    assert net[4].calls == calls  # stopped once both layers were recorded
    for name in ("0", "2"):  # same maps, the in-place ReLUs after them included
        np.testing.assert_array_equal(early[name], full[name])
    assert early["0"].min() < 0
    m.feature_maps(images, ["6"])
    assert net[4].calls == calls + 1
    assert all_hooks(net) == 0


def test_wrap_refuses_what_no_backend_knows():
    with pytest.raises(fl.BackendError, match="no installed backend recognises"):
        fl.wrap(object())
