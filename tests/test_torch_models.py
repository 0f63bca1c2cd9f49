"""Inspecting the PyTorch models people actually have, wrapped with ``fl.wrap``.

Modules called several times in one pass, nested containers, grouped / depthwise / 1x1 /
transposed convolutions, functional code in ``forward()``, tuple and dict outputs, layers that
work channels last, and real architectures nobody here wrote (Hugging Face ``transformers``
ResNet, ConvNeXt, MobileNetV2 and EfficientNet, built from small configs with random weights,
offline). Every feature map is checked against a reference recorded by hooks written here.
"""

import contextlib
import os
import re
import types
import warnings

import numpy as np
import pytest

import featurelens as fl
from featurelens.backends import ChannelSummary

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from featurelens_torch.introspect import FunctionalOpsWarning  # noqa: E402

os.environ["HF_HUB_OFFLINE"] = "1"  # the Hugging Face models below are built from configs: never download
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def images(n=3, size=16, channels=3, seed=0):
    return np.random.default_rng(seed).normal(0, 1, (n, size, size, channels)).astype(np.float32)


def reference(net, batch, names, channels_last=lambda name: False):
    """Every call's output of the named modules, from hooks written here, as (N, H, W, C) numpy.

    Calls after the first are keyed ``name#2``...; a tuple or dict output gives its first tensor.
    """
    modules = dict(net.named_modules())
    out = {}

    def hook_for(name):
        def hook(module, inputs, output):
            if isinstance(output, dict):
                output = next(iter(output.values()))
            elif isinstance(output, tuple):
                output = output[0]
            calls = sum(1 for key in out if key == name or key.startswith(name + "#"))
            tensor = output.detach().clone()
            if tensor.dim() == 4 and not channels_last(name):
                tensor = tensor.permute(0, 2, 3, 1)
            out[name if calls == 0 else f"{name}#{calls + 1}"] = tensor.numpy()
        return hook

    handles = [modules[n].register_forward_hook(hook_for(n)) for n in names]
    try:
        net.eval()
        with torch.no_grad():
            net(torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous())
    finally:
        for handle in handles:
            handle.remove()
    return out


@contextlib.contextmanager
def no_functional_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FunctionalOpsWarning)
        yield


