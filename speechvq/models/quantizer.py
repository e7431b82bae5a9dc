"""Vector quantizer: z_e [B, D, F] -> nearest of K codebook vectors, with straight-through gradients.

Loss (van den Oord et al. 2017, eq. 3):  ||sg[z_e] - e||^2 + beta * ||z_e - sg[e]||^2,
or, in EMA mode (the paper's appendix A.1), only the commitment term, the codebook following exponential
moving averages of the encoder outputs assigned to each code, with Laplace smoothing of the counts.

Two additions keep the codebook in use: initialisation by k-means on the first training batch, and the
restart of codes that no frame has chosen for `dead_code_window` training steps, re-seeded from the current
batch's encoder outputs. Under torch.distributed every statistic is summed over ranks and every random
choice is broadcast from rank 0, so the codebook stays identical on all ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import QuantizerConfig

# Rows of the [N, K] distance matrix computed at once: bounds memory when encoding long files.
_DISTANCE_CHUNK_ROWS = 16384


@dataclass
class VQOutput:
    """What one quantizer pass returns.

    Attributes:
        z_q: float32 `[B, D, F]`, the chosen codebook vectors; gradients pass straight through to z_e.
        codes: int64 `[B, F]` in [0, K).
        loss: scalar, codebook_loss + commitment_weight * commitment_loss.
        codebook_loss: scalar, mean ||sg[z_e] - e||^2 per element (zero in EMA mode).
        commitment_loss: scalar, mean ||z_e - sg[e]||^2 per element.
        perplexity: scalar, exp(entropy) of the batch's code histogram (K when all codes are equally used).
        used_codes: scalar int64, codes chosen at least once in the batch.
        restarts: scalar int64, codes re-seeded during this pass (training only; a tensor, so that reading
            it is the caller's choice: a training step never waits for the device).
    """

    z_q: Tensor
    codes: Tensor
    loss: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor
    perplexity: Tensor
    used_codes: Tensor
    restarts: Tensor


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantizer with EMA option, k-means init and dead-code restart.

    Args:
        config: codebook size, commitment weight, EMA and restart settings.
        dim: size D of each latent vector.
    """

    def __init__(self, config: QuantizerConfig, dim: int):
        super().__init__()
        self.config = config
        self.codebook_size = config.codebook_size
        self.dim = dim
        size = config.codebook_size
        # The paper initialises uniformly in [-1/K, 1/K]; k-means on data replaces this when enabled.
        self.codebook = nn.Parameter(torch.empty(size, dim).uniform_(-1.0 / size, 1.0 / size),
                                     requires_grad=not config.ema)
        # EMA statistics start as if each code had been chosen once by itself, which keeps an unused
        # code where it is instead of dividing by a vanishing count.
        self.register_buffer("ema_cluster_size", torch.ones(size))
        self.register_buffer("ema_embed_sum", self.codebook.detach().clone())
        self.register_buffer("initialized", torch.tensor(not config.init_from_data))
        self.register_buffer("steps_unused", torch.zeros(size, dtype=torch.long))
        self.register_buffer("total_restarts", torch.zeros((), dtype=torch.long))
        # Python-side copy of `initialized` once it is known to be true: reading the buffer on every step
        # would make each training step wait for the device.
        self._known_initialized = False

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._known_initialized = False  # the loaded buffer decides again
        super()._load_from_state_dict(*args, **kwargs)

    @property
    def is_initialized(self) -> bool:
        """Whether the codebook holds its data-driven initialisation (reads the device once, then caches)."""
        if not self._known_initialized:
            self._known_initialized = bool(self.initialized)
        return self._known_initialized

    @torch.no_grad()
    def initialize_from(self, z_e: Tensor) -> None:
        """Run the k-means initialisation on encoder outputs now, if it has not run yet.

        A compiled training step calls this on its first batch outside the compiled region, so that the
        compiled graph never holds the k-means loop.

        Args:
            z_e: float `[B, D, F]`.
        """
        if not self.is_initialized:
            self._init_kmeans(z_e.detach().float().permute(0, 2, 1).reshape(-1, self.dim))
            self._known_initialized = True

    # ------------------------------------------------------------------ public API

    def forward(self, z_e: Tensor) -> VQOutput:
        """Quantize encoder outputs; in training mode also update the codebook state.

        Args:
            z_e: float `[B, D, F]`.

        Returns:
            VQOutput (see its attributes).
        """
        # Distances and losses in fp32 even under bf16 autocast: bf16 keeps ~3 significant digits, too few
        # to tell close codes apart, and the codebook terms are tiny next to the reconstruction loss.
        with torch.autocast(device_type=z_e.device.type, enabled=False):
            return self._quantize(z_e.float())

    def _quantize(self, z_e: Tensor) -> VQOutput:
        batch, dim, frames = z_e.shape
        if dim != self.dim:
            raise ValueError(f"expected latent dim {self.dim}, got {dim}")
        flat = z_e.float().permute(0, 2, 1).reshape(-1, dim)  # (B*F, D)
        if self.training and not self.is_initialized:
            self._init_kmeans(flat.detach())
            self._known_initialized = True

        codes = self.nearest(flat.detach())
        quantized = F.embedding(codes, self.codebook)  # (B*F, D)
        commitment_loss = F.mse_loss(flat, quantized.detach())
        if self.config.ema:
            codebook_loss = flat.new_zeros(())
        else:
            codebook_loss = F.mse_loss(quantized, flat.detach())
        loss = codebook_loss + self.config.commitment_weight * commitment_loss

        counts = index_counts(codes, self.codebook_size)
        restarts = torch.zeros((), dtype=torch.long, device=z_e.device)
        if self.training:
            with torch.no_grad():
                _all_reduce_sum(counts)
                if self.config.ema:
                    self._ema_update(flat.detach(), codes, counts)
                if self.config.dead_code_window > 0:
                    restarts = self._restart_dead_codes(flat.detach(), counts)

        # Straight-through: the value is exactly `quantized`, the gradient w.r.t. z_e is the identity.
        z_q = quantized.detach() + (flat - flat.detach())
        z_q = z_q.reshape(batch, frames, dim).permute(0, 2, 1)
        perplexity = code_perplexity(counts)
        return VQOutput(z_q=z_q, codes=codes.reshape(batch, frames), loss=loss, codebook_loss=codebook_loss,
                        commitment_loss=commitment_loss, perplexity=perplexity,
                        used_codes=(counts > 0).sum(), restarts=restarts)

    @torch.no_grad()
    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest codebook vector (squared Euclidean distance) for each row.

        Computes ||e||^2 - 2 x.e per chunk of rows as one matrix product ([N, K], never [N, K, D]);
        ||x||^2 is the same for every code and does not change the argmin.

        Args:
            flat: float `[N, D]`.

        Returns:
            int64 `[N]` in [0, K).
        """
        codebook = self.codebook.detach().float()
        code_sq = codebook.pow(2).sum(dim=1)  # (K,)
        out = torch.empty(flat.shape[0], dtype=torch.long, device=flat.device)
        for start in range(0, flat.shape[0], _DISTANCE_CHUNK_ROWS):
            rows = flat[start:start + _DISTANCE_CHUNK_ROWS].float()
            distances = torch.addmm(code_sq, rows, codebook.t(), alpha=-2.0)  # (n, K)
            out[start:start + rows.shape[0]] = distances.argmin(dim=1)
        return out

    def lookup(self, codes: Tensor) -> Tensor:
        """Codebook vectors for codes.

        Args:
            codes: int64 `[B, F]` in [0, K).

        Returns:
            float32 `[B, D, F]`.
        """
        return F.embedding(codes, self.codebook).permute(0, 2, 1)

    # ------------------------------------------------------------------ training-time updates

    @torch.no_grad()
    def _init_kmeans(self, flat: Tensor) -> None:
        """k-means++ seeding then Lloyd's iterations on the first batch; rank 0's result goes to all ranks."""
        size = self.codebook_size
        centroids = _kmeans_plus_plus(flat, size)
        for _ in range(self.config.kmeans_iters):
            assign = torch.addmm(centroids.pow(2).sum(1), flat, centroids.t(), alpha=-2.0).argmin(1)
            counts = torch.bincount(assign, minlength=size).float()
            sums = torch.zeros_like(centroids).index_add_(0, assign, flat)
            filled = counts > 0  # an empty cluster keeps its centroid
            centroids[filled] = sums[filled] / counts[filled, None]
        _broadcast(centroids)
        self.codebook.data.copy_(centroids)
        self.ema_cluster_size.fill_(1.0)
        self.ema_embed_sum.copy_(centroids)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, codes: Tensor, counts: Tensor) -> None:
        decay, eps = self.config.ema_decay, self.config.ema_epsilon
        embed_sum = torch.zeros_like(self.ema_embed_sum).index_add_(0, codes, flat)
        _all_reduce_sum(embed_sum)
        self.ema_cluster_size.mul_(decay).add_(counts, alpha=1.0 - decay)
        self.ema_embed_sum.mul_(decay).add_(embed_sum, alpha=1.0 - decay)
        total = self.ema_cluster_size.sum()
        smoothed = (self.ema_cluster_size + eps) / (total + self.codebook_size * eps) * total
        self.codebook.copy_(self.ema_embed_sum / smoothed[:, None])

    @torch.no_grad()
    def _restart_dead_codes(self, flat: Tensor, counts: Tensor) -> Tensor:
        """Re-seed codes unused for `dead_code_window` steps from this batch's encoder outputs.

        Written without data-dependent shapes (a candidate for every code, kept where the code is dead), so
        that it never waits for the device: a K x D draw per step costs far less than a host round trip.
        """
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        dead = self.steps_unused >= self.config.dead_code_window  # (K,)
        pick = torch.randint(flat.shape[0], (self.codebook_size,), device=flat.device)
        # A little noise keeps two codes seeded from the same frame apart.
        fresh = flat[pick] + 1e-3 * flat.std() * torch.randn(self.codebook_size, self.dim, device=flat.device)
        _broadcast(fresh)
        column = dead.unsqueeze(1)
        self.codebook.copy_(torch.where(column, fresh, self.codebook))
        self.ema_embed_sum.copy_(torch.where(column, fresh, self.ema_embed_sum))
        self.ema_cluster_size.masked_fill_(dead, 1.0)
        self.steps_unused.masked_fill_(dead, 0)
        n_dead = dead.sum()
        self.total_restarts.add_(n_dead)
        return n_dead


def index_counts(index: Tensor, size: int) -> Tensor:
    """How often each of `size` values occurs in `index`, without waiting for the device.

    `torch.bincount` on CUDA reads the largest index back to the host to size its output (a synchronising
    copy in every training step, found by the lent GPU's sync test on 2026-12-04); the output size is known
    here, so a scatter-add does the same count on the device.

    Args:
        index: int64 `[N]` in [0, size).
        size: number of bins.

    Returns:
        float32 `[size]` counts, on `index`'s device.
    """
    counts = torch.zeros(size, dtype=torch.float32, device=index.device)
    return counts.index_add_(0, index, torch.ones(index.shape, dtype=torch.float32, device=index.device))


def code_perplexity(counts: Tensor) -> Tensor:
    """exp(entropy) of a code histogram: K when all K codes are equally used, 1 for a single code.

    Args:
        counts: float `[K]` occurrences of each code (all zero gives 1).

    Returns:
        a 0-dim float tensor.
    """
    probs = counts.float() / counts.sum().clamp_min(1.0)
    return torch.exp(-(probs * torch.log(probs.clamp_min(1e-12))).sum())


def _kmeans_plus_plus(flat: Tensor, size: int) -> Tensor:
    """k-means++ seeding (Arthur and Vassilvitskii 2007): each new centre drawn with probability ~ D(x)^2.

    With fewer distinct vectors than codes, the surplus centres repeat data points, jittered apart.
    """
    centroids = torch.empty(size, flat.shape[1], device=flat.device, dtype=flat.dtype)
    centroids[0] = flat[torch.randint(flat.shape[0], (1,), device=flat.device)]
    nearest_sq = (flat - centroids[0]).pow(2).sum(1)
    for i in range(1, size):
        total = nearest_sq.sum()
        if total > 0:
            pick = torch.multinomial(nearest_sq / total, 1)
        else:  # every point already coincides with a centre
            pick = torch.randint(flat.shape[0], (1,), device=flat.device)
        centroids[i] = flat[pick]
        nearest_sq = torch.minimum(nearest_sq, (flat - centroids[i]).pow(2).sum(1))
    return centroids + 1e-3 * flat.std() * torch.randn_like(centroids)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_sum(tensor: Tensor) -> None:
    if _distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def _broadcast(tensor: Tensor) -> None:
    if _distributed():
        dist.broadcast(tensor, src=0)
