"""Accuracy, per-class accuracy and confusion matrix of a classifier's predictions.

:class:`ClassificationReport` collects logits and labels batch by batch and writes
the summary as JSON, as text and as a PNG of the confusion matrix (the test
report of ``recipes/train.py``; moved here from ``recipes/classification_report.py``).

Authors
 * focalnet-audio contributors
"""

import json
import os

import torch


class ClassificationReport:
    """Collects predictions and summarises them.

    Arguments
    ---------
    class_names : list of str
        Names of the classes in label order.

    Example
    -------
    >>> report = ClassificationReport(["dog", "rain"])
    >>> report.append(["a", "b", "c"], torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]]),
    ...               torch.tensor([0, 1, 1]))
    >>> round(report.accuracy(), 4)
    0.6667
    >>> report.confusion_matrix().tolist()
    [[1, 0], [1, 1]]
    >>> report.per_class_accuracy()
    {'dog': 1.0, 'rain': 0.5}
    """

    def __init__(self, class_names):
        self.class_names = list(class_names)
        self.ids = []
        self.predictions = []
        self.labels = []

    def append(self, ids, logits, labels):
        """Add a batch: clip ids, logits (B, K) and integer labels (B,)."""
        self.ids.extend(ids)
        self.predictions.extend(logits.argmax(-1).tolist())
        self.labels.extend(labels.tolist())

    def accuracy(self):
        """Share of clips whose predicted class is the label (0 when empty)."""
        if not self.labels:
            return 0.0
        correct = sum(p == t for p, t in zip(self.predictions, self.labels))
        return correct / len(self.labels)

    def confusion_matrix(self):
        """(K, K) counts: rows are true classes, columns predicted classes."""
        size = len(self.class_names)
        matrix = torch.zeros(size, size, dtype=torch.long)
        for truth, prediction in zip(self.labels, self.predictions):
            matrix[truth, prediction] += 1
        return matrix

    def per_class_accuracy(self):
        """Accuracy of each class that has clips, keyed by class name."""
        matrix = self.confusion_matrix()
        totals = matrix.sum(1)
        return {
            name: float(matrix[i, i] / totals[i])
            for i, name in enumerate(self.class_names)
            if totals[i] > 0
        }

    def confusion_text(self):
        """The confusion matrix as an aligned text table.

        Example
        -------
        >>> report = ClassificationReport(["a", "b"])
        >>> report.append(["x"], torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
        >>> print(report.confusion_text())
          a  1  0
          b  0  0
        """
        matrix = self.confusion_matrix()
        width = max(len(n) for n in self.class_names)
        cell = max(2, len(str(int(matrix.max()))) + 1)
        lines = []
        for name, row in zip(self.class_names, matrix.tolist()):
            lines.append(name.rjust(width + 2) + "".join(str(v).rjust(cell + 1) for v in row))
        return "\n".join(lines)

    def summary(self):
        """Dictionary of accuracy, per-class accuracy, confusion matrix and counts."""
        return {
            "num_clips": len(self.labels),
            "accuracy": self.accuracy(),
            "per_class_accuracy": self.per_class_accuracy(),
            "class_names": self.class_names,
            "confusion_matrix": self.confusion_matrix().tolist(),
        }

    def write(self, folder, prefix="test"):
        """Write ``{prefix}_results.json``, ``{prefix}_confusion.txt`` and ``.png``.

        Arguments
        ---------
        folder : str
            Output folder (created if needed).
        prefix : str
            File name prefix.

        Returns
        -------
        dict
            The summary that was written.
        """
        os.makedirs(folder, exist_ok=True)
        summary = self.summary()
        with open(os.path.join(folder, f"{prefix}_results.json"), "w", encoding="utf-8") as fout:
            json.dump(summary, fout, indent=2)
        with open(os.path.join(folder, f"{prefix}_confusion.txt"), "w", encoding="utf-8") as fout:
            fout.write(f"accuracy: {summary['accuracy']:.4f}\n")
            for name, value in summary["per_class_accuracy"].items():
                fout.write(f"{name}: {value:.4f}\n")
            fout.write("\nconfusion matrix (rows: true, columns: predicted)\n")
            fout.write(self.confusion_text() + "\n")
        self.plot(os.path.join(folder, f"{prefix}_confusion.png"))
        return summary

    def plot(self, path):
        """Save the confusion matrix as a PNG image."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        matrix = self.confusion_matrix().numpy()
        size = len(self.class_names)
        figure, axis = plt.subplots(figsize=(2 + 0.45 * size, 1.5 + 0.45 * size))
        axis.imshow(matrix, cmap="Blues")
        axis.set_xticks(range(size), self.class_names, rotation=90, fontsize=7)
        axis.set_yticks(range(size), self.class_names, fontsize=7)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(f"accuracy {100 * self.accuracy():.1f}%")
        if size <= 20:
            for i in range(size):
                for j in range(size):
                    if matrix[i, j]:
                        axis.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7)
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        plt.close(figure)