def check_layouts_agree(m, maps):
    """feature_maps(None) gives every layer call that ran, with the shape layers() reports."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunctionalOpsWarning)  # tested on its own below
        infos = [i for i in m.layers() if i.output_shape]
    assert list(maps) == [i.name for i in infos]
    for info in infos:
        assert maps[info.name].shape[1:] == info.output_shape, info.name
        assert maps[info.name].dtype == np.float32, info.name


def hooks_left(m):
    return m.backend.attachments(m.native)


# -- a module called several times in one forward pass ---------------------------------------------

class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.act(self.stem(x))
        for _ in range(3):
            x = self.act(self.dw(x))
        return self.head(self.flatten(self.pool(x)))


@pytest.fixture
def shared():
    torch.manual_seed(0)
    return fl.wrap(Shared().eval(), input_shape=(16, 16, 3))


def test_every_call_of_a_reused_module_is_a_layer(shared):
    with no_functional_warning():
        infos = shared.layers()
    assert [i.name for i in infos] == ["stem", "act", "dw", "act#2", "dw#2", "act#3", "dw#3", "act#4",
                                       "pool", "flatten", "head"]
    params = {i.name: i.params for i in infos}
    assert params["dw"] == 8 * 9 + 8 and params["dw#2"] == params["dw#3"] == 0  # counted once
    assert sum(params.values()) == sum(p.numel() for p in shared.native.parameters())
    assert shared.conv_layers() == ["stem", "dw", "dw#2", "dw#3"]
    np.testing.assert_array_equal(shared.filters("dw#2"), shared.filters("dw"))
    assert shared.filters("dw#3").shape == (8, 3, 3, 1)
    assert hooks_left(shared) == []


def test_feature_maps_of_each_call(shared):
    batch = images()
    ref = reference(shared.native, batch, ["dw", "act", "head"])
    assert set(ref) >= {"dw", "dw#2", "dw#3", "act#4"}
    maps = shared.feature_maps(batch)
    check_layouts_agree(shared, maps)
    for name in ("dw", "dw#2", "dw#3", "act#2", "act#4", "head"):
        np.testing.assert_allclose(maps[name], ref[name], atol=1e-5, err_msg=name)
    picked = shared.feature_maps(batch, ["dw#2", "act#4", "dw"])
    assert list(picked) == ["dw#2", "act#4", "dw"]
    for name, array in picked.items():
        np.testing.assert_allclose(array, ref[name], atol=1e-5, err_msg=name)
    assert not np.allclose(picked["dw#2"], picked["dw"])
    assert hooks_left(shared) == []


def test_a_call_that_never_happens_says_how_often_the_module_ran(shared):
    with pytest.raises(fl.InputError, match=r"dw#4 did not run.*dw ran 3 time\(s\), so it has no call 4"):
        shared.feature_maps(images(), ["dw#4"])
    assert hooks_left(shared) == []
    with pytest.raises(fl.LayerNotFoundError, match="no layer named 'dw#two'.*stem, act, dw"):
        shared.feature_maps(images(), ["dw#two"])
    with pytest.raises(fl.LayerNotFoundError):
        shared.filters("nope#2")
    assert hooks_left(shared) == []


# -- nested containers ------------------------------------------------------------------------------

def nested():
    torch.manual_seed(1)
    net = nn.Sequential()
    net.add_module("features", nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, stride=2), nn.ReLU())))
    net.add_module("classifier", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10)))
    bn = net.features[0][1]
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2)
    return net.eval()


def test_nested_containers_leaves_by_qualified_name_and_containers_by_name():
    m = fl.wrap(nested(), input_shape=(16, 16, 3))
    with no_functional_warning():
        infos = m.layers()
    assert [i.name for i in infos] == ["features.0.0", "features.0.1", "features.0.2", "features.1.0",
                                       "features.1.1", "classifier.0", "classifier.1", "classifier.2"]
    assert [i.kind for i in infos][:4] == ["conv2d", "batch_norm", "relu", "conv2d"]
    assert infos[1].params == 4 * 4 and infos[3].output_shape == (8, 8, 6)
    batch = images()
    maps = m.feature_maps(batch)
    check_layouts_agree(m, maps)
    names = ["features.0.1", "features.0", "features.1", "features", "classifier", "classifier.2"]
    ref = reference(m.native, batch, names)
    picked = m.feature_maps(batch, names)
    for name in names:
        np.testing.assert_allclose(picked[name], ref[name], atol=1e-5, err_msg=name)
    np.testing.assert_allclose(picked["features.1"], maps["features.1.1"], atol=0)
    np.testing.assert_allclose(m.predict(batch), torch.softmax(torch.from_numpy(ref["classifier"]), 1).numpy(),
                               atol=1e-6)
    assert hooks_left(m) == []


# -- grouped, depthwise, 1x1 and transposed convolutions -------------------------------------------

class Convs(nn.Module):
    def __init__(self):
        super().__init__()
        self.grouped = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.depthwise = nn.Conv2d(6, 12, 3, padding=1, groups=6)  # depth multiplier 2
        self.pointwise = nn.Conv2d(12, 8, 1)
        self.up = nn.ConvTranspose2d(8, 6, 2, stride=2)
        self.up_grouped = nn.ConvTranspose2d(6, 4, 3, padding=1, groups=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        for conv in (self.grouped, self.depthwise, self.pointwise, self.up, self.up_grouped):
            x = conv(x)
        return self.head(self.flatten(self.pool(x)))


@pytest.fixture
def convs():
    torch.manual_seed(2)
    return fl.wrap(Convs().eval(), input_shape=(8, 8, 4))


def conv_nhwc(x, kernels, bias, groups, pad):
    """A plain numpy 2-D convolution (cross-correlation) from (C_out, kh, kw, C_in/groups) kernels."""
    c_out, kh, kw, c_in_g = kernels.shape
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # N, H, W, C, kh, kw
    out = np.empty((*windows.shape[:3], c_out), np.float64)
    per_group = c_out // groups
    for o in range(c_out):
        g = o // per_group
        out[..., o] = np.einsum("nhwcij,ijc->nhw", windows[..., g * c_in_g:(g + 1) * c_in_g, :, :],
                                kernels[o].astype(np.float64)) + bias[o]
    return out


def test_every_2d_convolution_is_conv2d_with_kernels_per_group(convs):
    infos = {i.name: i for i in convs.layers()}
    assert convs.conv_layers() == ["grouped", "depthwise", "pointwise", "up", "up_grouped"]
    assert infos["up"].output_shape == (16, 16, 6) and infos["up_grouped"].output_shape == (16, 16, 4)
    shapes = {name: convs.filters(name).shape for name in convs.conv_layers()}
    assert shapes == {"grouped": (6, 3, 3, 2), "depthwise": (12, 3, 3, 1), "pointwise": (8, 1, 1, 12),
                      "up": (6, 2, 2, 8), "up_grouped": (4, 3, 3, 3)}
    for name in convs.conv_layers():
        assert convs.filters(name).dtype == np.float32
    weight = convs.native.grouped.weight.detach().numpy()
    np.testing.assert_array_equal(convs.filters("grouped")[5, 1, 2, :], weight[5, :, 1, 2])


def test_grouped_kernels_mean_what_the_feature_maps_do(convs):
    batch = images(2, 8, 4)
    maps = convs.feature_maps(batch)
    check_layouts_agree(convs, maps)
    net = convs.native
    grouped = conv_nhwc(batch, convs.filters("grouped"), net.grouped.bias.detach().numpy(), 2, 1)
    np.testing.assert_allclose(maps["grouped"], grouped, atol=1e-5)
    depthwise = conv_nhwc(maps["grouped"], convs.filters("depthwise"), net.depthwise.bias.detach().numpy(), 6, 1)
    np.testing.assert_allclose(maps["depthwise"], depthwise, atol=1e-5)
    pointwise = conv_nhwc(maps["depthwise"], convs.filters("pointwise"), net.pointwise.bias.detach().numpy(), 1, 0)
    np.testing.assert_allclose(maps["pointwise"], pointwise, atol=1e-5)
    ref = reference(net, batch, ["up", "up_grouped"])
    for name in ("up", "up_grouped"):
        np.testing.assert_allclose(maps[name], ref[name], atol=1e-5, err_msg=name)


@pytest.mark.parametrize("groups", [1, 2])
def test_transposed_kernels_are_what_one_input_pixel_paints(groups):
    torch.manual_seed(3)
    up = nn.ConvTranspose2d(6, 4, 3, padding=1, groups=groups, bias=False)
    m = fl.wrap(nn.Sequential(up).eval(), input_shape=(5, 5, 6))
    kernels = m.filters("0")
    assert kernels.shape == (4, 3, 3, 6 // groups)
    per_group_in, per_group_out = 6 // groups, 4 // groups
    for i in range(per_group_in):
        for g in range(groups):
            impulse = np.zeros((1, 5, 5, 6), np.float32)
            impulse[0, 2, 2, g * per_group_in + i] = 1
            painted = m.feature_maps(impulse, "0")["0"][0]
            for o in range(g * per_group_out, (g + 1) * per_group_out):
                np.testing.assert_allclose(painted[1:4, 1:4, o], kernels[o, :, :, i], atol=1e-6)


def test_filters_of_what_is_not_a_2d_convolution_say_so():
    m = fl.wrap(nn.Sequential(nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4)))
    with pytest.raises(fl.InputError, match="'0' is a Conv1d, a 1-D or 3-D convolution, not a 2-D one; "
                                            "the conv layers are: none"):
        m.filters("0")
    with pytest.raises(fl.InputError, match="'1' is a BatchNorm1d, not a convolution"):
        m.filters("1")


# -- functional code in forward() ------------------------------------------------------------------

class Functional(nn.Module):
    def __init__(self, end_outside=False):
        super().__init__()
        self.end_outside = end_outside
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(3, 4, 1)
        self.mix = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        a = F.relu(self.conv_a(x))
        y = self.mix(torch.cat([a, self.conv_b(x)], 1))
        logits = self.head(torch.flatten(F.max_pool2d(y, 4), 1))
        return logits + 1.0 if self.end_outside else logits


def test_functional_code_is_named_not_hidden():
    torch.manual_seed(4)
    m = fl.wrap(Functional().eval(), input_shape=(16, 16, 3))
    with pytest.warns(FunctionalOpsWarning, match=r"Functional.forward\(\) computes values outside its modules.*"
                                                  r"the inputs of 2 layer call\(s\) \(mix, head\) come from such code"):
        infos = m.layers()
    assert [i.name for i in infos] == ["conv_a", "conv_b", "mix", "head"]  # functional steps are no layers
    batch = images()
    maps = m.feature_maps(batch)
    check_layouts_agree(m, maps)
    ref = reference(m.native, batch, ["conv_a", "mix", "head"])
    for name in ("conv_a", "mix", "head"):
        np.testing.assert_allclose(maps[name], ref[name], atol=1e-5, err_msg=name)
    assert maps["conv_a"].min() < 0  # the conv's own output, before F.relu
    assert hooks_left(m) == []


def test_an_output_made_outside_any_module_is_named():
    m = fl.wrap(Functional(end_outside=True).eval(), input_shape=(16, 16, 3))
    with pytest.warns(FunctionalOpsWarning, match=r"\(mix, head\) and the model's output come from such code"):
        m.layers()


def test_in_place_functional_code_is_seen_and_does_not_change_recorded_maps():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.bn = nn.BatchNorm2d(3)
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            h = self.bn(self.conv(x))
            h += x
            return self.act(h).mean((2, 3))

    torch.manual_seed(5)
    m = fl.wrap(Residual().eval(), input_shape=(8, 8, 3))
    with pytest.warns(FunctionalOpsWarning, match=r"the inputs of 1 layer call\(s\) \(act\).*and the model's output"):
        m.layers()
    batch = images(2, 8)
    ref = reference(m.native, batch, ["bn"])
    np.testing.assert_allclose(m.feature_maps(batch, "bn")["bn"], ref["bn"], atol=1e-6)  # before h += x
    assert hooks_left(m) == []


def test_modules_only_raise_no_warning():
    m = fl.wrap(nested(), input_shape=(16, 16, 3))
    with no_functional_warning():
        m.layers()


# -- tuple and dict outputs --------------------------------------------------------------------------

class ReluAndMean(nn.Module):  # a leaf returning a tuple
    def forward(self, x):
        return x.relu(), x.mean((2, 3))


class PoolDict(nn.Module):  # a leaf returning a dict
    def forward(self, x):
        return {"pooled": x.amax((2, 3)), "map": x}


class Outputs(nn.Module):
    def __init__(self, returns):
        super().__init__()
        self.returns = returns
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.split = ReluAndMean()
        self.pool = PoolDict()
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        y, _ = self.split(self.conv(x))
        logits = self.head(self.pool(y)["pooled"])
        if self.returns == "tuple":
            return logits, y
        if self.returns == "dict":
            return {"logits": logits, "features": y}
        if self.returns == "attribute":
            return types.SimpleNamespace(logits=logits, hidden_states=(y,))
        if self.returns == "no logits":
            return {"features": y}
        return logits


@pytest.mark.parametrize("returns", ["tensor", "tuple", "dict", "attribute"])
def test_tuple_and_dict_outputs(returns):
    torch.manual_seed(6)
    m = fl.wrap(Outputs(returns).eval(), input_shape=(8, 8, 3))
    with no_functional_warning():
        infos = {i.name: i for i in m.layers()}
    assert infos["split"].output_shape == (8, 8, 4) and infos["pool"].output_shape == (4,)  # first tensor
    batch = images(3, 8)
    maps = m.feature_maps(batch)
    check_layouts_agree(m, maps)
    ref = reference(m.native, batch, ["split", "pool", "head"])
    for name in ("split", "pool", "head"):
        np.testing.assert_allclose(maps[name], ref[name], atol=1e-5, err_msg=name)
    np.testing.assert_allclose(m.predict(batch), torch.softmax(torch.from_numpy(ref["head"]), 1).numpy(), atol=1e-6)
    assert hooks_left(m) == []


def test_an_output_without_class_scores_says_what_came_back():
    m = fl.wrap(Outputs("no logits").eval(), input_shape=(8, 8, 3))
    assert [i.name for i in m.layers()] == ["conv", "split", "pool", "head"]  # inspection works
    with pytest.raises(fl.InputError, match="the model returned dict; .* class scores"):
        m.predict(images(2, 8))
    assert hooks_left(m) == []


class Probe(nn.Module):  # a leaf that looks at its input and returns nothing
    def forward(self, x):
        self.seen = tuple(x.shape)


def test_a_layer_returning_no_tensor_is_listed_but_has_no_maps():
    class Probed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.probe = Probe()

        def forward(self, x):
            y = self.conv(x)
            self.probe(y)
            return y.mean((2, 3))

    m = fl.wrap(Probed().eval(), input_shape=(8, 8, 3))
    with pytest.warns(FunctionalOpsWarning):
        infos = m.layers()
    assert [(i.name, i.output_shape) for i in infos] == [("conv", (8, 8, 4)), ("probe", ())]
    assert list(m.feature_maps(images(2, 8))) == ["conv"]
    with pytest.raises(fl.InputError, match="probe returned no tensor, so they have no feature maps"):
        m.feature_maps(images(2, 8), ["conv", "probe"])
    assert hooks_left(m) == []


# -- layers that work channels last ------------------------------------------------------------------

class Permute(nn.Module):
    def __init__(self, *dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class ChannelsLastBlock(nn.Module):
    """A ConvNeXt block: depthwise conv, then LayerNorm and Linear layers on (N, H, W, C)."""

    def __init__(self, with_modules):
        super().__init__()
        self.with_modules = with_modules
        self.stem = nn.Conv2d(3, 8, 2, stride=2)
        self.dw = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.to_last = Permute(0, 2, 3, 1)
        self.norm = nn.LayerNorm(8)
        self.fc1 = nn.Linear(8, 32)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(32, 8)
        self.to_first = Permute(0, 3, 1, 2)
        self.drop = nn.Identity()

    def forward(self, x):
        x = self.stem(x)
        h = self.to_last(self.dw(x)) if self.with_modules else self.dw(x).permute(0, 2, 3, 1)
        h = self.fc2(self.act(self.fc1(self.norm(h))))
        h = self.to_first(h) if self.with_modules else h.permute(0, 3, 1, 2)
        return (x + self.drop(h)).mean((2, 3))


CHANNELS_LAST = {"to_last", "norm", "fc1", "act", "fc2"}


@pytest.mark.parametrize("with_modules", [True, False], ids=["permute-modules", "functional-permute"])
def test_channels_last_layers_are_not_transposed_again(with_modules):
    torch.manual_seed(7)
    m = fl.wrap(ChannelsLastBlock(with_modules).eval(), input_shape=(16, 16, 3))
    warning = r"the model's output comes from such code" if with_modules else r"\(norm, drop\) and the model's output"
    with pytest.warns(FunctionalOpsWarning, match=warning):
        infos = {i.name: i for i in m.layers()}
    for name in ("dw", "norm", "fc2", "drop") + (("to_last", "to_first") if with_modules else ()):
        assert infos[name].output_shape == (8, 8, 8), name
    assert infos["fc1"].output_shape == infos["act"].output_shape == (8, 8, 32)
    batch = images(2)
    maps = m.feature_maps(batch)
    check_layouts_agree(m, maps)
    ref = reference(m.native, batch, list(maps), channels_last=lambda name: name in CHANNELS_LAST)
    for name in maps:
        np.testing.assert_allclose(maps[name], ref[name], atol=1e-5, err_msg=name)
    if with_modules:
        np.testing.assert_array_equal(maps["to_last"], maps["dw"])
    assert hooks_left(m) == []


# -- channel summaries (dataset examples) of users' layers ---------------------------------------------

def assert_summaries_match_maps(m, batch, names):
    """torch's own reduction equals numpy's reduction of the feature maps, positions included."""
    maps = m.feature_maps(batch, names)
    for summaries in m.iter_channel_summaries(batch, names, batch_size=len(batch)):
        assert list(summaries) == names
        for name in names:
            want, got = ChannelSummary.of_maps(np.array(maps[name])), summaries[name]
            np.testing.assert_array_equal(got.maxima, want.maxima, err_msg=name)
            np.testing.assert_allclose(got.means, want.means, rtol=1e-5, atol=1e-6, err_msg=name)
            n, c = want.maxima.shape
            rows, channels = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
            located = got.locate(rows.ravel(), channels.ravel()).reshape(n, c, 2)
            np.testing.assert_array_equal(located, want.positions, err_msg=name)
    assert hooks_left(m) == []


def test_channel_summaries_of_channels_last_repeated_and_in_place_layers(shared):
    torch.manual_seed(7)
    block = fl.wrap(ChannelsLastBlock(True).eval(), input_shape=(16, 16, 3))
    assert_summaries_match_maps(block, images(3), ["dw", "to_last", "norm", "fc1", "act", "to_first"])
    assert_summaries_match_maps(shared, images(3), ["dw#2", "act#3", "stem"])

    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.act(self.conv(x)).mean((2, 3))

    torch.manual_seed(3)
    assert_summaries_match_maps(fl.wrap(InPlace().eval(), input_shape=(8, 8, 3)), images(4, 8), ["conv", "act"])
    with pytest.raises(fl.InputError, match="not spatial"):
        list(shared.iter_channel_summaries(images(2), ["head"]))
    assert hooks_left(shared) == []


def test_every_modules_own_mode_is_given_back(shared):
    """A user's deliberate mix (a frozen part in eval mode inside a model being trained) survives inspection."""
    net = shared.native
    net.train()
    net.dw.eval()
    modes = {name: module.training for name, module in net.named_modules()}
    batch = images(2)
    shared.predict(batch)
    shared.feature_maps(batch, ["dw#2"])
    list(shared.iter_channel_summaries(batch, ["act#2"]))
    shared.backend.value_and_grad(net, batch, fl.backends.ClassScore(np.array([1, 2])), layer="dw")
    assert {name: module.training for name, module in net.named_modules()} == modes
    net.eval()


