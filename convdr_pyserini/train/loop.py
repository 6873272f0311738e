"""ConvDR's losses and optimisation loop (torch is imported here).

* KD: MSE between the student's embedding of the conversational input and the frozen teacher's embedding
  of the manual rewrite (ConvDR's `MSELoss` over the embedding entries), times `kd_weight`.
* Ranking: cross-entropy over the scores (inner products divided by `temperature`) of the positive and the
  negatives, whose embeddings come from the frozen teacher's passage tower, times `ranking_weight`.
* Multi-task: their sum. ConvDR's own setting is weights 1 and temperature 1.

The teacher is frozen, so its embeddings are computed once, before training (`teacher_targets`). The loop
is ConvDR's (drivers/run_convdr_train.py, checked step for step by bench/fidelity/run.py): the batches come from
a `DataLoader` with a `RandomSampler` drawn from the torch generator seeded just before the first epoch, AdamW
with gradient clipping at 1.0, and the learning rate decaying linearly to 0 over all steps without warm-up
(`schedule="linear"`; `"constant"` keeps it fixed). Under `torchrun` every batch is split across the processes
and the gradients are summed, so the effective batch size is `batch_size` whatever the number of devices.
"""
from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import UserError
from .config import LR_SCHEDULES

MAX_GRAD_NORM = 1.0
ADAM_EPS, ADAM_BETAS = 1e-8, (0.9, 0.999)


@dataclass(frozen=True)
class LossWeights:
    """How the KD and ranking terms are combined (ConvDR: 1, 1 and temperature 1)."""

    kd_weight: float = 1.0
    ranking_weight: float = 1.0
    temperature: float = 1.0


@dataclass
class Example:
    """A training query: the student's input ids, its KD target, its ranking passages (rows of `passages`)."""

    query_id: str
    input_ids: list[int]
    target: np.ndarray | None = None  # teacher embedding of the manual rewrite
    passage_rows: list[int] | None = None  # positive first, then the negatives


