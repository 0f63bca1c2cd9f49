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
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    problems = [f"missing {k}" for k in expected if k not in found]
    problems += [f"unexpected {k}" for k in found if k not in expected]
    problems += [f"{k} has shape {found[k]} but the spec needs {expected[k]}"
                 for k in expected if k in found and found[k] != expected[k]]
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise ModelFolderError(f"the weights in {path} do not match the spec: "
                               f"{'; '.join(problems[:3])}{more}")
    net.load_state_dict(state)
    net.eval()
    return net
