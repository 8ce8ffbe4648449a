"""Calibration after training: temperature scaling.

A classifier's confidence (its largest softmax probability) should match how often it is
right. :func:`fit_temperature` fits the one scalar of temperature scaling on a validation
set; the measurements (:func:`tlhelpers.metrics.expected_calibration_error`,
:func:`tlhelpers.metrics.reliability_bins`) live in :mod:`tlhelpers.metrics`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .validation import check_int, to_numpy

__all__ = ["fit_temperature"]


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, *, max_iter: int = 100) -> float:
    r"""Temperature scaling: the :math:`T > 0` minimising the NLL of ``softmax(logits / T)``.

    .. math:: T^* = \arg\min_{T>0} -\frac1n \sum_i \log \mathrm{softmax}(z_i / T)_{y_i}

    Guo et al., "On Calibration of Modern Neural Networks", ICML 2017: one scalar fitted on
    a held-out **validation** set (never the test set), by LBFGS on the NLL. Dividing by
    :math:`T` never changes the argmax, so accuracy is unchanged; :math:`T > 1` softens an
    overconfident model. Optimised over :math:`\log T` (keeps :math:`T` positive), in
    float64. Shape: ``logits (N, K)``, ``targets (N,)``.
    """
    z = torch.as_tensor(to_numpy("logits", logits, ndim=2), dtype=torch.float64)
    y = torch.as_tensor(to_numpy("targets", targets, ndim=1)).long()
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"targets has {y.shape[0]} entries but logits has {z.shape[0]} rows.")
    check_int("max_iter", max_iter, minimum=1)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())