@dataclass
class FitResult:
    """Per-step losses (their average across processes) and per-epoch means."""

    step_losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def distributed() -> tuple[int, int]:
    """(rank, world size): from torchrun's environment (process group started on first use), else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def batch_loss(student, examples: Sequence[Example], passages: torch.Tensor | None, use_kd: bool,
               use_ranking: bool, normaliser: int, weights: LossWeights = LossWeights()) -> torch.Tensor:
    """Sum over `examples` of their (weighted) losses, divided by `normaliser` (the global batch size)."""
    input_ids, attention_mask = student.pad([example.input_ids for example in examples])
    embeddings = student.embed_queries(input_ids, attention_mask).float()
    loss = embeddings.new_zeros(())
    if use_kd:
        targets = torch.as_tensor(np.stack([example.target for example in examples]), device=embeddings.device)
        loss = loss + weights.kd_weight * ((embeddings - targets) ** 2).mean(dim=1).sum()
    if use_ranking:
        rows = torch.as_tensor([example.passage_rows for example in examples], device=embeddings.device)
        scores = torch.einsum("bd,bkd->bk", embeddings, passages[rows]) / weights.temperature
        positives = torch.zeros(len(examples), dtype=torch.long, device=embeddings.device)
        loss = loss + weights.ranking_weight * torch.nn.functional.cross_entropy(scores, positives, reduction="sum")
    return loss / normaliser


def fit(student, examples: Sequence[Example], *, epochs: int, lr: float, batch_size: int, seed: int,
        use_kd: bool, use_ranking: bool, passages: np.ndarray | None = None, weight_decay: float = 0.0,
        weights: LossWeights = LossWeights(), schedule: str = "linear", description: str = "training",
        loss_of: Callable[[Sequence, int], torch.Tensor] | None = None) -> FitResult:
    """Train `student` (a DenseEncoder) in place; returns the losses. Deterministic given `seed` on CPU.

    `loss_of(examples, normaliser)` replaces ConvDR's query-encoder loss (`batch_loss`) for other models
    trained by the same loop, optimizer and schedule (the cross-encoder reranker); `student` then needs only
    `model` and `device`. A loss that becomes NaN or infinite stops training with a UserError (nothing is saved)."""
    from torch.utils.data import DataLoader, RandomSampler

    from .._progress import progress_bar

    if schedule not in LR_SCHEDULES:
        raise UserError(f"schedule {schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
    rank, world = distributed()
    model = student.model
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=weight_decay, eps=ADAM_EPS, betas=ADAM_BETAS)
    indices = range(len(examples))
    batches = DataLoader(indices, sampler=RandomSampler(indices), batch_size=batch_size, collate_fn=list)
    total_steps = epochs * len(batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, (total_steps - step) / total_steps) if schedule == "linear" else 1.0)
    passage_tensor = torch.as_tensor(passages, device=student.device) if use_ranking and loss_of is None else None
    if loss_of is None:
        def loss_of(batch, normaliser):
            return batch_loss(student, batch, passage_tensor, use_kd, use_ranking, normaliser, weights)
    result = FitResult()
    seed_everything(seed)  # where ConvDR seeds: after building the loader, before the first epoch draws its order
    model.train()
    with progress_bar(total=total_steps, desc=description, unit="step", enabled=rank == 0) as bar:
        for epoch in range(epochs):
            epoch_total = 0.0
            for order in batches:
                batch = [examples[i] for i in order]
                local = batch[rank::world]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_of(local, len(batch)) if local else torch.zeros((), device=student.device)
                if local:
                    loss.backward()
                step_loss = _all_reduce(model, loss.detach(), world)
                if not np.isfinite(step_loss):
                    raise UserError(f"{description}: the loss became {step_loss} at step {len(result.step_losses) + 1} "
                                    f"(epoch {epoch + 1}); training diverged, try a lower learning rate")
                torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
                _transformers2_eps(optimizer, len(result.step_losses) + 1)
                optimizer.step()
                scheduler.step()
                result.step_losses.append(step_loss)
                epoch_total += step_loss * len(batch)
                bar.set_postfix(loss=f"{step_loss:.3e}")
                bar.update(1)
            result.epoch_losses.append(epoch_total / len(examples))
    model.eval()
    return result


def _transformers2_eps(optimizer: torch.optim.Optimizer, step: int) -> None:
    """Set AdamW's eps for `step` so that torch's AdamW takes the step of transformers 2.x's, which ConvDR
    used: that one adds eps to sqrt(v) before the bias correction (lr * sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps)),
    torch after it (lr/(1-b1^t) * m/(sqrt(v)/sqrt(1-b2^t)+eps)); they agree when torch's eps is
    eps/sqrt(1-b2^t). It matters for parameters with gradients near eps."""
    for group in optimizer.param_groups:
        group["eps"] = ADAM_EPS / math.sqrt(1.0 - ADAM_BETAS[1] ** step)


def _all_reduce(model: torch.nn.Module, loss: torch.Tensor, world: int) -> float:
    """Sum gradients and the loss over processes (each holds its share of the batch loss)."""
    if world > 1:
        import torch.distributed as dist

        for parameter in model.parameters():
            if parameter.requires_grad:
                if parameter.grad is None:
                    parameter.grad = torch.zeros_like(parameter)
                dist.all_reduce(parameter.grad)
        dist.all_reduce(loss)
    return float(loss)


def mean_kd_loss(student, examples: Sequence[Example], batch_size: int = 64) -> float:
    """Mean KD loss (MSE) of `student` on `examples`, without gradients (held-out monitoring)."""
    if not examples:
        return float("nan")
    vectors = student.encode_ids([example.input_ids for example in examples], tower="query", batch_size=batch_size)
    targets = np.stack([example.target for example in examples])
    return float(((vectors - targets) ** 2).mean())