def test_modes_come_back_through_the_models_own_train_even_after_a_failure():
    class Fused(nn.Module):  # re-parameterised models fuse branches in eval() and unfuse in train()
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.switches = []

        def train(self, mode=True):
            self.switches.append(mode)
            return super().train(mode)

        def forward(self, x):
            if x.shape[-1] != 8:
                raise RuntimeError("only 8 x 8 images")
            return self.conv(x).mean((2, 3))

    net = Fused().train()
    m = fl.wrap(net, input_shape=(8, 8, 3))
    net.switches.clear()
    m.predict(images(2, 8))
    assert net.switches == [False, True] and net.training and net.conv.training
    with pytest.raises(RuntimeError, match="only 8 x 8"):
        m.backend.predict(net, images(2, 6))
    assert net.switches[-1] is True and net.training and net.conv.training


# -- hooks never stay behind ---------------------------------------------------------------------------

def test_no_hook_is_left_after_failures(shared):
    with pytest.raises(fl.InputError):
        shared.feature_maps(np.zeros((2, 8, 8, 3), np.float32))  # wrong image size
    assert hooks_left(shared) == []

    def explode(module, inputs, output):
        raise RuntimeError("boom")

    handle = shared.native.dw.register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            shared.feature_maps(images(), ["dw#2"])
        with pytest.raises(RuntimeError, match="boom"):
            shared.layers()
        assert len(hooks_left(shared)) == 1  # only the test's own
    finally:
        handle.remove()
    assert hooks_left(shared) == []
    stream = shared.iter_feature_maps(images(5), ["act#3"], batch_size=2)
    next(stream)
    stream.close()  # abandoned after one batch
    assert hooks_left(shared) == []


