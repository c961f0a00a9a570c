"""Classification metrics: confusion matrix, per-class Se / +P / F1, macro F1, ROC and AUC.

The ROC and AUC come from cnnkit.runtime.metrics (written for distances: smaller
means "positive"), called with the negated score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import SettingsError
from ..runtime import metrics as _roc


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise SettingsError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


@dataclass(frozen=True)
class ClassReport:
    name: str
    support: int
    sensitivity: float  # recall, Se = TP / (TP + FN)
    positive_predictivity: float  # precision, +P = TP / (TP + FP)
    f1: float
    specificity: float

    def to_dict(self) -> dict[str, float | int | str]:
        return {"class": self.name, "support": self.support, "se": self.sensitivity,
                "ppv": self.positive_predictivity, "f1": self.f1, "sp": self.specificity}


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def class_reports(cm: np.ndarray, names: Sequence[str]) -> list[ClassReport]:
    """Se, +P, F1 and specificity of each class from a confusion matrix."""
    total = cm.sum()
    out = []
    for k, name in enumerate(names):
        tp = cm[k, k]
        fn = cm[k].sum() - tp
        fp = cm[:, k].sum() - tp
        tn = total - tp - fn - fp
        se, ppv = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
        f1 = _ratio(2 * se * ppv, se + ppv)
        out.append(ClassReport(name, int(cm[k].sum()), se, ppv, f1, _ratio(tn, tn + fp)))
    return out


def macro_f1(reports: Sequence[ClassReport]) -> float:
    return float(np.mean([r.f1 for r in reports]))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates, larger score = more positive."""
    fpr, tpr, _ = _roc.roc_curve(-np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool))
    return fpr, tpr


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        raise SettingsError("AUC needs both positive and negative examples")
    return _roc.auc(-np.asarray(scores, dtype=np.float64), positive)
