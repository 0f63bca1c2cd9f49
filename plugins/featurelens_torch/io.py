"""Weights to and from safetensors: no pickle, so loading never runs code."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from featurelens.errors import ModelFolderError
from featurelens.spec import ModelSpec
from featurelens_torch.build import SpecNet, build_net


def save_weights(net: SpecNet, path: Path) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"format": "featurelens-torch", "layout": "torch"})


def load_weights(spec: ModelSpec, path: Path) -> SpecNet:
    net = build_net(spec)
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise ModelFolderError(f"{path} is not a readable safetensors file ({exc})") from exc
    result = net.load_state_dict(state, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"missing {', '.join(result.missing_keys[:5])}")
    if result.unexpected_keys:
        problems.append(f"unexpected {', '.join(result.unexpected_keys[:5])}")
    if problems:
        raise ModelFolderError(f"the weights in {path} do not match the spec ({'; '.join(problems)})")
    net.eval()
    return net