# -- real architectures nobody here wrote: Hugging Face transformers, small configs, random weights ------

HF_SIZE = 64


def hf_model(name):
    tf = pytest.importorskip("transformers", reason="transformers (a development tool) is absent")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(8)
        if name == "resnet":
            config = tf.ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                     layer_type="bottleneck", num_labels=10)
            net = tf.ResNetForImageClassification(config)
        elif name == "convnext":
            config = tf.ConvNextConfig(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_labels=10)
            net = tf.ConvNextForImageClassification(config)
        elif name == "mobilenet_v2":
            config = tf.MobileNetV2Config(depth_multiplier=0.35, image_size=HF_SIZE, num_labels=10)
            net = tf.MobileNetV2ForImageClassification(config)
        else:
            config = tf.EfficientNetConfig(width_coefficient=0.25, depth_coefficient=0.25, image_size=HF_SIZE,
                                           hidden_dim=320, num_labels=10)
            net = tf.EfficientNetForImageClassification(config)
    return net.eval()


# ConvNeXt's blocks normalise and mix channels on (N, H, W, C) tensors with LayerNorm and Linear layers
HF_CHANNELS_LAST = re.compile(r"convnext\.encoder\.stages\.\d+\.layers\.\d+\.(layernorm|pwconv1|act|pwconv2)$")


