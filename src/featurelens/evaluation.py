"""Test-set metrics computed from probabilities, identically for every backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from featurelens.checks import Check, Int, Number, check_fields, fail, require_object
from featurelens.errors import InputError, ModelFolderError
from featurelens.spec import MAX_CLASSES

#: Probabilities are clipped like Keras's cross-entropy does before taking the log.
EPSILON = 1e-7


_FRACTION = Number(0, 1, "a fraction of the examples; NaN when there were none", finite=False)
_COUNT = Int(0, 2**53, "a number of examples")
#: The checks of ``evaluation.json``'s fields.
EVALUATION_FIELDS: dict[str, Check] = {
    "loss": Number(0, float("inf"), "a cross-entropy; NaN without examples", finite=False),
    "accuracy": _FRACTION,
    "count": _COUNT,
    "per_class_accuracy": lambda error, path, value: require_object(error, path, value, "class name -> accuracy"),
    "confusion": lambda error, path, value: value,  # checked against the classes below
}


@dataclass
class Evaluation:
    """Loss, accuracy, per-class accuracy and the confusion matrix (rows: true, cols: predicted)."""

    loss: float
    accuracy: float
    per_class_accuracy: dict[str, float]
    confusion: np.ndarray
    count: int

    def describe(self) -> str:
        lines = [f"test loss {self.loss:.4f}, accuracy {self.accuracy:.2%} on {self.count} images"]
        width = max(len(n) for n in self.per_class_accuracy)
        lines += [f"  {name:<{width}}  {acc:7.2%}" for name, acc in self.per_class_accuracy.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "accuracy": self.accuracy, "count": self.count,
                "per_class_accuracy": self.per_class_accuracy, "confusion": self.confusion.tolist()}

    @classmethod
    def from_dict(cls, data: Any) -> Evaluation:
        """From :meth:`to_dict`'s form (``evaluation.json``), every field checked: a
        :class:`ModelFolderError` names the wrong one. Keys it does not know (``tta``) are left out."""
        data = require_object(ModelFolderError, "evaluation", data, "as evaluation.json holds it")
        for key in EVALUATION_FIELDS:
            if key not in data:
                raise ModelFolderError(f"evaluation: the field {key!r} is missing")
        values = check_fields(ModelFolderError, "", {k: data[k] for k in EVALUATION_FIELDS}, EVALUATION_FIELDS)
        per_class = require_object(ModelFolderError, "per_class_accuracy", values["per_class_accuracy"])
        if len(per_class) > MAX_CLASSES:
            fail(ModelFolderError, "per_class_accuracy", per_class, f"more than {MAX_CLASSES:,} classes")
        accuracies = {name: float(_FRACTION(ModelFolderError, f"per_class_accuracy.{name}", v))
                      for name, v in per_class.items()}
        k = len(per_class)
        rows = values["confusion"]
        if not (isinstance(rows, list) and len(rows) == k
                and all(isinstance(row, list) and len(row) == k for row in rows)):
            fail(ModelFolderError, "confusion", rows, f"expected {k} rows of {k} counts, one per class")
        for i, row in enumerate(rows):
            for j, count in enumerate(row):
                _COUNT(ModelFolderError, f"confusion[{i}][{j}]", count)
        return cls(loss=float(values["loss"]), accuracy=float(values["accuracy"]), per_class_accuracy=accuracies,
                   confusion=np.array(rows, np.int64).reshape(k, k), count=values["count"])


def looks_like_probabilities(rows: np.ndarray) -> bool:
    """Whether every row is in [0, 1] and sums to 1 (a model ending in a softmax), not logits."""
    rows = np.asarray(rows, np.float64)
    return bool(((rows >= 0) & (rows <= 1)).all() and np.allclose(rows.sum(axis=1), 1, atol=1e-4))


def as_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Model outputs as probabilities: kept if they already are (rows in [0, 1] summing to 1),
    otherwise taken as logits and passed through a softmax. For models users built themselves."""
    outputs = np.asarray(outputs, np.float32)
    if outputs.size == 0:
        return outputs
    if looks_like_probabilities(outputs):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def evaluate_probabilities(probabilities: np.ndarray, labels: np.ndarray,
                           class_names: tuple[str, ...] | list[str]) -> Evaluation:
    """Metrics of (N, K) probabilities against (N,) integer labels."""
    labels = np.asarray(labels, np.int64)
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise InputError(f"probabilities of shape {probabilities.shape} do not match {len(labels)} labels")
    k = probabilities.shape[1]
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise InputError(f"labels must be in 0..{k - 1} for a {k}-class model")
    picked = np.clip(probabilities[np.arange(len(labels)), labels], EPSILON, 1.0)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    totals = confusion.sum(axis=1)
    per_class = {str(name): float(confusion[i, i] / totals[i]) if totals[i] else float("nan")
                 for i, name in enumerate(class_names)}
    return Evaluation(
        loss=float(-np.log(picked).mean()) if len(labels) else float("nan"),
        accuracy=float((predicted == labels).mean()) if len(labels) else float("nan"),
        per_class_accuracy=per_class,
        confusion=confusion,
        count=int(len(labels)),
    )