@pytest.fixture(scope="module", params=["resnet", "convnext", "mobilenet_v2", "efficientnet"])
def hf(request):
    net = hf_model(request.param)
    with pytest.warns(FunctionalOpsWarning):  # residual sums, permutes, F.pad ...: reported, not hidden
        m = fl.wrap(net, input_shape=(HF_SIZE, HF_SIZE, 3))
        infos = m.layers()
    return m, infos


def test_hf_layers_filters_and_predict(hf):
    m, infos = hf
    assert not hooks_left(m)
    ran = [i for i in infos if i.output_shape]
    assert len(ran) > 30 and len({i.name for i in infos}) == len(infos)
    assert all(len(i.output_shape) in (1, 3) for i in ran)
    convs = [i.name for i in infos if i.kind == "conv2d"]
    assert convs and convs[0] == next(n for n, mod in m.native.named_modules() if isinstance(mod, nn.Conv2d))
    modules = dict(m.native.named_modules())
    for name in convs:
        kernels = m.filters(name)
        weight = modules[name].weight.detach()
        assert kernels.shape == (weight.shape[0], weight.shape[2], weight.shape[3], weight.shape[1]), name
        np.testing.assert_array_equal(kernels, weight.permute(0, 2, 3, 1).numpy())
    batch = images(2, HF_SIZE)
    probs = m.predict(batch)
    with torch.no_grad():
        logits = m.native(torch.from_numpy(batch).permute(0, 3, 1, 2)).logits
    np.testing.assert_allclose(probs, torch.softmax(logits, 1).numpy(), atol=1e-5)
    with pytest.raises(fl.InputError, match=r"expected images of shape \(N, 64, 64, 3\)"):
        m.predict(images(2, 32))
    assert not hooks_left(m)


def test_hf_feature_maps_match_hooks_written_here(hf):
    m, infos = hf
    batch = images(2, HF_SIZE)
    maps = m.feature_maps(batch)
    ran = [i for i in infos if i.output_shape]
    assert list(maps) == [i.name for i in ran]
    for info in ran:
        assert maps[info.name].shape == (2, *info.output_shape), info.name
        assert maps[info.name].dtype == np.float32
    sample = [i.name for i in ran[::4]] + [ran[-1].name]
    ref = reference(m.native, batch, sample, channels_last=lambda name: bool(HF_CHANNELS_LAST.match(name)))
    for name in sample:
        np.testing.assert_allclose(maps[name], ref[name], atol=1e-5, err_msg=name)
    picked = m.feature_maps(batch, sample[:5])
    for name in sample[:5]:
        np.testing.assert_array_equal(picked[name], maps[name])
    if m.native.config.model_type == "convnext":
        first = "convnext.encoder.stages.0.layers.0."
        shapes = {i.name: i.output_shape for i in infos}
        assert shapes[first + "dwconv"] == shapes[first + "layernorm"] == (16, 16, 16)
        assert shapes[first + "pwconv1"] == shapes[first + "act"] == (16, 16, 64)
    assert not hooks_left(m)


def test_hf_containers_and_failures_leave_nothing_behind(hf):
    m, infos = hf
    batch = images(2, HF_SIZE)
    container = next(n for n, mod in m.native.named_modules() if n.count(".") == 3 and next(mod.children(), None))
    maps = m.feature_maps(batch, [container])
    assert maps[container].ndim in (2, 4)
    with pytest.raises(fl.LayerNotFoundError):
        m.feature_maps(batch, [infos[0].name, "no.such.layer"])
    assert not hooks_left(m)
